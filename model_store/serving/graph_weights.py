"""Hold a frozen graph's large constants once, as resource variables, and give back the rest.

Why: a frozen graph's weights are ``Const`` nodes, and a ``Session`` over it holds them several
times: the Python ``tf.Graph``'s node definitions, the session's own copy of the graph, grappler's
constant folding and the ``Const`` kernels' tensors. Measured with six 4096x4096 float32 layers
(384 MiB ``model.pb``): +1.9 GiB resident, 5.1x the frozen size, and a 30 s first run (grappler
and oneDNN over 384 MiB of constants). With every ``Const`` of at least ``min_bytes`` turned into a
``VarHandleOp`` + ``ReadVariableOp`` of the same name and dtype (consumers see the same tensor
``name:0``), initialised once by an ``AssignVariableOp`` from a placeholder fed the numpy value,
the graph is small, the weights live once in the session's variables, the first run takes a few
seconds and the model costs about 1.1x its frozen size (see docs/memory.md).

Numeric constants only (strings and other non-numeric types stay constants); constants inside
graph functions (``FunctionDefLibrary``) are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Suffixes of the nodes added per moved constant (made unique against the graph's names).
_HANDLE, _VALUE, _ASSIGN = "/_tfsoap_variable", "/_tfsoap_initial_value", "/_tfsoap_assign"
_NOT_NUMERIC = frozenset({"string", "resource", "variant"})
#: TensorFlow's buffer alignment (Eigen's, up to AVX-512): feeds this aligned are not copied.
_ALIGN = 64


@dataclass
class MovedWeights:
    """The constants moved into variables: what initialises them, and their size."""

    #: feed tensor name (``<const>/_tfsoap_initial_value:0``) -> the constant's value
    values: dict[str, np.ndarray] = field(default_factory=dict)
    #: the ``AssignVariableOp`` names to run once per session
    assign_ops: list[str] = field(default_factory=list)
    nbytes: int = 0

    @property
    def count(self) -> int:
        return len(self.assign_ops)


def _aligned_empty(shape: list[int], dtype: np.dtype[Any]) -> np.ndarray:
    """An uninitialised array whose data starts on a ``_ALIGN``-byte boundary."""
    nbytes = math.prod(shape) * dtype.itemsize
    buffer = np.empty(nbytes + _ALIGN, dtype=np.uint8)
    start = -buffer.ctypes.data % _ALIGN
    return buffer[start:start + nbytes].view(dtype).reshape(shape)


def _const_value(tensor_proto: Any, dtype: Any) -> np.ndarray:
    """The constant's value in a fresh aligned array (bit for bit the proto's bytes).

    TensorFlow feeds an aligned numpy array without copying it, and ``AssignVariableOp`` then
    keeps that buffer as the variable: every session of the version shares this one array.
    """
    shape = [d.size for d in tensor_proto.tensor_shape.dim]
    np_dtype = np.dtype(dtype.as_numpy_dtype)
    content = tensor_proto.tensor_content
    if content:
        source = np.frombuffer(content, dtype=np_dtype).reshape(shape)
    else:  # typed value lists, or one value repeated
        from tensorflow.python.framework import tensor_util

        source = np.asarray(tensor_util.MakeNdarray(tensor_proto), dtype=np_dtype)
    value = _aligned_empty(shape, np_dtype)
    value[...] = source
    return value


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    taken.add(candidate)
    return candidate


def move_large_constants(graph_def: Any, min_bytes: int) -> MovedWeights:
    """Rewrite ``graph_def`` in place: every numeric ``Const`` of ``min_bytes`` or more becomes a
    variable read of the same name; return the values to initialise the variables with."""
    import tensorflow as tf

    moved = MovedWeights()
    taken = {node.name for node in graph_def.node}
    added: list[Any] = []
    for node in graph_def.node:
        if node.op != "Const" or "value" not in node.attr or "dtype" not in node.attr:
            continue
        dtype = tf.dtypes.as_dtype(node.attr["dtype"].type)
        tensor_proto = node.attr["value"].tensor
        if dtype.name in _NOT_NUMERIC or tensor_proto.tensor_shape.unknown_rank:
            continue
        dims = [d.size for d in tensor_proto.tensor_shape.dim]
        nbytes = math.prod(dims) * dtype.size
        if nbytes < min_bytes or any(d < 0 for d in dims):
            continue
        value = _const_value(tensor_proto, dtype)
        type_attr = node.attr["dtype"]
        shape = tf.TensorShape(dims).as_proto()
        handle = tf.compat.v1.NodeDef(name=_unique(node.name + _HANDLE, taken), op="VarHandleOp",
                                      device=node.device)
        handle.attr["dtype"].CopyFrom(type_attr)
        handle.attr["shape"].shape.CopyFrom(shape)
        handle.attr["container"].s = b""
        handle.attr["shared_name"].s = handle.name.encode()
        init = tf.compat.v1.NodeDef(name=_unique(node.name + _VALUE, taken), op="Placeholder")
        init.attr["dtype"].CopyFrom(type_attr)
        init.attr["shape"].shape.CopyFrom(shape)
        assign = tf.compat.v1.NodeDef(name=_unique(node.name + _ASSIGN, taken),
                                      op="AssignVariableOp", input=[handle.name, init.name],
                                      device=node.device)
        assign.attr["dtype"].CopyFrom(type_attr)
        control = [i for i in node.input if i.startswith("^")]
        dtype_attr = tf.compat.v1.AttrValue()
        dtype_attr.CopyFrom(type_attr)
        node.ClearField("attr")
        node.ClearField("input")
        node.op = "ReadVariableOp"
        node.attr["dtype"].CopyFrom(dtype_attr)
        node.input.extend([handle.name, *control])
        added.extend((handle, init, assign))
        moved.values[init.name + ":0"] = value
        moved.assign_ops.append(assign.name)
        moved.nbytes += nbytes
    graph_def.node.extend(added)
    return moved


def initialise(session: Any, moved: MovedWeights) -> None:
    """Assign every moved constant's value to its variable in ``session`` (once per session).

    The variables keep the aligned arrays of ``moved.values`` as their buffers (TensorFlow holds
    a reference), so sessions share them and dropping ``moved.values`` frees nothing twice.
    """
    if moved.assign_ops:
        session.run(moved.assign_ops, feed_dict=moved.values)


def release_memory() -> None:
    """Collect Python garbage and hand freed heap pages back to the system.

    Loading frees hundreds of megabytes (file bytes, the parsed ``GraphDef``, numpy copies) in
    blocks glibc may keep in its heap; ``malloc_trim(0)`` returns them. A no-op off glibc.
    """
    gc.collect()
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


_LIBC: list[Any] = []


def _libc() -> Any:
    if not _LIBC:
        try:
            lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _LIBC.append(lib if hasattr(lib, "malloc_trim") else None)
        except OSError:
            _LIBC.append(None)
    return _LIBC[0]


def resident_bytes() -> int:
    """This process's resident memory (``VmRSS``), or 0 where ``/proc`` is not available."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return 0
