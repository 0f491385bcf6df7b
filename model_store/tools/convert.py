"""Convert TF2-era models into frozen graphs: Keras files (``.keras``, ``.h5``) and SavedModels.

Both go the TF2 way: a concrete ``tf.function`` is frozen with
``convert_variables_to_constants_v2`` and its graph is stored. A Keras model is called with
``training=False`` on ``tf.TensorSpec``s made from ``model.inputs``. Its inputs keep their Keras
names (``keras.Input(name="features")``) and its outputs their names (the keys of a dict the
model returns, else the output layers' names), in ``tf.nest.flatten`` order; a name Keras made up
(``input_layer``, ``dense_3``) or a repeated one becomes ``input_{i}`` / ``output_{i}``.
``model.json`` records the Keras names under ``source``. A SavedModel signature keeps its own
input and output keys as aliases. ``--input-alias`` / ``--output-alias`` rename either.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import ConversionError
from ..store import BatchingConfig
from .endpoints import Endpoint, Renames, sanitize_alias
from .preflight import check_keras_file
from .publish import (
    FreezeReport,
    FrozenModel,
    Progress,
    StoreLike,
    check_target,
    human_size,
    publish,
    say,
)
from .tf_failures import converting, one_line, quietly
from .user_modules import custom_objects_of


def _folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def freeze_concrete_function(fn: Any) -> tuple[Any, list[str], list[str]]:
    """``(graph_def, input tensor names, output tensor names)`` of a frozen concrete function."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    with converting("cannot freeze the function"):
        frozen = convert_variables_to_constants_v2(fn)
        graph_def = frozen.graph.as_graph_def()
    inputs = [t.name for t in frozen.inputs]
    outputs = [t.name for t in frozen.outputs]
    return graph_def, inputs, outputs


def _load_keras(path: Path, custom_objects: dict[str, Any]) -> Any:
    import keras

    check_keras_file(path)
    try:
        return keras.models.load_model(path, custom_objects=custom_objects, compile=False)
    except Exception as exc:
        reason = _keras_reason(exc)
        unknown = any(w in reason.lower() for w in ("unknown", "could not locate",
                                                     "custom", "not found"))
        hint = " (custom layers? pass --custom-objects MODULE)" \
            if unknown and not custom_objects else ""
        raise ConversionError(f"cannot load {path}: {reason}{hint}") from exc


def _keras_reason(exc: BaseException) -> str:
    """The cause of a Keras loading error without Keras's advice and config dumps."""
    text = str(exc).rsplit("Exception encountered:", 1)[-1]
    reason = one_line(RuntimeError(text))
    for cut in (" Make sure custom", " Please ensure", " Full object config"):
        reason = reason.split(cut)[0]
    return reason


#: Names Keras makes up for unnamed inputs: not worth keeping as a contract name.
_AUTO_INPUT = re.compile(r"^(keras_tensor|input_layer|input)(_\d+)?$")


def unique_aliases(names: Sequence[str], fallback: str) -> list[str]:
    """``names`` made aliases; ``{fallback}_{i}`` for a made-up, empty or repeated name."""
    plain = [sanitize_alias(n) if n and not _AUTO_INPUT.match(n) else "" for n in names]
    return [p if p and plain.count(p) == 1 else f"{fallback}_{i}" for i, p in enumerate(plain)]


def keras_input_aliases(names: Sequence[str]) -> list[str]:
    """The inputs' aliases: their Keras names (``features``), ``input_{i}`` when unnamed."""
    return unique_aliases(names, "input")


def keras_output_names(model: Any, structured: Any, count: int) -> list[str]:
    """The Keras name of each output, in ``tf.nest.flatten`` order: the keys of a dict the
    model returns, else the output layers' names (``""`` when unknown)."""
    if isinstance(structured, Mapping) and len(structured) == count:
        return sorted(str(k) for k in structured)  # tf.nest flattens dicts by sorted key
    names = [str(n) for n in (getattr(model, "output_names", None) or [])]
    if len(names) == count:
        return names
    layers = getattr(model, "layers", None) or []
    if count == 1 and layers:  # a Sequential: its last layer
        return [str(layers[-1].name)]
    return [""] * count


def auto_named_layers(model: Any) -> set[str]:
    """Layer names Keras made up (``dense``, ``dense_3``: the class name in snake case): an
    alias from them would change whenever the model is rebuilt, so they are not kept."""
    made_up = set()
    for layer in getattr(model, "layers", None) or []:
        base = re.sub(r"(?<!^)(?=[A-Z])", "_", type(layer).__name__).lower()
        if re.fullmatch(re.escape(base) + r"(_\d+)?", str(layer.name)):
            made_up.add(str(layer.name))
    return made_up


def graph_size(graph_def: Any) -> int:
    """Nodes of a GraphDef, counting those inside its function library."""
    return len(graph_def.node) + sum(len(f.node_def) for f in graph_def.library.function)


@quietly
def convert_keras(model_file: str | os.PathLike[str], store: StoreLike, name: str, *,
                  custom_objects: str | Mapping[str, Any] | None = None,
                  version: int | None = None, labels: Sequence[str] = (),
                  description: str = "", optimize: bool = False,
                  progress: Progress | None = None, allow_random_ops: bool = False,
                  batching: BatchingConfig | None = None,
                  renames: Renames | None = None) -> FreezeReport:
    """Freeze a Keras model file into a new version of ``name`` in ``store``.

    ``custom_objects`` is a mapping or the name of a module (see
    ``user_modules.custom_objects_of``). Raises ``ConversionError``; the store is unchanged.
    """
    import tensorflow as tf

    started = time.monotonic()
    check_target(store, name, version)
    path = Path(model_file)
    objects = custom_objects_of(custom_objects)
    say(progress, f"loading Keras model {path}"
                  + (f" ({human_size(path.stat().st_size)})" if path.is_file() else ""))
    model = _load_keras(path, objects)
    model_inputs = getattr(model, "inputs", None)
    if not model_inputs:
        raise ConversionError(f"{path}: the model has no defined inputs (build it on "
                              "keras.Input, or call it once before saving)")
    in_aliases = keras_input_aliases([str(getattr(t, "name", "")) for t in model_inputs])
    specs = [tf.TensorSpec(t.shape, t.dtype, name=alias)
             for alias, t in zip(in_aliases, model_inputs)]

    def serve(*args: Any) -> Any:
        return model(args[0] if len(args) == 1 else list(args), training=False)

    say(progress, f"tracing {len(specs)} input(s) and freezing")
    with converting(f"cannot trace {path}"):
        concrete = tf.function(serve, input_signature=specs).get_concrete_function()
    nodes_before = graph_size(concrete.graph.as_graph_def())
    graph_def, ins, outs = freeze_concrete_function(concrete)
    keras_outputs = keras_output_names(model, concrete.structured_outputs, len(outs))
    made_up = auto_named_layers(model)
    out_aliases = unique_aliases([n if n not in made_up else "" for n in keras_outputs],
                                 "output")
    extra = {"keras_inputs": [str(getattr(t, "name", "")) for t in model_inputs],
             "keras_outputs": keras_outputs}
    frozen = FrozenModel(graph_def, tuple(Endpoint(t, a) for t, a in zip(ins, in_aliases)),
                         tuple(Endpoint(t, a) for t, a in zip(outs, out_aliases)),
                         str(path), "Keras file", path.stat().st_size, nodes_before,
                         extra=extra)
    return publish(frozen, store, name, version=version, labels=labels,
                   description=description, optimize=optimize, progress=progress,
                   started=started,
                   allow_random_ops=allow_random_ops, batching=batching,
                   renames=renames)


def _signature_function(path: Path, signature: str) -> Any:
    import tensorflow as tf

    if not (path / "saved_model.pb").is_file():
        raise ConversionError(f"{path} is not a SavedModel folder (no saved_model.pb)")
    with converting(f"cannot load SavedModel {path}"):
        loaded = tf.saved_model.load(str(path))
    signatures = dict(getattr(loaded, "signatures", {}) or {})
    if signature not in signatures:
        raise ConversionError(f"SavedModel {path} has no signature {signature!r} "
                              f"(it has: {', '.join(sorted(signatures)) or 'none'})")
    return loaded, signatures[signature]


@quietly
def convert_savedmodel(saved_model_dir: str | os.PathLike[str], store: StoreLike,
                       name: str, *, signature: str = "serving_default",
                       version: int | None = None, labels: Sequence[str] = (),
                       description: str = "", optimize: bool = False,
                       progress: Progress | None = None, allow_random_ops: bool = False,
                       batching: BatchingConfig | None = None,
                       renames: Renames | None = None) -> FreezeReport:
    """Freeze one signature of a SavedModel into a new version of ``name`` in ``store``.

    The signature's input and output keys become the aliases. Raises ``ConversionError``.
    """
    import tensorflow as tf

    started = time.monotonic()
    check_target(store, name, version)
    path = Path(saved_model_dir)
    say(progress, f"loading SavedModel {path}")
    _loaded, fn = _signature_function(path, signature)
    nodes_before = graph_size(fn.graph.as_graph_def())
    _args, kwargs = fn.structured_input_signature
    in_keys = sorted(kwargs)  # signature functions take keyword inputs in sorted-key order
    out_keys = sorted(fn.structured_outputs)
    say(progress, f"freezing signature {signature!r}: {len(in_keys)} input(s), "
                  f"{len(out_keys)} output(s)")
    graph_def, ins, outs = freeze_concrete_function(fn)
    if len(ins) != len(in_keys) or len(outs) != len(out_keys):
        raise ConversionError(f"signature {signature!r}: cannot match {in_keys} / {out_keys} "
                              f"to the frozen graph's {ins} / {outs}")
    for key, tensor in zip(in_keys, ins):
        if tf.as_dtype(kwargs[key].dtype).name != _dtype_in(graph_def, tensor):
            raise ConversionError(f"signature {signature!r}: input {key!r} does not match "
                                  f"placeholder {tensor}")
    frozen = FrozenModel(graph_def,
                         tuple(Endpoint(t, sanitize_alias(k)) for k, t in zip(in_keys, ins)),
                         tuple(Endpoint(t, sanitize_alias(k)) for k, t in zip(out_keys, outs)),
                         str(path), "SavedModel", _folder_size(path), nodes_before,
                         extra={"signature": signature})
    return publish(frozen, store, name, version=version, labels=labels,
                   description=description, optimize=optimize, progress=progress,
                   started=started,
                   allow_random_ops=allow_random_ops, batching=batching,
                   renames=renames)


def _dtype_in(graph_def: Any, tensor: str) -> str:
    import tensorflow as tf

    node = tensor.rsplit(":", 1)[0]
    for n in graph_def.node:
        if n.name == node:
            return str(tf.as_dtype(n.attr["dtype"].type).name)
    return "?"
