"""Catch frozen graphs whose answers change from one request to the next.

A training graph often keeps random ops on the path to its outputs: dropout
(``RandomUniform``), noise layers (``RandomStandardNormal``), sampling (``Multinomial``,
``RandomShuffle``). Frozen as they are, two identical requests get different answers, and nothing
else in the pipeline notices: the optimizer check compares two *fresh* sessions, and a seeded
random op draws the same first values in each. So the tools look for random ops among the frozen
graph's nodes (and its function library), and when there are some, run the graph twice on the
same inputs *in one session*: the second run draws new random values. Outputs that still agree
(dropout whose rate defaults to 0) are harmless; otherwise the tools refuse unless the user
allows random ops, and then warn.

``default_values`` reads the values ``PlaceholderWithDefault`` nodes keep, so the report can show
them (``is_training = True`` is a training graph frozen by mistake).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..store import TensorSpec

#: Op types that draw new random values on every run (stateless ops, given a constant seed,
#: do not: they are not listed).
RANDOM_OPS = frozenset({
    "RandomUniform", "RandomUniformInt", "RandomStandardNormal", "TruncatedNormal",
    "ParameterizedTruncatedNormal", "Multinomial", "RandomShuffle", "RandomGamma",
    "RandomPoisson", "RandomPoissonV2", "RandomCrop", "RandomBinomial",
    "StatefulUniform", "StatefulUniformInt", "StatefulUniformFullInt",
    "StatefulStandardNormal", "StatefulStandardNormalV2", "StatefulTruncatedNormal",
    "StatefulRandomBinomial", "RngSkip", "RngReadAndSkip",
    "UniformCandidateSampler", "LogUniformCandidateSampler", "LearnedUnigramCandidateSampler",
    "FixedUnigramCandidateSampler", "AllCandidateSampler", "ThreadUnsafeUnigramCandidateSampler",
    "ExperimentalRandomDataset", "RandomDataset", "ShuffleDataset", "ShuffleDatasetV2",
    "ShuffleDatasetV3", "ShuffleAndRepeatDataset", "ShuffleAndRepeatDatasetV2",
})

#: How many runs in one session must agree for random ops to count as harmless.
RUNS = 3


def random_ops(graph_def: Any) -> list[tuple[str, str]]:
    """``(node name, op type)`` of every random op in ``graph_def`` and its functions."""
    found = [(n.name, n.op) for n in graph_def.node if n.op in RANDOM_OPS]
    for fn in graph_def.library.function:
        found += [(f"{fn.signature.name}/{n.name}", n.op) for n in fn.node_def
                  if n.op in RANDOM_OPS]
    return found


def describe_ops(found: Sequence[tuple[str, str]], limit: int = 3) -> str:
    """``a/RandomUniform (RandomUniform), ... and 2 more``: short enough for one line."""
    shown = ", ".join(f"{name} ({op})" for name, op in found[:limit])
    return shown + (f" and {len(found) - limit} more" if len(found) > limit else "")


def run_repeatedly(graph_def: Any, feeds: dict[str, np.ndarray], fetches: Sequence[str],
                   runs: int) -> list[list[np.ndarray]]:
    """Import ``graph_def`` and run ``fetches`` ``runs`` times in one session."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as session:
        return [[np.asarray(v) for v in session.run(list(fetches), feeds)]
                for _ in range(runs)]


def max_difference(first: Sequence[np.ndarray], second: Sequence[np.ndarray]) -> float:
    """The largest absolute difference between two runs' outputs (inf on a shape change,
    1 for differing non-numeric values)."""
    worst = 0.0
    for a, b in zip(first, second):
        if a.shape != b.shape:
            return float("inf")
        if a.size == 0:
            continue
        if a.dtype.kind in "fiub" and b.dtype.kind in "fiub":
            diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
            worst = max(worst, float(np.nanmax(diff)) if not np.isnan(diff).all() else 0.0)
        elif not np.array_equal(a, b):
            worst = max(worst, 1.0)
    return worst


def run_to_run_difference(graph_def: Any, inputs: Sequence[TensorSpec],
                          outputs: Sequence[TensorSpec], runs: int = RUNS) -> float | None:
    """Largest difference between repeated runs on the same random inputs in one session;
    None when the inputs cannot be sampled or the graph fails on them."""
    import tensorflow as tf

    from .optimize import sample_inputs

    feeds = sample_inputs(inputs)
    if feeds is None:
        return None
    try:
        results = run_repeatedly(graph_def, feeds, [s.name for s in outputs], runs)
    except (tf.errors.OpError, ValueError):
        return None
    return max(max_difference(results[0], other) for other in results[1:])


def default_values(graph_def: Any, names: Sequence[str]) -> dict[str, str]:
    """The value each ``PlaceholderWithDefault`` in ``names`` keeps, as short text
    (``"True"``, ``"0.0"``, ``"float32 [64]"`` for a large one; ``"computed"`` when the default
    is not a constant)."""
    from tensorflow.python.framework import tensor_util

    nodes = {n.name: n for n in graph_def.node}
    shown: dict[str, str] = {}
    for name in names:
        node = nodes.get(name)
        source = nodes.get(node.input[0].split(":")[0].lstrip("^")) if node is not None \
            and node.input else None
        while source is not None and source.op == "Identity" and source.input:
            source = nodes.get(source.input[0].split(":")[0].lstrip("^"))
        if source is None or source.op != "Const":
            shown[name] = "computed"
            continue
        value = tensor_util.MakeNdarray(source.attr["value"].tensor)
        if value.size <= 8:
            item = value.tolist()
            shown[name] = str(item.decode("utf-8", "replace") if isinstance(item, bytes)
                              else item)
        else:
            shown[name] = f"{value.dtype} {list(value.shape)}"
    return shown
