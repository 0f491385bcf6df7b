"""Side by side: this tree's server against another tree's (the cheroot front before issue 9),
in one run, the configurations taking turns.

``serve_bench.py`` compares its one-worker rows with a saved JSON (``before-granian.json``),
taken on another day; on this shared machine the same server's figures move by half between
hours, so that ratio says little. Here every server is up at once and the load phases
interleave (the order alternating round by round), so a busy moment falls on all of them:

    git worktree add /tmp/tfsoap-cheroot 5e95237     # the last commit with the cheroot front
    PYTHONPATH=$PWD python benchmarks/front_ab.py --tree before=/tmp/tfsoap-cheroot

Each ``--tree NAME=PATH[:ARGS]`` serves the CNN of ``bench_models`` from the source tree at
PATH (run with ``PYTHONPATH=PATH``; ARGS are extra ``tfsoap serve`` arguments, space separated);
``now`` (this tree, default settings, one worker) is always one of them. The load is CNN batch
1 with ``tensor_content``, ``--concurrency`` keep-alive clients in this process. Printed per
concurrency and server: median requests/s, server CPU per request (its process tree), p50; and
the median over rounds of each round's ratio to ``before`` (or the first ``--tree``). Writes
``benchmarks/results/front_ab.json``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import numpy as np  # noqa: E402
from bench_models import REPO, build_store  # noqa: E402
from bench_server import free_port  # noqa: E402
from observability_bench import tree_cpu_s  # noqa: E402
from soap_bodies import HEADERS, predict_body  # noqa: E402


def start(name: str, tree: str, extra: list[str], store: Path, log_dir: Path
          ) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = dict(os.environ, PYTHONPATH=tree, TF_CPP_MIN_LOG_LEVEL="2")
    log = open(log_dir / f"{name}.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "soap_server.cli", "serve", "--port", str(port),
                             "--model-store", str(store), *extra], env=env, cwd=tree,
                            stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/readyz")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited; see {log_dir / (name + '.log')}")
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{name} was not ready within 300 s")


def load(port: int, body: bytes, conc: int, seconds: float) -> tuple[int, float, float]:
    """(requests, seconds, p50 ms) of ``conc`` keep-alive clients; a failure is fatal."""
    lock = threading.Lock()
    latencies: list[float] = []
    failures: list[str] = []
    stop = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        mine: list[float] = []
        while time.monotonic() < stop and not failures:
            t = time.perf_counter()
            conn.request("POST", "/", body=body, headers=HEADERS)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                failures.append(f"HTTP {resp.status}: {data[:200]!r}")
            mine.append(time.perf_counter() - t)
        conn.close()
        with lock:
            latencies.extend(mine)

    began = time.monotonic()
    threads = [threading.Thread(target=client) for _ in range(conc)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    if failures:
        raise RuntimeError(failures[0])
    return len(latencies), time.monotonic() - began, statistics.median(latencies) * 1000


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tree", action="append", default=[], metavar="NAME=PATH[:ARGS]")
    ap.add_argument("--now-args", default="", help="extra 'tfsoap serve' arguments for now")
    ap.add_argument("--concurrency", default="1,8")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", default=str(HERE / "results" / "front_ab.json"))
    args = ap.parse_args()
    trees = [("now", str(REPO), args.now_args.split())]
    for spec in args.tree:
        name, _, rest = spec.partition("=")
        path, _, extra = rest.partition(":")
        if not name or not path or any(t[0] == name for t in trees):
            ap.error(f"--tree {spec!r}: give NAME=PATH with a NAME of its own (not 'now', "
                     "not one given before): a repeated name would leave its server running")
        trees.append((name, path, extra.split()))
    reference = "before" if any(t[0] == "before" for t in trees) else trees[-1][0]
    x = np.random.default_rng(0).random((1, 28, 28, 1), dtype=np.float32)
    body = predict_body("cnn", "images", x, "tensor_content")
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tfsoap-front-ab-") as tmp:
        store = Path(tmp) / "store"
        build_store(store)
        servers = {name: start(name, path, extra, store, Path(tmp))
                   for name, path, extra in trees}
        try:
            for conc in (int(c) for c in args.concurrency.split(",")):
                rows: dict[str, list[dict[str, float]]] = {name: [] for name in servers}
                for rnd in range(args.rounds):
                    order = list(servers) if rnd % 2 == 0 else list(servers)[::-1]
                    for name in order:
                        proc, port = servers[name]
                        load(port, body, conc, 1.0)  # warm-up
                        cpu0 = tree_cpu_s(proc.pid)
                        n, took, p50 = load(port, body, conc, args.seconds)
                        cpu_ms = (tree_cpu_s(proc.pid) - cpu0) * 1000 / max(n, 1)
                        rows[name].append({"rps": n / took, "cpu_ms": cpu_ms, "p50_ms": p50})
                        print(f"c={conc} round {rnd + 1} {name:10s} {n / took:7.0f} req/s  "
                              f"CPU {cpu_ms:.3f} ms/req  p50 {p50:.2f} ms", flush=True)
                summary = {}
                for name, got in rows.items():
                    ratios = [g["rps"] / r["rps"] for g, r in zip(got, rows[reference])]
                    summary[name] = {
                        "rps": round(statistics.median(g["rps"] for g in got), 1),
                        "cpu_ms": round(statistics.median(g["cpu_ms"] for g in got), 3),
                        "p50_ms": round(statistics.median(g["p50_ms"] for g in got), 3),
                        f"rps_ratio_to_{reference}": round(statistics.median(ratios), 3),
                        "rounds": got}
                results[f"c{conc}"] = summary
                print(f"\n== c={conc}: medians; ratio = median of each round's req/s over "
                      f"{reference}'s ==")
                for name, s in summary.items():
                    print(f"  {name:10s} {s['rps']:7.0f} req/s  CPU {s['cpu_ms']:.3f} ms/req  "
                          f"p50 {s['p50_ms']:.2f} ms  ratio {s[f'rps_ratio_to_{reference}']:.2f}")
                print(flush=True)
        finally:
            for proc, _ in servers.values():
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
    Path(args.out).write_text(json.dumps({"benchmark": "front_ab", "reference": reference,
                                          "trees": {n: {"path": p, "args": e}
                                                    for n, p, e in trees},
                                          "seconds": args.seconds, "results": results},
                                         indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
