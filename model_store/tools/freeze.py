"""Freeze a checkpoint: variables become constants, and only what the outputs need is kept.

``freeze_checkpoint`` is the whole ``tfsoap freeze`` command: open the graph (the saved meta
graph, or a ``--builder``'s inference graph), resolve the outputs (node names or a collection),
restore only the variables those outputs read, convert them to constants
(``convert_variables_to_constants`` + ``extract_sub_graph``: training ops, optimizer slots and
savers drop out), find the inputs, and ``publish`` a new store version.

Inputs are the ``Placeholder`` ops the outputs depend on, unless named. A named input that is
not a placeholder (say, the output of an input pipeline) is cut there: it becomes a placeholder
of the same dtype and shape and everything above it is dropped. ``PlaceholderWithDefault`` ops
are not inputs unless named: they keep their default value, and the report lists them.
"""

from __future__ import annotations

import os
import time
from typing import Any, Sequence

from ..errors import ConversionError
from ..store import BatchingConfig
from .checkpoint import locate_checkpoint
from .endpoints import Endpoint, Renames, parse_endpoints
from .graph_builder import Builder
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
from .restore import VARIABLE_OPS, RestoredGraph, open_builder, open_meta_graph
from .tf_failures import converting, quietly


def _as_endpoints(items: Sequence[str | Endpoint]) -> tuple[Endpoint, ...]:
    found: list[Endpoint] = []
    for item in items:
        found.extend([item] if isinstance(item, Endpoint) else parse_endpoints([item]))
    return tuple(found)


def _cut_at_inputs(graph: Any, inputs: Sequence[Endpoint]) -> Any:
    """The graph's GraphDef with each named non-placeholder input node made a placeholder."""
    graph_def = graph.as_graph_def()
    cut = {}
    for e in inputs:
        op = graph.get_operation_by_name(e.node)
        if op.type in ("Placeholder", "PlaceholderWithDefault"):
            continue
        if e.index != 0 or len(op.outputs) != 1:
            raise ConversionError(f"input {e.tensor} must be the only output of its node to "
                                  "be cut into a placeholder")
        cut[e.node] = op.outputs[0]
    for node in graph_def.node:
        if node.name in cut:
            tensor = cut[node.name]
            node.Clear()
            node.name, node.op = tensor.op.name, "Placeholder"
            node.attr["dtype"].type = tensor.dtype.as_datatype_enum
            node.attr["shape"].shape.CopyFrom(tensor.shape.as_proto())
    return graph_def  # what only fed the cut nodes is pruned with the rest


def freeze_graph_def(restored: RestoredGraph, outputs: Sequence[Endpoint],
                     inputs: Sequence[Endpoint] = (), progress: Progress | None = None) -> Any:
    """Restore what ``outputs`` read and return the frozen, pruned ``GraphDef``."""
    import tensorflow as tf

    nodes = list(dict.fromkeys(e.node for e in outputs))
    with converting("cannot prune the graph to its outputs"):
        pruned = tf.compat.v1.graph_util.extract_sub_graph(_cut_at_inputs(restored.graph, inputs),
                                                           nodes)
    needed = sorted(n.name for n in pruned.node if n.op in VARIABLE_OPS)
    saved = restored.checkpoint.tensors()
    size = sum(saved[n].nbytes for n in needed if n in saved)
    say(progress, f"restoring {len(needed)} of {len(saved)} checkpoint tensors "
                  f"({human_size(size)}) and converting them to constants")
    restored.restore(needed)
    with converting("cannot convert variables to constants"):
        frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
            restored.session, pruned, nodes)
        frozen = tf.compat.v1.graph_util.extract_sub_graph(frozen, nodes)
    for node in frozen.node:
        node.device = ""
    return frozen


def find_inputs(graph_def: Any, named: Sequence[Endpoint]
                ) -> tuple[tuple[Endpoint, ...], tuple[str, ...]]:
    """The inputs (``named`` or the placeholders found) and the defaulted placeholders kept."""
    named_nodes = {e.node for e in named}
    placeholders = [n.name for n in graph_def.node if n.op == "Placeholder"]
    defaults = tuple(n.name for n in graph_def.node
                     if n.op == "PlaceholderWithDefault" and n.name not in named_nodes)
    if not named:
        return tuple(Endpoint(p + ":0") for p in placeholders), defaults
    present = {n.name for n in graph_def.node}
    unused = [e.node for e in named if e.node not in present]
    if unused:
        raise ConversionError(f"the outputs do not depend on input(s) {unused}")
    missing = [p for p in placeholders if p not in named_nodes]
    if missing:
        raise ConversionError(f"the outputs also need placeholder(s) {missing}: add them to "
                              "--input")
    return tuple(named), defaults


def frozen_from_restored(restored: RestoredGraph, *, outputs: Sequence[str | Endpoint] = (),
                         output_collection: str | None = None,
                         inputs: Sequence[str | Endpoint] = (),
                         progress: Progress | None = None) -> FrozenModel:
    """Freeze an opened (or scoped) graph; outputs default to the builder's."""
    if outputs and output_collection:
        raise ConversionError("give outputs by name or by collection, not both")
    if output_collection:
        wanted = restored.collection(output_collection)
    elif outputs:
        wanted = _as_endpoints(outputs)
    else:
        wanted = restored.default_outputs
    if not wanted:
        raise ConversionError("no outputs: name them with --output or --output-collection")
    outs = tuple(restored.endpoint(e) for e in wanted)
    named = tuple(restored.endpoint(e) for e in (_as_endpoints(inputs) if inputs
                                                 else restored.default_inputs))
    graph_def = freeze_graph_def(restored, outs, named, progress)
    found, defaults = find_inputs(graph_def, named)
    ckpt = restored.checkpoint
    return FrozenModel(graph_def, found, outs, ckpt.prefix, "checkpoint", ckpt.size_bytes,
                       restored.nodes_before, restored.scope, defaults,
                       {"from": restored.origin})


@quietly
def freeze_restored(restored: RestoredGraph, store: StoreLike, name: str, *,
                    outputs: Sequence[str | Endpoint] = (), output_collection: str | None = None,
                    inputs: Sequence[str | Endpoint] = (), version: int | None = None,
                    labels: Sequence[str] = (), description: str = "", optimize: bool = False,
                    progress: Progress | None = None, allow_random_ops: bool = False,
                    batching: BatchingConfig | None = None,
                    renames: Renames | None = None) -> FreezeReport:
    """Freeze an already opened graph (e.g. one of ``restore_scoped``) into the store."""
    started = time.monotonic()
    frozen = frozen_from_restored(restored, outputs=outputs, output_collection=output_collection,
                                  inputs=inputs, progress=progress)
    return publish(frozen, store, name, version=version, labels=labels,
                   description=description, optimize=optimize, progress=progress,
                   started=started,
                   allow_random_ops=allow_random_ops, batching=batching,
                   renames=renames)


@quietly
def freeze_checkpoint(checkpoint: str | os.PathLike[str], store: StoreLike,
                      name: str, *, outputs: Sequence[str | Endpoint] = (),
                      output_collection: str | None = None,
                      inputs: Sequence[str | Endpoint] = (), builder: Builder | str | None = None,
                      scope: str | None = None, version: int | None = None,
                      labels: Sequence[str] = (), description: str = "", optimize: bool = False,
                      progress: Progress | None = None, allow_random_ops: bool = False,
                      batching: BatchingConfig | None = None,
                      renames: Renames | None = None) -> FreezeReport:
    """Freeze ``checkpoint`` (a prefix) into a new version of ``name`` in ``store``.

    The graph is the checkpoint's meta graph, or the one ``builder`` builds (see
    ``graph_builder``). With ``scope``, only variables under it are restored and aliases drop
    it. Raises ``ConversionError``; the store is unchanged on any failure.
    """
    started = time.monotonic()
    check_target(store, name, version)
    ckpt = locate_checkpoint(checkpoint)
    if ckpt.given:
        say(progress, f"{ckpt.given}: using its latest checkpoint, {ckpt.prefix}")
    say(progress, f"checkpoint {ckpt.prefix}: {human_size(ckpt.size_bytes)} (index + data)")
    if builder is not None:
        say(progress, f"building the inference graph with {getattr(builder, '__name__', builder)}")
        restored = open_builder(ckpt, builder, scope)
    else:
        say(progress, f"importing meta graph {ckpt.require_meta()} "
                      f"({human_size(ckpt.meta_bytes)})")
        restored = open_meta_graph(ckpt, scope)
    say(progress, f"{restored.origin}: {restored.nodes_before} nodes")
    with restored:
        if scope and not restored.model_variables():
            raise ConversionError(f"scope {scope!r} has no variables in the "
                                  f"{restored.origin} of {ckpt.prefix}")
        frozen = frozen_from_restored(restored, outputs=outputs,
                                      output_collection=output_collection, inputs=inputs,
                                      progress=progress)
    return publish(frozen, store, name, version=version, labels=labels, description=description,
                   optimize=optimize, progress=progress, started=started,
                   allow_random_ops=allow_random_ops, batching=batching,
                   renames=renames)
