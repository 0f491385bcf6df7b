"""Read graphs from disk for inspection: GraphDefs, meta graphs and SavedModels.

Nothing here restores weights or runs a graph; it reads protobufs, and imports a meta graph
only to list its variable collections.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConversionError
from .checkpoint import Checkpoint, CheckpointTensor, locate_checkpoint
from .tf_failures import converting

_NOT_OUTPUTS = frozenset({"Const", "NoOp", "Placeholder", "PlaceholderWithDefault", "Assert"})


def read_graph_def(path: Path) -> Any:
    """A ``GraphDef`` from a binary ``.pb`` or a text ``.pbtxt`` file."""
    import tensorflow as tf
    from google.protobuf import text_format

    graph_def = tf.compat.v1.GraphDef()
    with converting(f"{path} is not a GraphDef"):
        data = path.read_bytes()
        if path.suffix == ".pbtxt":
            text_format.Parse(data.decode("utf-8"), graph_def)
        else:
            graph_def.ParseFromString(data)
    return graph_def


def graph_inputs(graph_def: Any) -> list[str]:
    """The placeholder nodes of a graph: what it can be fed."""
    return [n.name for n in graph_def.node if n.op in ("Placeholder", "PlaceholderWithDefault")]


def graph_outputs(graph_def: Any) -> list[str]:
    """Nodes whose results no other node consumes: the candidates for ``--output``."""
    consumed = {i.lstrip("^").split(":")[0] for n in graph_def.node for i in n.input}
    return [n.name for n in graph_def.node if n.name not in consumed and n.op not in _NOT_OUTPUTS]


#: Scopes that only training creates: gradients, savers, initialisers, optimizer steps.
_TRAINING_SCOPES = ("gradients", "save", "init", "train", "report_uninitialized_variables",
                    "global_step")
#: Optimizer slot and step names (``dense/kernel/Adam_1``, ``beta1_power``).
_OPTIMIZER_PARTS = re.compile(r"^(Adam|Adam_\d+|Momentum|RMSProp(_\d+)?|Adagrad|Adadelta(_\d+)?|"
                              r"Ftrl(_\d+)?|GradientDescent|beta[12]_power(_\d+)?)$")
_TRAINING_OPS = re.compile(r"^(Resource)?(Sparse)?Apply\w+$|^(Assign\w*|SaveV2|RestoreV2|"
                           r"MergeV2Checkpoints|ShardedFilename|BroadcastGradientArgs|"
                           r"\w+Grad(V\d)?)$")


def is_training_node(name: str, op: str) -> bool:
    """True for a node only training needs (gradient, optimizer, saver, initialiser)."""
    parts = name.split("/")
    top = parts[0]
    if any(top == s or top.startswith(s + "_") for s in _TRAINING_SCOPES):
        return True
    return bool(_TRAINING_OPS.match(op)) or any(_OPTIMIZER_PARTS.match(p) for p in parts)


def likely_outputs(graph_def: Any, limit: int = 12) -> list[str]:
    """Nodes that are good ``--output`` candidates in a training graph: not training-only,
    not constants, placeholders or variable plumbing, and consumed by no other inference node
    (``probabilities (Softmax)``). Loss nodes show up too: they end the inference part."""
    kept = [n for n in graph_def.node if not is_training_node(n.name, n.op)]
    consumed = {i.lstrip("^").split(":")[0] for n in kept for i in n.input}
    plumbing = _NOT_OUTPUTS | {"VarHandleOp", "VariableV2", "ReadVariableOp", "VarIsInitializedOp",
                               "Shape", "IsVariableInitialized"}
    found = [f"{n.name} ({n.op})" for n in kept
             if n.name not in consumed and n.op not in plumbing]
    return found[:limit] + ([f"... and {len(found) - limit} more"] if len(found) > limit else [])


def suggest_names(wanted: str, names: Sequence[str], limit: int = 5) -> list[str]:
    """Node names close to ``wanted``: same last component, a last component that starts with
    or contains it (``prob`` -> ``probabilities``), then spelling neighbours; inference nodes
    before training ones."""
    import difflib

    last = wanted.rsplit("/", 1)[-1].lower()
    ordered = sorted(names, key=lambda n: (is_training_node(n, ""), n.count("/"), n))
    tails = {n: n.rsplit("/", 1)[-1].lower() for n in ordered}
    found = [n for n in ordered if tails[n] == last]
    found += [n for n in ordered if tails[n].startswith(last) and n not in found]
    found += [n for n in ordered if last in tails[n] and n not in found]
    close = difflib.get_close_matches(last, list(dict.fromkeys(tails.values())), n=limit,
                                      cutoff=0.6)
    found += [n for c in close for n in ordered if tails[n] == c and n not in found]
    found += [n for n in difflib.get_close_matches(wanted, ordered, n=limit) if n not in found]
    inference = [n for n in found if not is_training_node(n, "")]
    return (inference or found)[:limit]


def _describe(var: Any) -> CheckpointTensor:
    shape = () if var.shape.rank is None else tuple(-1 if d is None else int(d)
                                                    for d in var.shape.as_list())
    return CheckpointTensor(var.name.rsplit(":", 1)[0], var.dtype.base_dtype.name, shape)


def variable_list(meta_path: Path) -> tuple[Any, dict[str, list[CheckpointTensor]]]:
    """The ``MetaGraphDef`` at ``meta_path`` and its ``variables`` and ``trainable_variables``
    collections."""
    import tensorflow as tf
    from tensorflow.core.protobuf import meta_graph_pb2

    meta = meta_graph_pb2.MetaGraphDef()
    graph = tf.Graph()
    with converting(f"cannot read meta graph {meta_path}"), graph.as_default():
        meta.ParseFromString(meta_path.read_bytes())
        tf.compat.v1.train.import_meta_graph(meta, clear_devices=True)
        found = {key: [_describe(v) for v in graph.get_collection(key)]
                 for key in ("variables", "trainable_variables")}
    return meta, found


@dataclass
class SavedModelInfo:
    """What ``read_saved_model`` found in a SavedModel folder."""

    graph_def: Any
    checkpoint: Checkpoint
    summary: list[str] = field(default_factory=list)
    function_ops: list[tuple[str, str]] = field(default_factory=list)
    variables: list[CheckpointTensor] | None = None
    trainable: list[CheckpointTensor] | None = None


def _tensor_info(info: Any) -> str:
    from tensorflow.core.framework import types_pb2

    dims = "unknown rank" if info.tensor_shape.unknown_rank else \
        str([d.size for d in info.tensor_shape.dim])
    return f"{types_pb2.DataType.Name(info.dtype)} {dims} ({info.name})"


def read_saved_model(path: Path, variables: bool = False, trainable: bool = False
                     ) -> SavedModelInfo:
    """Signatures, graph and variables of the SavedModel at ``path`` (the serving meta graph).

    Variables come from the SavedModel's object graph, so nothing is loaded.
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    saved = saved_model_pb2.SavedModel()
    with converting(f"cannot read SavedModel {path}"):
        saved.ParseFromString((path / "saved_model.pb").read_bytes())
    if not saved.meta_graphs:
        raise ConversionError(f"SavedModel {path} holds no meta graph")
    meta = next((m for m in saved.meta_graphs if "serve" in m.meta_info_def.tags),
                saved.meta_graphs[0])
    info = SavedModelInfo(meta.graph_def, locate_checkpoint(path / "variables" / "variables"))
    info.summary.append(f"tags: {', '.join(meta.meta_info_def.tags)}; "
                        f"{len(meta.graph_def.library.function)} functions")
    for key, sig in sorted(meta.signature_def.items()):
        if key.startswith("__"):  # __saved_model_init_op and the like: not callable
            continue
        info.summary.append(f"signature {key}:")
        info.summary += [f"  input  {k}: {_tensor_info(v)}" for k, v in sorted(sig.inputs.items())]
        info.summary += [f"  output {k}: {_tensor_info(v)}"
                         for k, v in sorted(sig.outputs.items())]
    for fn in meta.graph_def.library.function:
        info.function_ops += [(f"{fn.signature.name}/{n.name}", n.op) for n in fn.node_def]
    found = []
    for node in meta.object_graph_def.nodes:
        if node.WhichOneof("kind") == "variable":
            var = node.variable
            dims = () if var.shape.unknown_rank else tuple(d.size for d in var.shape.dim)
            found.append((CheckpointTensor(var.name, tf.as_dtype(var.dtype).name, dims),
                          var.trainable))
    info.variables = [t for t, _ in found] if variables else None
    info.trainable = [t for t, is_trainable in found if is_trainable] if trainable else None
    return info
