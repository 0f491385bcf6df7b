"""Fold per-channel scales and shifts into the convolution or matmul before them.

Keras 3 writes a batch norm at inference as ``x * scale + shift`` (``Mul`` and ``AddV2`` of
per-channel constants once grappler has folded the moving statistics), after the layer's own
``BiasAdd``. TensorFlow's ``fold_batch_norms`` only knows ``FusedBatchNorm`` ops, so that chain
stays, and it also keeps the runtime from fusing ``Conv2D + BiasAdd + Relu`` into one kernel.

``fold_affine_chains`` rewrites ``Conv2D | DepthwiseConv2dNative | MatMul`` followed by a chain
of ``BiasAdd``/``Add``/``AddV2``/``Sub``/``Mul`` with constant per-channel (or scalar) operands
into the same op with scaled weights and a single ``BiasAdd`` that takes the chain's last name,
so every consumer still finds its input. Only float32 graphs in NHWC layout are touched; chains
whose intermediate results are used elsewhere are left alone.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Sequence

import numpy as np

_LINEAR = ("Conv2D", "DepthwiseConv2dNative", "MatMul")
_SHIFT = {"BiasAdd": 1.0, "Add": 1.0, "AddV2": 1.0, "Sub": -1.0}


def _const(nodes: dict[str, Any], name: str) -> np.ndarray | None:
    from tensorflow.python.framework import tensor_util

    node = nodes.get(name.lstrip("^").split(":")[0])
    if node is None or node.op != "Const" or ":" in name and not name.endswith(":0"):
        return None
    return np.asarray(tensor_util.MakeNdarray(node.attr["value"].tensor))


def _per_channel(value: np.ndarray | None, channels: int) -> np.ndarray | None:
    """``value`` as a vector of ``channels`` if it broadcasts per channel (or is a scalar)."""
    if value is None or value.dtype != np.float32:
        return None
    if value.size == 1 and value.ndim <= 1:
        return np.full(channels, value.reshape(()), np.float32)
    if value.shape[-1] == channels and value.size == channels:
        return value.reshape(channels)
    return None


def _channels(op: Any, weights: np.ndarray) -> int | None:
    if op.op == "MatMul":
        if op.attr["transpose_b"].b:
            return None
        return int(weights.shape[-1])
    if op.attr["data_format"].s not in (b"", b"NHWC"):
        return None
    if op.op == "DepthwiseConv2dNative":
        return int(weights.shape[2] * weights.shape[3])
    return int(weights.shape[-1])


def fold_affine_chains(graph_def: Any, protected: Sequence[str] = ()) -> tuple[Any, int]:
    """A copy of ``graph_def`` with affine chains folded, and how many were folded.

    Nodes in ``protected`` (the outputs) may end a chain but are never folded away. The nodes
    a chain leaves unused stay in the copy: prune it with ``extract_sub_graph``.
    """
    import tensorflow as tf
    from tensorflow.python.framework import tensor_util

    out = tf.compat.v1.GraphDef()
    out.CopyFrom(graph_def)
    nodes = {n.name: n for n in out.node}
    consumers: dict[str, list[Any]] = defaultdict(list)
    for n in out.node:
        for i in n.input:
            consumers[i.lstrip("^").split(":")[0]].append(n)
    keep = set(protected)
    folded = 0
    for op in [n for n in out.node if n.op in _LINEAR]:
        weights = _const(nodes, op.input[1])
        if weights is None or weights.dtype != np.float32 or \
                len(consumers[op.input[1].split(":")[0]]) != 1:
            continue
        channels = _channels(op, weights)
        if channels is None:
            continue
        scale: np.ndarray = np.ones(channels, np.float32)
        shift: np.ndarray = np.zeros(channels, np.float32)
        chain, current = [], op
        while len(consumers[current.name]) == 1 and current.name not in keep:
            nxt = consumers[current.name][0]
            if nxt.op not in _SHIFT and nxt.op != "Mul" or len(nxt.input) != 2:
                break
            if nxt.input[0].split(":")[0] == current.name:
                other = nxt.input[1]
            elif nxt.op in ("Mul", "Add", "AddV2"):
                other = nxt.input[0]
            else:
                break
            value = _per_channel(_const(nodes, other), channels)
            if value is None:
                break
            if nxt.op == "Mul":
                scale, shift = scale * value, shift * value
            else:
                shift = shift + _SHIFT[nxt.op] * value
            chain.append(nxt)
            current = nxt
        if not chain or (len(chain) == 1 and chain[0].op == "BiasAdd"):
            continue
        if op.op == "DepthwiseConv2dNative":
            new_weights = weights * scale.reshape(weights.shape[2], weights.shape[3])
        else:
            new_weights = weights * scale
        nodes[op.input[1].split(":")[0]].attr["value"].tensor.CopyFrom(
            tensor_util.make_tensor_proto(new_weights.astype(np.float32)))
        last = chain[-1]
        last_name = last.name
        bias = out.node.add()
        bias.name, bias.op = f"{last_name}/folded_bias", "Const"
        bias.attr["dtype"].type = tf.float32.as_datatype_enum
        bias.attr["value"].tensor.CopyFrom(tensor_util.make_tensor_proto(shift.astype(np.float32)))
        last.Clear()
        last.name, last.op = last_name, "BiasAdd"
        last.input.extend([op.name, bias.name])
        last.attr["T"].type = tf.float32.as_datatype_enum
        last.attr["data_format"].s = b"NHWC"
        folded += 1
    return out, folded
