"""Inference optimisations of a frozen ``GraphDef`` that must not change its outputs.

The passes, all TensorFlow's own tools:

1. ``PlaceholderWithDefault`` nodes that are not inputs become ``Identity`` of their default
   (nobody can feed them in serving, and a known value lets the rest fold);
2. ``strip_unused`` / ``remove_training_nodes``: drop what the outputs do not need, and
   ``Identity``, ``CheckNumerics``, ``StopGradient`` nodes left by training;
3. ``optimize_for_inference_lib``: fuse decomposed batch norms and fold batch norms
   (``FusedBatchNorm``, ``BatchNormWithGlobalNormalization``) into the preceding convolution;
4. grappler (``tf_optimizer.OptimizeGraph``): pruning, constant folding, arithmetic and
   dependency optimisation, function inlining, debug stripping;
5. ``affine_folding``: per-channel ``Mul``/``Add`` chains (Keras 3 batch norms) folded into the
   preceding ``Conv2D``/``MatMul`` as scaled weights and one ``BiasAdd``, then grappler again.

``verify_same_outputs`` runs the graph before (twice, to catch random outputs) and after on the
same random inputs and refuses the result unless the outputs are ``allclose``; ``publish`` calls
it for every ``--optimize``.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

from ..errors import ConversionError
from ..store import TensorSpec, numpy_dtype
from .affine_folding import fold_affine_chains
from .tf_failures import converting, one_line

log = logging.getLogger(__name__)

GRAPPLER_PASSES = ("pruning", "function", "constfold", "arithmetic", "dependency",
                   "debug_stripper", "constfold")
RTOL, ATOL = 1e-3, 1e-4


def fix_defaults(graph_def: Any, inputs: Sequence[str]) -> Any:
    """A copy of ``graph_def`` where ``PlaceholderWithDefault`` nodes not in ``inputs`` are
    ``Identity`` of their default value."""
    import tensorflow as tf

    out = tf.compat.v1.GraphDef()
    out.CopyFrom(graph_def)
    keep = set(inputs)
    for node in out.node:
        if node.op == "PlaceholderWithDefault" and node.name not in keep:
            node.op = "Identity"
            dtype = node.attr["dtype"].type
            for attr in list(node.attr):
                del node.attr[attr]
            node.attr["T"].type = dtype
    return out


def _grappler(graph_def: Any, outputs: Sequence[str]) -> Any:
    import tensorflow as tf
    from tensorflow.core.protobuf import meta_graph_pb2
    from tensorflow.python.grappler import tf_optimizer

    meta = meta_graph_pb2.MetaGraphDef()
    meta.graph_def.CopyFrom(graph_def)
    meta.collection_def["train_op"].node_list.value.extend(outputs)  # grappler keeps fetches
    config = tf.compat.v1.ConfigProto()
    rewrite = config.graph_options.rewrite_options
    rewrite.optimizers.extend(GRAPPLER_PASSES)
    rewrite.min_graph_nodes = -1
    rewrite.fail_on_optimizer_errors = False
    return tf_optimizer.OptimizeGraph(config, meta, verbose=False)


def optimize_graph_def(graph_def: Any, inputs: Sequence[str], outputs: Sequence[str]) -> Any:
    """The optimised copy of a frozen ``graph_def`` with input nodes ``inputs`` and output
    nodes ``outputs`` (node names, kept by every pass)."""
    import tensorflow as tf
    from tensorflow.python.tools import optimize_for_inference_lib as ofi

    outputs = list(dict.fromkeys(outputs))
    with converting("cannot optimize the frozen graph"):
        gd = fix_defaults(graph_def, inputs)
        gd = tf.compat.v1.graph_util.extract_sub_graph(gd, outputs)
        gd = tf.compat.v1.graph_util.remove_training_nodes(gd, protected_nodes=list(inputs)
                                                           + outputs)
        gd = ofi.fuse_decomposed_batch_norm(gd)
        gd = ofi.fold_batch_norms(gd)
        gd = _grappler(gd, outputs)
        gd, folded = fold_affine_chains(gd, list(inputs) + outputs)
        if folded:
            gd = _grappler(tf.compat.v1.graph_util.extract_sub_graph(gd, outputs), outputs)
        gd = tf.compat.v1.graph_util.extract_sub_graph(gd, outputs)
        ofi.ensure_graph_is_valid(gd)
    return gd


def sample_inputs(specs: Sequence[TensorSpec], batch: int = 3, seed: int = 0
                  ) -> dict[str, np.ndarray] | None:
    """Random feeds fitting ``specs`` (unknown dimensions: ``batch``); None if impossible."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in specs:
        if spec.shape is None or spec.dtype == "DT_STRING":
            return None
        shape = tuple(batch if d == -1 else d for d in spec.shape)
        dt = numpy_dtype(spec.dtype)
        if dt.kind == "f":
            feeds[spec.name] = rng.standard_normal(shape).astype(dt)
        elif dt.kind == "b":
            feeds[spec.name] = rng.random(shape) < 0.5
        else:  # small non-negative integers: safe as indices, lengths or ids
            feeds[spec.name] = rng.integers(0, 2, shape).astype(dt)
    return feeds


def run_graph_def(graph_def: Any, feeds: dict[str, np.ndarray], fetches: Sequence[str]
                  ) -> list[np.ndarray]:
    """Import ``graph_def`` into a fresh graph and run ``fetches`` once on ``feeds``."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return [np.asarray(v) for v in session.run(list(fetches), feeds)]


def verify_same_outputs(before: Any, after: Any, inputs: Sequence[TensorSpec],
                        outputs: Sequence[TensorSpec]) -> float | None:
    """Run both graphs on the same random inputs; the largest absolute difference, or None
    when the inputs cannot be sampled. ``ConversionError`` unless the outputs are allclose.

    The frozen graph runs twice in one session first: if its own outputs differ (random ops),
    no comparison can mean anything, and that is an error rather than a "max abs diff 0"."""
    import tensorflow as tf

    from .determinism import max_difference, run_repeatedly

    feeds = sample_inputs(inputs)
    if feeds is None:
        log.warning("cannot sample inputs %s: optimised graph not verified",
                    [s.alias for s in inputs])
        return None
    names = [s.name for s in outputs]
    try:
        expected, again = run_repeatedly(before, feeds, names, 2)
    except tf.errors.OpError as exc:  # random inputs may be invalid for this model
        log.warning("frozen graph failed on random inputs (%s): optimised graph not verified",
                    one_line(exc))
        return None
    drift = max_difference(expected, again)
    if drift > 0:
        raise ConversionError(f"the frozen graph gives different outputs on two runs of the "
                              f"same inputs (max abs diff {drift:.3g}): its optimized copy "
                              "cannot be checked; store it without --optimize")
    with converting("the optimized graph does not run"):
        got = run_graph_def(after, feeds, names)
    worst = 0.0
    for spec, want, have in zip(outputs, expected, got):
        if want.shape != have.shape or not np.allclose(want, have, rtol=RTOL, atol=ATOL,
                                                       equal_nan=True):
            diff = np.abs(want.astype(np.float64) - have.astype(np.float64)).max() \
                if want.shape == have.shape else float("inf")
            raise ConversionError(f"the optimized graph changes output {spec.alias!r} "
                                  f"(max abs diff {diff:.3g}); store it without --optimize")
        if want.size and want.dtype.kind in "fiu":
            worst = max(worst, float(np.abs(want.astype(np.float64)
                                            - have.astype(np.float64)).max()))
    return worst
