"""The cost of metrics and of the access log: requests/s at concurrency 8, with and without.

Three measurements. **Their own cost** (first): a dataplane call with nothing in it, bare, with
the access log, with the metrics (and what a run reports to them), in microseconds of CPU per
request, and that as a share of the bare server's CPU per request: the steadiest figure.
**Paired, in process** (``--paired-rounds``): four apps (bare, metrics, access log, both) built
in this process on the bundled digits model, each called through its WSGI surface (the fast
path, the dataplane, the registry: everything but HTTP) in blocks of ``--block`` requests, the
four blocks of a round back to back (the order alternating); the ratio of each block's CPU per
request to the bare block's of the same round, median over the rounds. Without HTTP in the
denominator, the overhead it shows is an upper bound of the served one, and a noisy one
(TensorFlow's threads fall asleep in longer gaps between runs). The access log goes to a file,
as a server's standard error would. **Served**:

the server runs in its own process (``tfsoap serve`` on the bundled digits model, 64 inputs,
batch 1 with ``tensor_content``: the smallest request, where a per-request cost shows most);
this process runs 8 closed-loop keep-alive clients on 127.0.0.1. The five servers start once
and the configurations take turns, round after round (the order alternates), so a busy moment
of the machine falls on all of them; the medians of requests/s and of server CPU per request
(summed over the server's process tree) are compared. A second bare server (``bare_again``)
shows how far two identical servers' ratio strays from 1 on this machine: the noise the other
ratios sit in.

    PYTHONPATH=. python benchmarks/observability_bench.py [--seconds 5] [--rounds 3]
        [--before-tree /tmp/tfsoap-7ced2c8]   # git worktree add /tmp/tfsoap-7ced2c8 7ced2c8
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from soap_bodies import HEADERS, predict_body, sample_input  # noqa: E402

CONFIGS = {
    "bare": ["--no-metrics", "--no-access-log"],
    "metrics": ["--metrics", "--no-access-log"],
    "access_log": ["--no-metrics", "--access-log"],
    "both": ["--metrics", "--access-log"],
    # the bare server again (an A/A pair): how far its ratio strays from 1 is the noise floor
    "bare_again": ["--no-metrics", "--no-access-log"],
}


def serve(port: int, flags: list[str], tree: str | None = None) -> subprocess.Popen[bytes]:
    """``tfsoap serve`` from this tree, or from the source tree ``tree`` (``--before-tree``)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if tree:
        env["PYTHONPATH"] = tree
    proc = subprocess.Popen([sys.executable, "-m", "soap_server.cli", "serve", "--port",
                             str(port), "--poll-interval-s", "0", *flags], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tree)
    for _ in range(600):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1) as r:
                if r.status == 200:
                    return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("server did not become ready")


def tree_cpu_s(pid: int) -> float:
    """CPU seconds used so far by ``pid`` and its descendants (the server's workers)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in
                         Path(f"/proc/{p}/task/{task}/children").read_text().split()]
        except OSError:
            pass
    return total


def load(port: int, body: bytes, seconds: float, threads: int = 8) -> tuple[float, int]:
    """Requests per second over ``seconds`` (after a 1 s warm-up) and the request count;
    failures are fatal."""
    counts = [0] * threads
    failures = [0]
    start = threading.Event()
    stop = threading.Event()

    def loop(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while not stop.is_set():
            conn.request("POST", "/", body=body, headers=HEADERS)
            resp = conn.getresponse()
            resp.read()
            if resp.status != 200:
                failures[0] += 1
            if start.is_set():
                counts[i] += 1
        conn.close()

    ts = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    time.sleep(1.0)
    start.set()
    began = time.monotonic()
    time.sleep(seconds)
    stop.set()
    elapsed = time.monotonic() - began
    for t in ts:
        t.join(60)
    assert failures[0] == 0, f"{failures[0]} failed requests"
    return sum(counts) / elapsed, sum(counts)


def paired(body: bytes, rounds: int, block: int) -> dict[str, Any]:
    """CPU per request of the four configurations in process, blocks taking turns."""
    from model_store import bundled_store_path
    from soap_server.app import build_app
    from soap_server.observability import configure_logging
    from soap_server.settings import Settings

    apps = {}
    for name, flags in CONFIGS.items():
        settings = Settings(model_store=str(bundled_store_path()), poll_interval_s=0,
                            metrics="--metrics" in flags, access_log="--access-log" in flags,
                            log_level="INFO").checked()
        apps[name] = build_app(settings)
        apps[name].registry.start_loading()
        apps[name].registry.wait_ready(120)
    log_file = tempfile.TemporaryFile("w+")
    handler = configure_logging(Settings(log_level="INFO").checked(), log_file)

    def call(app: Any) -> None:
        environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "QUERY_STRING": "",
                   "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "80", "REMOTE_ADDR": "127.0.0.1",
                   "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
                   "CONTENT_TYPE": HEADERS["Content-Type"], "CONTENT_LENGTH": str(len(body)),
                   "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO()}
        status: list[str] = []
        b"".join(app.wsgi(environ, lambda s, h, e=None: status.append(s)))
        assert status[0].startswith("200"), status

    cpu: dict[str, list[float]] = {k: [] for k in CONFIGS}
    ratios: dict[str, list[float]] = {k: [] for k in CONFIGS}
    try:
        for app in apps.values():  # warm-up
            for _ in range(block):
                call(app)
        for r in range(rounds):
            order = list(CONFIGS) if r % 2 == 0 else list(reversed(CONFIGS))
            this: dict[str, float] = {}
            for name in order:
                started = time.process_time()
                for _ in range(block):
                    call(apps[name])
                this[name] = (time.process_time() - started) * 1000 / block
                cpu[name].append(this[name])
            for name in CONFIGS:
                ratios[name].append(this[name] / this["bare"])
    finally:
        logging.getLogger().removeHandler(handler)
        log_file.seek(0)
        lines = sum(1 for _ in log_file)
        log_file.close()
        for app in apps.values():
            app.registry.close()
    out: dict[str, Any] = {"rounds": rounds, "block": block, "access_log_lines": lines,
           "cpu_ms_per_request": {k: round(statistics.median(v), 4) for k, v in cpu.items()},
           "cpu_ratio_to_bare": {k: round(statistics.median(v), 4) for k, v in ratios.items()}}
    print("\npaired, in process (CPU per request, median of per-round ratios to bare):")
    for k in CONFIGS:
        print(f"{k:12s} {out['cpu_ms_per_request'][k]:.3f} ms   ratio to bare "
              f"{out['cpu_ratio_to_bare'][k]:.3f}")
    return out


def own_costs(requests: int = 50_000, rounds: int = 5) -> dict[str, Any]:
    """The access line's and the metrics' own CPU per request, in microseconds: a dataplane
    call with nothing inside (``DataPlane._logged``) bare, with the access log (to a file
    through the CLI's handler; its writer thread's CPU counted too: this process's CPU time
    covers every thread), and with the metrics (the request recorder, plus what one
    unbatched run and one batch of one report: queued, running, run time, batch size); blocks
    taking turns. Steady figures where the served ratios are within the machine's noise."""
    from soap_server.dataplane import DataPlane
    from soap_server.observability import Metrics, configure_logging
    from soap_server.settings import Settings

    log_file = tempfile.TemporaryFile("w+")
    handler = configure_logging(Settings(log_level="INFO").checked(), log_file)
    metrics = Metrics()
    metrics.state("digits", 1, "AVAILABLE")
    observer = metrics.version("digits", 1)
    planes = {
        "bare": DataPlane(None, "bench", access_log=False),  # type: ignore[arg-type]
        "access_log": DataPlane(None, "bench", access_log=True),  # type: ignore[arg-type]
        "metrics": DataPlane(None, "bench", access_log=False,  # type: ignore[arg-type]
                             recorders=[metrics.record]),
    }
    spent: dict[str, list[float]] = {k: [] for k in planes}
    try:
        for r in range(rounds):
            for name in (list(planes) if r % 2 == 0 else list(reversed(planes))):
                plane, observe = planes[name], name == "metrics"
                started = time.process_time()
                for _ in range(requests):
                    with plane._logged("Predict", "0123456789abcdef", "digits") as info:
                        info["version"] = 1
                        if observe:
                            observer.queued(1)
                            observer.queued(-1)
                            observer.running(1)
                            observer.ran(0.0005)
                            observer.running(-1)
                            observer.batched(1)
                handler.wait_written()
                spent[name].append((time.process_time() - started) * 1e6 / requests)
    finally:
        logging.getLogger().removeHandler(handler)
        log_file.close()
    out: dict[str, Any] = {"requests": requests, "rounds": rounds}
    for name in ("access_log", "metrics"):
        cost = statistics.median(x - b for x, b in zip(spent[name], spent["bare"]))
        out[f"{name}_us_per_request"] = round(cost, 2)
    print(f"\nown CPU per request (median of {rounds} rounds): the access line "
          f"{out['access_log_us_per_request']:.1f} us (request and writer threads), the "
          f"metrics {out['metrics_us_per_request']:.1f} us")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--port", type=int, default=18731)
    ap.add_argument("--paired-rounds", type=int, default=40)
    ap.add_argument("--block", type=int, default=200)
    ap.add_argument("--no-served", action="store_true", help="only the paired measurement")
    ap.add_argument("--before-tree", metavar="PATH",
                    help="also serve the access log from this source tree (a git worktree of "
                         "an earlier commit, e.g. 7ced2c8, the queue-woken writer), as "
                         "'access_log_before' beside the others")
    args = ap.parse_args()
    body = predict_body("digits", "images", sample_input((1, 64)), "tensor_content")
    own = own_costs()
    paired_result = paired(body, args.paired_rounds, args.block)
    out = Path(__file__).parent / "results" / "observability.json"
    if args.no_served:
        out.write_text(json.dumps({"paired": paired_result, "own_cost": own}, indent=2)
                       + "\n")
        return 0
    configs: dict[str, tuple[list[str], str | None]] = {k: (v, None) for k, v in CONFIGS.items()}
    if args.before_tree:
        configs["access_log_before"] = (CONFIGS["access_log"], args.before_tree)
    rates: dict[str, list[float]] = {k: [] for k in configs}
    cpu_ms: dict[str, list[float]] = {k: [] for k in configs}
    procs = {name: (serve(args.port + i, flags, tree), args.port + i)
             for i, (name, (flags, tree)) in enumerate(configs.items())}
    try:
        for r in range(args.rounds):
            order = list(configs) if r % 2 == 0 else list(reversed(configs))
            for name in order:
                proc, port = procs[name]
                before = tree_cpu_s(proc.pid)
                rate, count = load(port, body, args.seconds)
                rates[name].append(rate)
                cpu_ms[name].append((tree_cpu_s(proc.pid) - before) * 1000 / max(count, 1))
                print(f"round {r + 1} {name:10s} {rate:8.0f} req/s "
                      f"{cpu_ms[name][-1]:.3f} ms CPU/request", flush=True)
    finally:
        for proc, _ in procs.values():
            proc.terminate()
            proc.wait(30)
    med = {k: statistics.median(v) for k, v in rates.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu_ms.items()}
    # each round's ratio to the bare server's figure of the same round, then their median
    paired_rate = {k: statistics.median(r / b for r, b in zip(v, rates["bare"]))
                   for k, v in rates.items()}
    paired_cpu = {k: statistics.median(c / b for c, b in zip(v, cpu_ms["bare"]))
                  for k, v in cpu_ms.items()}
    print("\nserved, c=8: medians, and the median of each round's ratio to bare")
    print("config             req/s  ratio (paired)   CPU ms/request  ratio (paired)")
    for k in configs:
        print(f"{k:18s} {med[k]:6.0f}  {med[k] / med['bare']:.3f} ({paired_rate[k]:.3f})"
              f"    {med_cpu[k]:.3f}          {med_cpu[k] / med_cpu['bare']:.3f} "
              f"({paired_cpu[k]:.3f})")
    now_vs_before = None
    if args.before_tree:
        now_vs_before = statistics.median(
            a / b for a, b in zip(rates["access_log"], rates["access_log_before"]))
        print(f"access log, this tree / {args.before_tree}: {now_vs_before:.3f} of its req/s "
              "(median of each round's ratio)")
    for name in ("access_log", "metrics"):
        share = own[f"{name}_us_per_request"] / 1000 / med_cpu["bare"]
        own[f"{name}_share_of_bare_request_cpu"] = round(share, 4)
        print(f"{name}: {share:.1%} of the bare server's CPU per request")
    out.write_text(json.dumps({"paired": paired_result, "own_cost": own,
                               "concurrency": 8,
                               "seconds": args.seconds, "rounds": rates,
                               "cpu_ms_per_request": cpu_ms, "median": med,
                               "median_cpu_ms": med_cpu,
                               "ratio_to_bare": {k: v / med["bare"] for k, v in med.items()},
                               "cpu_ratio_to_bare": {k: v / med_cpu["bare"]
                                                     for k, v in med_cpu.items()},
                               "paired_rate_ratio": paired_rate,
                               "before_tree": args.before_tree,
                               "access_log_now_vs_before_tree": now_vs_before,
                               "paired_cpu_ratio": paired_cpu},
                              indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
