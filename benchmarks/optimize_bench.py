"""What freezing and ``--optimize`` buy: sizes, node counts and ``Session.run`` time.

Run from the repository root::

    TF_CPP_MIN_LOG_LEVEL=2 python benchmarks/optimize_bench.py [--rounds 7] [--runs 200]

Part 1 freezes the test models of ``tests/model_store/tools/builders.py`` and prints checkpoint (or
source) size against frozen size and node counts. Part 2 freezes models with batch norm twice,
plain and ``--optimize``, and times ``Session.run`` of each (median of ``--rounds`` rounds of
``--runs`` calls, the two graphs interleaved round by round, same inputs, 2 intra-op threads),
printing the speed-up ratio. Everything goes to ``benchmarks/results/optimize.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from model_store.tools.convert import convert_keras, convert_savedmodel  # noqa: E402
from model_store.tools.freeze import freeze_checkpoint  # noqa: E402
from model_store.tools.publish import FreezeReport  # noqa: E402
from tests.model_store.tools import builders  # noqa: E402


def _row(label: str, report: FreezeReport) -> dict[str, Any]:
    return {"model": label, "source_kind": report.source_kind,
            "source_bytes": report.source_bytes, "frozen_bytes": report.frozen_bytes,
            "frozen_over_source": round(report.size_ratio, 3),
            "nodes_before": report.nodes_before, "nodes_frozen": report.nodes_frozen,
            "nodes_optimized": report.nodes_optimized}


def freeze_figures(work: Path) -> list[dict[str, Any]]:
    """Freeze (and optimise) each test model; sizes and node counts."""
    store = work / "store"
    rows = []
    clf = builders.train_classifier(_mk(work / "clf"))
    rows.append(_row("classifier (MLP 16-64-10, Adam)",
                     freeze_checkpoint(clf.path, store, "clf", outputs=["probabilities"],
                                       optimize=True)))
    two = builders.train_two_scopes(_mk(work / "two"))
    for scope in ("model_a", "model_b"):
        rows.append(_row(f"two scopes: {scope}", freeze_checkpoint(
            two.path, store, scope, scope=scope, outputs=["logits"], optimize=True)))
    drop = builders.train_with_dropout(_mk(work / "drop"))
    rows.append(_row("dropout net via --builder", freeze_checkpoint(
        drop.path, store, "drop", builder=builders.build_inference, optimize=True)))
    bn = builders.train_conv_bn(_mk(work / "bn"))
    rows.append(_row("conv + fused batch norm", freeze_checkpoint(
        bn.path, store, "bn", outputs=["logits"], optimize=True)))
    layers = builders.write_custom_layers(_mk(work / "layers"))
    keras_custom = builders.save_keras_custom(_mk(work / "kc"), layers)
    rows.append(_row("Keras .keras, custom layer", convert_keras(
        keras_custom.path, store, "kc", custom_objects={"Scale": layers.Scale}, optimize=True)))
    rows.append(_row("Keras .h5, custom layer", convert_keras(
        keras_custom.extra["h5"], store, "kh", custom_objects={"Scale": layers.Scale},
        optimize=True)))
    cnn = builders.save_keras_cnn(_mk(work / "cnn"))
    rows.append(_row("Keras .h5 CNN", convert_keras(cnn.path, store, "cnn", optimize=True)))
    saved = builders.save_savedmodel(_mk(work / "sm"))
    rows.append(_row("SavedModel tf.Module", convert_savedmodel(saved.path, store, "sm",
                                                                optimize=True)))
    return rows


def _mk(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _callable(pb: Path, inputs: Sequence[str], outputs: Sequence[str]) -> Any:
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(tf.compat.v1.GraphDef.FromString(pb.read_bytes()),
                                      name="")
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=2,
                                      inter_op_parallelism_threads=1)
    session = tf.compat.v1.Session(graph=graph, config=config)
    return session.make_callable([graph.get_tensor_by_name(n) for n in outputs],
                                 feed_list=[graph.get_tensor_by_name(n) for n in inputs])


def time_pair(plain: FreezeReport, fast: FreezeReport, feeds: list[np.ndarray], rounds: int,
              runs: int) -> dict[str, Any]:
    """Median seconds per ``Session.run`` of the plain and optimised graphs."""
    sig = plain.signature
    ins, outs = [t.name for t in sig.inputs], [t.name for t in sig.outputs]
    fns = {"frozen": _callable(plain.stored.graph_path, ins, outs),
           "optimized": _callable(fast.stored.graph_path, ins, outs)}
    for fn in fns.values():  # warm up: grappler runs on the first call
        for _ in range(5):
            fn(*feeds)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for key, fn in fns.items():
            start = time.perf_counter()
            for _ in range(runs):
                fn(*feeds)
            times[key].append((time.perf_counter() - start) / runs)
    frozen, optimized = statistics.median(times["frozen"]), statistics.median(times["optimized"])
    return {"batch": int(feeds[0].shape[0]), "ms_frozen": round(frozen * 1e3, 4),
            "ms_optimized": round(optimized * 1e3, 4), "speedup": round(frozen / optimized, 3),
            "nodes_frozen": plain.nodes_frozen, "nodes_optimized": fast.nodes_optimized}


def _trained_looking(model: Any) -> None:
    """Give batch norms and biases non-trivial values, as training would (fresh layers have
    zero biases and identity batch norms, which constant folding would simply delete)."""
    import keras

    rng = np.random.default_rng(0)
    for layer in model.layers:
        weights = layer.get_weights()
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, var = weights
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.1, beta.shape),
                               rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 1.5, var.shape)])
        elif len(weights) == 2:
            layer.set_weights([weights[0], rng.normal(0, 0.1, weights[1].shape)])


def speed_figures(work: Path, rounds: int, runs: int) -> list[dict[str, Any]]:
    """Plain vs optimised ``Session.run`` time for batch-norm models, batch 1 and 16."""
    import keras

    store = work / "speed"
    rows = []
    bn = builders.train_conv_bn(_mk(work / "bn_big"), size=32, width=32, blocks=4)
    plain = freeze_checkpoint(bn.path, store, "bn", outputs=["logits"])
    fast = freeze_checkpoint(bn.path, store, "bn", outputs=["logits"], optimize=True)
    for batch in (1, 16):
        x = np.random.default_rng(0).standard_normal((batch, 32, 32, 3)).astype(np.float32)
        rows.append({"model": "TF1 CNN, 4 x (conv 3x3 + FusedBatchNorm + relu), 32x32x3",
                     **time_pair(plain, fast, [x], rounds, runs)})
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32, 32, 3))] + [
        layer for width in (16, 32, 32, 64) for layer in (
            keras.layers.Conv2D(width, 3, padding="same"), keras.layers.BatchNormalization(),
            keras.layers.ReLU())] + [keras.layers.GlobalAveragePooling2D(),
                                     keras.layers.Dense(10)])
    _trained_looking(model)
    path = work / "keras_bn.keras"
    model.save(path)
    plain = convert_keras(path, store, "kbn")
    fast = convert_keras(path, store, "kbn", optimize=True)
    for batch in (1, 16):
        x = np.random.default_rng(0).standard_normal((batch, 32, 32, 3)).astype(np.float32)
        rows.append({"model": "Keras CNN, 4 x (Conv2D + BatchNormalization + ReLU), 32x32x3",
                     **time_pair(plain, fast, [x], rounds, runs)})
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "optimize.json"))
    args = parser.parse_args(argv)
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        sizes = freeze_figures(work)
        speed = speed_figures(work, args.rounds, args.runs)
    print(f"{'model':<36} {'source':>9} {'frozen':>8} {'ratio':>6} {'nodes':>18}")
    for r in sizes:
        nodes = f"{r['nodes_before']}->{r['nodes_frozen']}->{r['nodes_optimized']}"
        print(f"{r['model']:<36} {r['source_bytes']:>9} {r['frozen_bytes']:>8} "
              f"{r['frozen_over_source']:>6} {nodes:>18}")
    for r in speed:
        print(f"{r['model']} batch {r['batch']}: frozen {r['ms_frozen']:.3f} ms, optimized "
              f"{r['ms_optimized']:.3f} ms, speed-up x{r['speedup']:.2f} "
              f"({r['nodes_frozen']} -> {r['nodes_optimized']} nodes)")
    result = {"tensorflow": tf.__version__, "python": platform.python_version(),
              "cpus": os.cpu_count(), "rounds": args.rounds, "runs_per_round": args.runs,
              "method": "median seconds per Session.run over rounds; plain and optimized "
                        "interleaved; 2 intra-op threads; after 5 warm-up calls",
              "freeze": sizes, "optimize_speed": speed}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
