"""The ``--builder MODULE:CALLABLE`` contract: user code that builds the inference graph.

A model's training graph often differs from the graph that should serve it (dropout, batch
norm in training mode, input pipelines, optimizers). A builder rebuilds the inference graph from
code, and only the weights come from the checkpoint.

The contract:

* the callable takes no arguments and is called with a fresh ``tf.Graph`` as the default graph
  (graph mode: ``tf.compat.v1.placeholder``, ``tf.compat.v1.get_variable``, ``tf.nn`` ...);
* it must create its variables with the names they have in the checkpoint (same variable
  scopes), and must not initialise them: the values are restored from the checkpoint;
* it returns one of

  - ``None``: the outputs are named with ``--output`` (``outputs=`` in the API);
  - a tensor, or a list or tuple of tensors: the outputs, aliases made from their names;
  - a dict ``alias -> tensor``: the outputs under those aliases;
  - a dict ``{"inputs": ..., "outputs": ...}``, each a dict ``alias -> tensor`` or a list of
    tensors: the whole signature. Inputs not given are found as the placeholders the outputs
    depend on.

Example::

    def build():
        images = tf.compat.v1.placeholder(tf.float32, [None, 784], name="images")
        logits = my_model(images, training=False)
        return {"inputs": {"images": images},
                "outputs": {"probabilities": tf.nn.softmax(logits)}}
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from ..errors import ConversionError
from .endpoints import Endpoint
from .tf_failures import one_line
from .user_modules import load_callable

Builder = Callable[[], Any]


def call_builder(builder: Builder | str) -> Any:
    """Call ``builder`` (or the ``MODULE:CALLABLE`` it names) in the current default graph."""
    fn = load_callable(builder) if isinstance(builder, str) else builder
    label = builder if isinstance(builder, str) else getattr(builder, "__qualname__", "builder")
    try:
        return fn()
    except ConversionError:
        raise
    except Exception as exc:  # the user's code failed: say so in one line
        raise ConversionError(f"builder {label} failed: {type(exc).__name__}: "
                              f"{one_line(exc)}") from exc


def _endpoints(value: Any, what: str) -> tuple[Endpoint, ...]:
    if value is None:
        return ()
    if isinstance(value, Mapping):
        return tuple(Endpoint(_tensor_name(t, what), str(alias)) for alias, t in value.items())
    if isinstance(value, (list, tuple)):
        return tuple(Endpoint(_tensor_name(t, what)) for t in value)
    return (Endpoint(_tensor_name(value, what)),)


def _tensor_name(value: Any, what: str) -> str:
    name = getattr(value, "name", None)
    if getattr(value, "graph", None) is None or not isinstance(name, str) or ":" not in name:
        raise ConversionError(f"the builder returned {type(value).__name__} among its {what}; "
                              "expected graph tensors")
    return name


def builder_outputs(result: Any) -> tuple[tuple[Endpoint, ...], tuple[Endpoint, ...]]:
    """The ``(inputs, outputs)`` a builder's return value names (either may be empty)."""
    if isinstance(result, Mapping) and set(result) <= {"inputs", "outputs"} and result and \
            all(v is None or isinstance(v, (Mapping, list, tuple)) for v in result.values()):
        return _endpoints(result.get("inputs"), "inputs"), _endpoints(result.get("outputs"),
                                                                      "outputs")
    return (), _endpoints(result, "outputs")
