"""Look inside a model before or after freezing it: what ``tfsoap inspect`` shows.

Four kinds of path are understood: a checkpoint (prefix, one of its files, or its folder), a
frozen graph (``.pb`` or ``.pbtxt``), a store entry (``<store>/<name>/<version>``, or
``<store>/<name>`` for the latest version), and a SavedModel folder. Checkpoint tensors are
listed as ``tensor: NAME (DTYPE) [SHAPE]``, the lines of TensorFlow's ``inspect_checkpoint``.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConversionError
from ..store import GRAPH_FILE, SIGNATURE_FILE, ModelRepository, StoredVersion
from .checkpoint import Checkpoint, CheckpointTensor, locate_checkpoint
from .graph_reading import (
    graph_inputs,
    graph_outputs,
    is_training_node,
    likely_outputs,
    read_graph_def,
    read_saved_model,
    variable_list,
)
from .tf_failures import converting, quietly

KINDS = ("checkpoint", "frozen graph", "store entry", "SavedModel")


@dataclass
class InspectReport:
    """What was found at ``path``; ``lines()`` renders it for the terminal."""

    path: str
    kind: str
    summary: list[str] = field(default_factory=list)
    ops: list[tuple[str, str]] = field(default_factory=list)
    variables: list[CheckpointTensor] | None = None
    trainable: list[CheckpointTensor] | None = None
    tensors: list[CheckpointTensor] = field(default_factory=list)
    values: dict[str, np.ndarray] = field(default_factory=dict)
    graph_def: Any = None
    tensor_title: str = "checkpoint tensors"
    #: The one tensor asked for with ``tensor=``: then ``lines()`` shows only it.
    only_tensor: str | None = None

    def lines(self, ops: bool = False, training_ops: bool = True) -> list[str]:
        """The report; ``ops`` lists every op, without the training-only ones (gradients,
        optimizer slots and steps, savers) unless ``training_ops``. With ``tensor`` asked,
        only that tensor is shown."""
        if self.only_tensor is not None:
            wanted = {self.only_tensor, self.only_tensor.rsplit(":", 1)[0]}
            return [f"tensor: {name} ({value.dtype}) {list(value.shape)}\n{value}"
                    for name, value in self.values.items() if name in wanted]
        out = [f"{self.kind}: {self.path}"] + [f"  {s}" for s in self.summary]
        if ops:
            shown = self.ops if training_ops else [(n, op) for n, op in self.ops
                                                   if not is_training_node(n, op)]
            left = f", {len(self.ops) - len(shown)} training ops left out" \
                if len(shown) != len(self.ops) else ""
            out.append(f"ops ({len(shown)}{left}):")
            out += [f"  {name} ({op})" for name, op in shown]
        for title, group in (("variables", self.variables), ("trainable variables",
                                                              self.trainable)):
            if group is not None:
                out.append(f"{title} ({len(group)}):")
                out += [f"  {t.name} ({t.dtype}) {list(t.shape)}" for t in group]
        if self.tensors:
            out.append(f"{self.tensor_title} ({len(self.tensors)}):")
        for t in self.tensors:
            out.append(t.describe())
            if t.name in self.values:
                out.append(str(self.values[t.name]))
        for name, value in self.values.items():
            if name not in {t.name for t in self.tensors}:
                out += [f"tensor: {name} ({value.dtype}) {list(value.shape)}", str(value)]
        return out

    def write_pbtxt(self, target: str | os.PathLike[str]) -> None:
        """Write the whole graph in protobuf text format."""
        if self.graph_def is None:
            raise ConversionError(f"{self.path} has no graph to write (no .meta file)")
        from google.protobuf import text_format

        with converting(f"cannot write {target}"):
            Path(target).write_text(text_format.MessageToString(self.graph_def))


def detect_kind(path: str | os.PathLike[str]) -> str:
    """One of ``KINDS`` for ``path``; ``ConversionError`` when it is none of them."""
    p = Path(path)
    if p.is_dir():
        if (p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file():
            return "SavedModel"
        if (p / GRAPH_FILE).is_file() and (p / SIGNATURE_FILE).is_file():
            return "store entry"
        if any(c.name.isdigit() and (c / GRAPH_FILE).is_file() for c in p.iterdir()):
            return "store entry"
        if (p / "checkpoint").is_file() or any(p.glob("*.index")):
            return "checkpoint"
    elif p.is_file() and p.suffix in (".pb", ".pbtxt"):
        return "frozen graph"
    elif Path(f"{p}.index").is_file() or p.suffix in (".index", ".meta") or ".data-" in p.name:
        return "checkpoint"
    raise ConversionError(f"nothing to inspect at {p}: not a checkpoint, .pb file, store entry "
                          "or SavedModel folder")


def _graph_part(report: InspectReport, graph_def: Any) -> None:
    report.graph_def = graph_def
    report.ops = [(n.name, n.op) for n in graph_def.node]
    common = ", ".join(f"{op} {n}" for op, n in Counter(n.op for n in graph_def.node)
                       .most_common(8))
    report.summary.append(f"nodes: {len(graph_def.node)} ({common})")


def _checkpoint_part(report: InspectReport, ckpt: Checkpoint, values: bool,
                     tensor: str | None) -> None:
    report.tensors = list(ckpt.tensors().values())
    report.summary.append(f"weights: {len(report.tensors)} tensors, {ckpt.parameter_count()} "
                          f"parameters, {ckpt.size_bytes} bytes")
    for name in ([t.name for t in report.tensors] if values else []) + ([tensor] if tensor
                                                                       else []):
        report.values[name] = np.asarray(ckpt.value(name))


def _frozen_part(report: InspectReport, graph_def: Any, values: bool, tensor: str | None,
                 variables: bool) -> None:
    _graph_part(report, graph_def)
    consts = {n.name: n for n in graph_def.node if n.op == "Const"}
    from tensorflow.python.framework import tensor_util

    weights = []
    for name, node in consts.items():
        value = tensor_util.MakeNdarray(node.attr["value"].tensor)
        weights.append((CheckpointTensor(name, str(value.dtype), tuple(value.shape)), value))
    report.summary.append("inputs: " + (", ".join(graph_inputs(graph_def)) or "none"))
    report.summary.append("outputs (unconsumed nodes): " + ", ".join(graph_outputs(graph_def)))
    report.summary.append(f"weights: {len(weights)} constants, "
                          f"{sum(int(v.size) for _, v in weights)} numbers")
    if variables:
        report.tensor_title = "constants"
        report.tensors = [t for t, _ in weights]
    if tensor and tensor.rsplit(":", 1)[0] not in consts:
        raise ConversionError(f"{report.path} has no constant named {tensor!r}")
    for t, value in weights:
        if values or (tensor and t.name == tensor.rsplit(":", 1)[0]):
            report.values[t.name] = value


@quietly
def inspect_model(path: str | os.PathLike[str], *, variables: bool = False,
                  trainable: bool = False, values: bool = False,
                  tensor: str | None = None) -> InspectReport:
    """Inspect whatever model is at ``path``; ``ConversionError`` if it cannot be read."""
    kind = detect_kind(path)
    report = InspectReport(str(path), kind, only_tensor=tensor)
    if kind == "checkpoint":
        ckpt = locate_checkpoint(path)
        report.path = ckpt.prefix
        _checkpoint_part(report, ckpt, values, tensor)
        if ckpt.meta is not None:
            meta, graph = variable_list(ckpt.meta)
            _graph_part(report, meta.graph_def)
            report.summary.append("likely outputs: "
                                  + (", ".join(likely_outputs(meta.graph_def)) or "none"))
            report.variables = graph["variables"] if variables else None
            report.trainable = graph["trainable_variables"] if trainable else None
        else:
            report.summary.append("no meta graph (.meta): ops and variables unknown")
            report.variables = report.tensors if variables else None
    elif kind == "frozen graph":
        _frozen_part(report, read_graph_def(Path(path)), values, tensor, variables)
    elif kind == "store entry":
        p = Path(path)
        stored = StoredVersion(p.parent.name, int(p.name) if p.name.isdigit() else 0, p) \
            if (p / GRAPH_FILE).is_file() else ModelRepository(p.parent).get(p.name)
        report.path = str(stored.path)
        sig = stored.read_signature()
        report.summary.append(f"model {stored.name} version {stored.version}"
                              + (f": {sig.description}" if sig.description else ""))
        for label, group in (("input", sig.inputs), ("output", sig.outputs)):
            report.summary += [f"{label} {t.alias} <- {t.name} {t.dtype} "
                               f"{None if t.shape is None else list(t.shape)}" for t in group]
        if sig.labels:
            report.summary.append(f"labels: {len(sig.labels)} ({', '.join(sig.labels[:5])}...)")
        _frozen_part(report, read_graph_def(stored.graph_path), values, tensor, variables)
    else:
        saved = read_saved_model(Path(path), variables=variables, trainable=trainable)
        report.summary += saved.summary
        _graph_part(report, saved.graph_def)
        report.ops += saved.function_ops
        report.variables, report.trainable = saved.variables, saved.trainable
        _checkpoint_part(report, saved.checkpoint, values, tensor)
    return report
