"""What a big frozen model costs in a served process, with its weights as variables and without.

Builds frozen MLPs of about 50, 200 and 400 MB (random float32 weights, a fixed seed), serves
each alone in a ``tfsoap serve`` process with ``--weights-as-variables`` and
``--no-weights-as-variables``, and prints for each: the idle server's resident memory over a
baseline server holding a tiny model, as a ratio of the frozen size; the load time (start to
``/readyz``, and the registry's own ``load_seconds``); the median Predict time at batch 1 and 32
through the SOAP client, with both servers up side by side and called in turn (the ratio
constants/variables is the median of the per-round ratios: above 1 means variables are faster);
and whether both answered the same bytes. Writes ``benchmarks/results/memory.json``.

    PYTHONPATH=$PWD python benchmarks/memory_bench.py [--sizes 50,200,400] [--rounds 15]

Bounded: one server at a time for memory, two for speed; each Predict loop at most ``--rounds``
rounds and 60 s; the 400 MB model without variables peaks near 3 GB (4.5 GB for the two servers
of the speed phase); the whole run takes about 12 minutes here.
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
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from bench_models import REPO  # noqa: E402
from bench_server import ServerProcess  # noqa: E402

from model_store import ModelRepository, ModelSignature, TensorSpec  # noqa: E402

#: size label (MB) -> (layers, width) of the MLP: width x width float32 weights per layer
SHAPES = {50: (1, 3584), 200: (3, 4096), 400: (6, 4096), 0: (1, 64)}
MiB = 2**20


def mlp_graph(layers: int, width: int, seed: int = 1) -> bytes:
    """Frozen GraphDef bytes of ``y = relu(...relu(x @ W1 + b1)... @ Wn + bn)``."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    graph = tf.Graph()
    with graph.as_default():
        h = tf.compat.v1.placeholder(tf.float32, [None, width], name="x")
        for i in range(layers):
            w = rng.standard_normal((width, width), dtype=np.float32) / np.float32(width ** 0.5)
            b = rng.standard_normal(width, dtype=np.float32) * np.float32(0.01)
            h = tf.nn.relu(tf.matmul(h, tf.constant(w, name=f"dense{i}/w"))
                           + tf.constant(b, name=f"dense{i}/b"), name=f"dense{i}/relu")
        tf.identity(h, name="y")
    return graph.as_graph_def().SerializeToString()  # type: ignore[no-any-return]


def write_model(root: Path, size: int) -> tuple[Path, int, int]:
    """A store holding only the ``mlp`` model of about ``size`` MB; its path, bytes, width."""
    layers, width = SHAPES[size]
    store = root / f"store{size}"
    sig = ModelSignature(inputs=(TensorSpec("x", "x:0", "DT_FLOAT", (-1, width)),),
                         outputs=(TensorSpec("y", "y:0", "DT_FLOAT", (-1, width)),),
                         description=f"MLP {layers}x{width}x{width} float32, random weights")
    graph = mlp_graph(layers, width)
    ModelRepository(store).write_version("mlp", graph, sig, 1)
    return store, len(graph), width


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its children (worker processes, if any)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as fh:
                total += next(int(line.split()[1]) * 1024 for line in fh
                              if line.startswith("VmRSS:"))
            with open(f"/proc/{p}/task/{p}/children") as fh:
                todo.extend(int(c) for c in fh.read().split())
        except (OSError, StopIteration):
            continue
    return total


def settle_rss(pid: int) -> int:
    """The idle RSS once it stops moving (at most 5 s)."""
    last = tree_rss(pid)
    for _ in range(10):
        time.sleep(0.5)
        now = tree_rss(pid)
        if abs(now - last) < MiB:
            return now
        last = now
    return last


def predict_client(url: str) -> Any:
    from tfsoap_client import PredictClient

    return PredictClient(url, timeout=120)


def batch_input(width: int, batch: int) -> np.ndarray:
    return np.random.default_rng(3).standard_normal((batch, width), dtype=np.float32)


def paired_speed(urls: dict[str, str], width: int, batch: int, rounds: int,
                 max_s: float = 60.0) -> dict[str, Any]:
    """Median Predict milliseconds at ``batch`` rows on each server, the servers up side by
    side and called in turn (the order alternating), so that a busy moment of the machine falls
    on both; and the median of the per-round ratios ``constants / variables``."""
    clients = {mode: predict_client(url) for mode, url in urls.items()}
    x = batch_input(width, batch)
    for client in clients.values():  # warm-up
        client.predict("mlp", {"x": x})
    times: dict[str, list[float]] = {mode: [] for mode in urls}
    ratios: list[float] = []
    stop = time.monotonic() + max_s
    for i in range(rounds):
        if time.monotonic() > stop:
            break
        order = list(clients) if i % 2 == 0 else list(clients)[::-1]
        took = {}
        for mode in order:
            t = time.perf_counter()
            clients[mode].predict("mlp", {"x": x})
            took[mode] = (time.perf_counter() - t) * 1000
            times[mode].append(took[mode])
        ratios.append(took["constants"] / took["variables"])
    out: dict[str, Any] = {f"{mode}_ms": round(statistics.median(t), 3)
                           for mode, t in times.items()}
    out["rounds"] = len(ratios)
    out["ratio_constants_over_variables"] = round(statistics.median(ratios), 3)
    return out


def serve(store: Path, on: bool, log_dir: Path, tag: str) -> tuple[ServerProcess, float]:
    flag = "--weights-as-variables" if on else "--no-weights-as-variables"
    started = time.monotonic()
    server = ServerProcess(store, "off", 0, 0, [flag, "--max-body-bytes", str(64 * MiB)],
                           log_dir / f"server-{tag}.log")
    server.wait_ready(timeout=300)
    return server, time.monotonic() - started


def load_seconds(url: str) -> float:
    from tfsoap_client import PredictClient

    models = PredictClient(url, timeout=30).status().models
    return float(models[0].get("load_seconds") or 0.0) if models else 0.0


def measure(size: int, root: Path, rounds: int, baseline: int) -> dict[str, Any]:
    store, nbytes, width = write_model(root, size)
    row: dict[str, Any] = {"size_mb": size, "frozen_bytes": nbytes, "width": width,
                           "layers": SHAPES[size][0]}
    answers = {}
    for on in (True, False):  # memory: each server alone
        mode = "variables" if on else "constants"
        server, ready_s = serve(store, on, root, f"{size}-{mode}")
        try:
            url = f"http://127.0.0.1:{server.port}/"
            rss = settle_rss(server.pid)
            answers[mode] = predict_client(url).predict("mlp", {"x": batch_input(width, 1)})["y"]
            row[mode] = {"ready_seconds": round(ready_s, 2), "load_seconds": load_seconds(url),
                         "idle_rss_bytes": rss, "over_baseline_bytes": rss - baseline,
                         "ratio_of_frozen": round((rss - baseline) / nbytes, 2)}
        finally:
            server.stop()
    # speed: both servers up at once, called in turn
    servers = {mode: serve(store, mode == "variables", root, f"{size}-{mode}-speed")[0]
               for mode in ("variables", "constants")}
    try:
        urls = {mode: f"http://127.0.0.1:{s.port}/" for mode, s in servers.items()}
        for batch in (1, 32):
            speed = paired_speed(urls, width, batch, rounds)
            for mode in ("variables", "constants"):
                row[mode][f"predict_ms_batch{batch}"] = speed[f"{mode}_ms"]
            row[f"speed_ratio_batch{batch}"] = speed["ratio_constants_over_variables"]
            row[f"speed_rounds_batch{batch}"] = speed["rounds"]
    finally:
        for server in servers.values():
            server.stop()
    # grappler hands Const weights to oneDNN kernels that may round differently (docs/memory.md)
    row["same_outputs"] = bool(np.array_equal(answers["variables"], answers["constants"]))
    row["max_abs_difference"] = float(np.max(np.abs(answers["variables"]
                                                    - answers["constants"])))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="50,200,400")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--out", default=str(HERE / "results" / "memory.json"))
    args = parser.parse_args()
    os.environ["PYTHONPATH"] = str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")
    rows = []
    with tempfile.TemporaryDirectory(prefix="tfsoap-membench-") as tmp:
        root = Path(tmp)
        store, _, _ = write_model(root, 0)
        base, _ = serve(store, True, root, "baseline")
        try:
            baseline = settle_rss(base.pid)
        finally:
            base.stop()
        print(f"baseline server (tiny model): {baseline / MiB:.0f} MiB resident")
        print(f"{'model':>8} {'mode':>10} {'ready s':>8} {'load s':>7} {'+RSS MiB':>9} "
              f"{'x frozen':>8} {'b1 ms':>7} {'b32 ms':>7}")
        for size in (int(s) for s in args.sizes.split(",")):
            row = measure(size, root, args.rounds, baseline)
            rows.append(row)
            for mode in ("variables", "constants"):
                r = row[mode]
                print(f"{row['frozen_bytes'] / MiB:7.0f}M {mode:>10} {r['ready_seconds']:8.1f} "
                      f"{r['load_seconds']:7.1f} {r['over_baseline_bytes'] / MiB:9.0f} "
                      f"{r['ratio_of_frozen']:8.2f} {r['predict_ms_batch1']:7.1f} "
                      f"{r['predict_ms_batch32']:7.1f}")
            print(f"{'':>8} speed constants/variables: batch 1 x{row['speed_ratio_batch1']}, "
                  f"batch 32 x{row['speed_ratio_batch32']}; same outputs: {row['same_outputs']} "
                  f"(max difference {row['max_abs_difference']:.1e})",
                  flush=True)
    result = {"benchmark": "memory", "machine": platform.machine(), "cpus": os.cpu_count(),
              "python": platform.python_version(), "baseline_rss_bytes": baseline,
              "models": rows}
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
