#!/usr/bin/env python
"""Serving speed of tfsoap, measured honestly in one run: ``python benchmarks/serve_bench.py``.

What one run does (docs/performance.md has the method, the figures and what they mean):

1. builds a temporary model store with the bundled ``digits`` model and a small CNN for 28x28x1
   images (``bench_models.py``);
2. starts one ``tfsoap serve`` per server configuration, each in its own process on a free
   127.0.0.1 port: batching off (``--no-batching``) and on (as ``model.json`` asks), each with
   every ``--workers`` count (default 1 and 2), all with the same TensorFlow thread settings as
   the in-process baselines; and the peers (``peer_servers.py``: Flask + gunicorn with 2 sync
   workers, MLServer 1.7 with parallel workers off or on, whichever serves more), each in a
   virtual environment of its own under ``benchmarks/.venvs``;
3. per round (``--rounds``, default 3; medians are reported):

   - the in-process baselines in this process (``inprocess.py``): plain loops of
     ``LoadedModel.run`` and of the naive ``Session.run`` at batch 1 and 32;
   - codec-only figures on one CNN batch (``codec_figures.py``);
   - for each server, concurrency (1, 8, 32), model, batch size (1, 32) and encoding
     (``tensor_content``, typed ``float_val``): a closed-loop phase from the load generator, a
     process of its own (``loadgen.py``: threads over keep-alive ``http.client`` connections),
     bounded in time and count: requests/s, images/s, p50/p99 latency, server CPU and resident
     memory summed over the server's process tree (granian's workers are children of
     ``tfsoap serve``);
   - each peer at the same concurrencies, CNN batch 1, with its JSON body;

4. the attack phase (``attack.py``): against a ``tfsoap serve`` with one worker, 1,000 silent,
   200 slowloris and 100 slow-upload connections held open while good ``Predict``s run at
   concurrency 8: their p50 and the server's memory growth;
5. prints the tables, checks the targets of issues 5 and 9 (``report.py``; the "before" figures
   are ``benchmarks/results/before-granian.json``) and writes ``benchmarks/results/latest.json``.

Memory: each server runs every concurrency-1 phase first, then concurrency 8, then 32, and its
peak resident set (``VmHWM``, summed over its processes) is read after each block of the first
round. The concurrency-32 peak thus also carries whatever the earlier blocks left behind, so the
"32 vs 1" ratio can only be overstated, never flattered.

A shared machine: before each measurement the run waits (a while) for the machine to be idle,
and a measurement during which other processes used more than ``--max-other-cpu`` cores is
rerun (``--retries``), keeping the least disturbed one; the ``other`` column shows what was
left. ``--quick`` is a smoke run: one short round, no waiting, the peers only if their
environments exist already (``--no-peers`` leaves them out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from attack import Attacker, raise_nofile  # noqa: E402
from bench_models import CNN, MODELS, build_store  # noqa: E402
from bench_server import ServerProcess  # noqa: E402
from codec_figures import codec_round  # noqa: E402
from front_report import evaluate_issue9, print_issue9  # noqa: E402
from inprocess import KINDS, load_runners, measure_quietly  # noqa: E402
from loadgen import (  # noqa: E402
    LoadGenerator,
    PhaseResult,
    PhaseSpec,
    machine_busy_s,
    tree_mem_mib,
)
from peer_servers import (  # noqa: E402
    PeerProcess,
    PeerUnavailable,
    ensure_venv,
    start_flask,
    start_mlserver,
)
from report import evaluate_targets, median_dict, peer_rows, print_report, served_rows  # noqa: E402
from soap_bodies import ENCODINGS  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
BATCHING_MODES = ("off", "on")
#: Issue 9's attack: connections of each kind held open (see attack.py).
ATTACK_COUNTS = {"silent": 1000, "slowloris": 200, "upload": 100}


# -- a shared machine ---------------------------------------------------------------------------
def wait_quiet(max_wait_s: float, limit_cores: float = 0.25) -> float:
    """Wait until the machine is about idle (this run's processes are idle now); the load seen."""
    if max_wait_s <= 0:
        return 0.0
    deadline = time.monotonic() + max_wait_s
    while True:
        b0, t0 = machine_busy_s(), time.monotonic()
        time.sleep(0.25)
        load = (machine_busy_s() - b0) / (time.monotonic() - t0)
        if load < limit_cores or time.monotonic() >= deadline:
            return load


def patience(args: argparse.Namespace) -> tuple[int, float]:
    """Retries and quiet wait allowed now: none once 70% of ``--max-minutes`` is spent, so a
    busy machine makes the figures noisier (``other`` says by how much), not the run longer."""
    if time.monotonic() - args.started > 0.7 * 60 * args.max_minutes:
        return 0, 0.0
    return args.retries, args.quiet_wait_seconds


def run_phase_quietly(loadgen: LoadGenerator, spec: PhaseSpec,
                      args: argparse.Namespace) -> PhaseResult:
    """Run a phase when the machine is quiet; rerun it (up to ``--retries``) when something
    else took more than ``--max-other-cpu`` cores meanwhile, keeping the least disturbed run."""
    best: PhaseResult | None = None
    retries, wait_s = patience(args)
    for _ in range(1 + retries):
        wait_quiet(wait_s)
        res = loadgen.run(spec)
        if best is None or res.other_cpu < best.other_cpu:
            best = res
        if res.other_cpu <= args.max_other_cpu:
            break
    assert best is not None
    return best


def phase_key(mode: str, workers: int, model: str, batch: int, encoding: str,
              conc: int) -> str:
    return f"{mode}/w{workers}/{model}/b{batch}/{encoding}/c{conc}"


def config_name(mode: str, workers: int) -> str:
    return f"{mode}-w{workers}"


# -- the peers and the attack --------------------------------------------------------------------
def start_peers(args: argparse.Namespace, graph: Path, workdir: Path
                ) -> tuple[list[PeerProcess], dict[str, str]]:
    """Start the peers asked for; those that cannot be installed or started are left out with
    the reason (returned, and printed)."""
    started: list[PeerProcess] = []
    skipped: dict[str, str] = {}
    for name in args.peer_list:
        try:
            python = ensure_venv(name, create=not args.quick)
            if name == "flask":
                started.append(start_flask(python, graph, args.intra_op_threads,
                                           args.inter_op_threads, workdir))
            else:
                for pw in (0, 2):
                    started.append(start_mlserver(python, graph, args.intra_op_threads,
                                                  args.inter_op_threads, workdir, pw))
        except (PeerUnavailable, OSError) as exc:
            skipped[name] = str(exc)
    for name, why in skipped.items():
        print(f"peer {name} left out: {why}", flush=True)
    return started, skipped


def peer_spec(peer: PeerProcess, conc: int, args: argparse.Namespace,
              seconds: float | None = None) -> PhaseSpec:
    return PhaseSpec("127.0.0.1", peer.port, peer.pid, CNN.name, CNN.alias, CNN.example_shape,
                     1, "json", conc, args.warmup_seconds, seconds or args.phase_seconds,
                     args.max_requests, protocol=peer.spec.protocol, path=peer.spec.path)


def ready_peers(peers: list[PeerProcess], skipped: dict[str, str], loadgen: LoadGenerator,
                args: argparse.Namespace) -> dict[str, PeerProcess]:
    """Wait for the peers; of MLServer's two settings keep the one that serves more CNN batch-1
    requests at concurrency 8 (a short trial), and stop the other."""
    ready: list[PeerProcess] = []
    for peer in peers:
        try:
            peer.wait_ready()
            ready.append(peer)
        except PeerUnavailable as exc:
            print(f"peer {peer.label} left out: {exc}", flush=True)
            skipped[peer.label] = str(exc)
            peer.stop()
    out: dict[str, PeerProcess] = {}
    trials: list[tuple[float, PeerProcess]] = []
    for peer in ready:
        if peer.spec.protocol != "v2_json":
            out["flask"] = peer
            continue
        res = loadgen.run(peer_spec(peer, 8, args, 0.5 if args.quick else 2.0))
        print(f"trial {peer.label}: {res.rps:.0f} req/s at c=8, errors {res.errors}",
              flush=True)
        trials.append((res.rps if not res.errors else 0.0, peer))
    if trials:
        trials.sort(key=lambda t: t[0], reverse=True)
        out["mlserver"] = trials[0][1]
        args.mlserver_trials = {p.label: rps for rps, p in trials}
        for _, loser in trials[1:]:
            loser.stop()
    return out


def attack_phase(args: argparse.Namespace, srv: ServerProcess,
                 loadgen: LoadGenerator) -> dict[str, Any]:
    """Good Predicts (CNN batch 1, tensor_content, concurrency 8) before and while the attack's
    connections are held open against ``srv``; the good p50 and the server's memory growth."""
    spec = PhaseSpec("127.0.0.1", srv.port, srv.pid, CNN.name, CNN.alias, CNN.example_shape,
                     1, "tensor_content", 8, args.warmup_seconds, args.phase_seconds,
                     200000)
    calm = loadgen.run(spec)
    rss_before = tree_mem_mib(srv.pid)["VmRSS"]
    counts = {k: max(1, int(v * args.attack_scale)) for k, v in ATTACK_COUNTS.items()}
    print(f"attack: holding {counts} against pid {srv.pid} for {args.attack_seconds:.0f}s ...",
          flush=True)
    attacker = Attacker(srv.port, counts, hold_s=args.attack_seconds + 3.0)
    attacker.wait_holding()
    time.sleep(0.5)
    under = loadgen.run(PhaseSpec(
        "127.0.0.1", srv.port, srv.pid, CNN.name, CNN.alias, CNN.example_shape, 1,
        "tensor_content", 8, 0.2, args.attack_seconds, 200000))
    stats = attacker.result()
    time.sleep(1.0)
    rss_after = tree_mem_mib(srv.pid)["VmRSS"]
    out = {"counts": counts, "calm": asdict(calm), "under_attack": asdict(under),
           "attacker": asdict(stats), "rss_before_mib": rss_before,
           "rss_peak_under_attack_mib": under.rss_peak_mib, "rss_after_mib": rss_after,
           "rss_growth_mib": under.rss_peak_mib - rss_before,
           "server_command": " ".join(srv.command)}
    print(f"attack: good p50 {under.p50_ms:.2f} ms (calm {calm.p50_ms:.2f}), {under.rps:.0f} "
          f"req/s, errors {under.errors}; RSS {rss_before:.0f} -> peak "
          f"{under.rss_peak_mib:.0f} MiB; server closed {stats.closed_by_server}, open "
          f"min {stats.open_min}", flush=True)
    return out


# -- main ---------------------------------------------------------------------------------------
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="one short round: a smoke run (<3 min)")
    p.add_argument("--rounds", type=int, default=None, help="rounds (default 3; quick 1)")
    p.add_argument("--phase-seconds", type=float, default=None,
                   help="measured window per phase (default 1.5; quick 0.5)")
    p.add_argument("--warmup-seconds", type=float, default=None,
                   help="unmeasured warm-up per phase (default 0.3; quick 0.2)")
    p.add_argument("--max-requests", type=int, default=20000,
                   help="most requests measured per phase")
    p.add_argument("--intra-op-threads", type=int, default=2,
                   help="TF intra-op threads, in-process and served alike (default 2; "
                   "a server of N workers gives each 1/N of them)")
    p.add_argument("--inter-op-threads", type=int, default=2,
                   help="TF inter-op threads, in-process and served alike (default 2; "
                   "a server of N workers gives each 1/N of them)")
    p.add_argument("--models", default=None, help="default digits,cnn; quick: cnn")
    p.add_argument("--batching", default="off,on", help="server modes to run: off,on")
    p.add_argument("--workers", default="1,2",
                   help="worker process counts, each run with every batching mode")
    p.add_argument("--concurrency", default="1,8,32")
    p.add_argument("--batches", default="1,32")
    p.add_argument("--encodings", default=",".join(ENCODINGS))
    p.add_argument("--server-arg", action="append", default=[],
                   help="extra argument for 'tfsoap serve' (repeatable), "
                   "e.g. --server-arg=--threads=32")
    p.add_argument("--peers", default="flask,mlserver",
                   help="peers to measure (made in benchmarks/.venvs on a full run)")
    p.add_argument("--no-peers", action="store_true", help="measure no peer")
    p.add_argument("--no-attack", action="store_true", help="skip the attack phase")
    p.add_argument("--attack-seconds", type=float, default=None,
                   help="good load measured under attack (default 12; quick 4)")
    p.add_argument("--attack-scale", type=float, default=1.0,
                   help="fraction of issue 9's 1,000/200/100 attack connections")
    p.add_argument("--before", default=str(RESULTS / "before-granian.json"),
                   help="a previous run's JSON: one worker must be no slower than it")
    p.add_argument("--retries", type=int, default=None,
                   help="reruns of a phase disturbed by other processes (default 2; quick 0)")
    p.add_argument("--max-other-cpu", type=float, default=0.3,
                   help="cores other processes may use during a phase before it is rerun")
    p.add_argument("--quiet-wait-seconds", type=float, default=None,
                   help="most time to wait for an idle machine before a phase (default 20; "
                   "quick 0: no wait)")
    p.add_argument("--max-minutes", type=float, default=25.0,
                   help="time budget: no more retries or waits once 70%% of it is spent")
    p.add_argument("--output", default=str(RESULTS / "latest.json"))
    p.add_argument("--label", default="", help="free text stored in the JSON (e.g. 'before')")
    p.add_argument("--print", dest="print_only", metavar="JSON",
                   help="measure nothing: print the tables of a saved run (issue 9's "
                   "evaluated again against --before)")
    args = p.parse_args(argv)
    args.models = args.models or ("cnn" if args.quick else "digits,cnn")
    args.model_list = [MODELS[m] for m in args.models.split(",")]
    args.mode_list = [m for m in args.batching.split(",") if m in BATCHING_MODES]
    args.worker_list = [int(w) for w in args.workers.split(",")]
    args.concurrency_list = [int(c) for c in args.concurrency.split(",")]
    args.batch_list = [int(b) for b in args.batches.split(",")]
    args.encoding_list = args.encodings.split(",")
    args.peer_list = [] if args.no_peers else [x for x in args.peers.split(",") if x]
    args.rounds = args.rounds or (1 if args.quick else 3)
    args.phase_seconds = args.phase_seconds or (0.5 if args.quick else 1.5)
    args.warmup_seconds = args.warmup_seconds or (0.2 if args.quick else 0.3)
    args.attack_seconds = args.attack_seconds or (4.0 if args.quick else 12.0)
    if args.retries is None:
        args.retries = 0 if args.quick else 2
    if args.quiet_wait_seconds is None:
        args.quiet_wait_seconds = 0.0 if args.quick else 20.0
    args.mlserver_trials = {}
    return args


def run_round(rnd: int, args: argparse.Namespace, runners: dict[str, Any],
              servers: dict[str, ServerProcess], peers: dict[str, PeerProcess],
              loadgen: LoadGenerator, served_rounds: dict[str, list[dict[str, Any]]],
              peer_rounds: dict[str, list[dict[str, Any]]],
              memory: dict[str, dict[str, float]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """One round: the in-process baselines, the codec, every phase of every server, the peers."""
    seconds = 0.3 if args.quick else 1.0
    retries, wait_s = patience(args)
    inproc = {kind: {m.name: {f"b{b}": measure_quietly(
        runners[m.name][kind], m, b, seconds, retries, args.max_other_cpu,
        lambda: wait_quiet(wait_s)) for b in args.batch_list}
        for m in args.model_list} for kind in KINDS}
    codec = codec_round(0.15 if args.quick else 0.4)
    for name, srv in servers.items():
        for conc in args.concurrency_list:
            for model in args.model_list:
                for batch in args.batch_list:
                    for enc in args.encoding_list:
                        spec = PhaseSpec("127.0.0.1", srv.port, srv.pid, model.name,
                                         model.alias, model.example_shape, batch, enc, conc,
                                         args.warmup_seconds, args.phase_seconds,
                                         args.max_requests)
                        res = run_phase_quietly(loadgen, spec, args)
                        key = phase_key(srv.batching, srv.workers, model.name, batch, enc,
                                        conc)
                        served_rounds.setdefault(key, []).append(asdict(res))
                        print(f"round {rnd + 1} {key:37s} {res.rps:7.0f} req/s p50 "
                              f"{res.p50_ms:7.2f} ms  errors {res.errors}  CPU server "
                              f"{res.server_cpu:.2f} loadgen {res.client_cpu:.2f} other "
                              f"{res.other_cpu:.2f}", flush=True)
                        if res.errors:
                            print(f"   first error: {res.first_error[:300]}", flush=True)
            if rnd == 0:
                memory[name][f"c{conc}_hwm_mib"] = tree_mem_mib(srv.pid)["VmHWM"]
    for name, peer in peers.items():
        for conc in args.concurrency_list:
            res = run_phase_quietly(loadgen, peer_spec(peer, conc, args), args)
            peer_rounds.setdefault(f"{name}/c{conc}", []).append(asdict(res))
            print(f"round {rnd + 1} peer {name}/c{conc:<28d} {res.rps:7.0f} req/s p50 "
                  f"{res.p50_ms:7.2f} ms  errors {res.errors}  CPU server "
                  f"{res.server_cpu:.2f} loadgen {res.client_cpu:.2f} other "
                  f"{res.other_cpu:.2f}", flush=True)
            if res.errors:
                print(f"   first error: {res.first_error[:300]}", flush=True)
    return inproc, codec


def print_saved(args: argparse.Namespace) -> int:
    """The tables of a saved run, issue 9's evaluated again (``--print``)."""
    report = json.loads(Path(args.print_only).read_text())
    before_path = Path(args.before)
    before = json.loads(before_path.read_text()) if before_path.exists() else None
    report["issue9"] = evaluate_issue9(report, before, str(before_path))
    print_report(report)
    print_issue9(report)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.print_only:
        return print_saved(args)
    started = args.started = time.monotonic()
    raise_nofile(8192)  # the servers (children) inherit it; the attack needs ~1,300 sockets
    tmp = tempfile.TemporaryDirectory(prefix="tfsoap-bench-")
    store = Path(tmp.name) / "store"
    print(f"building the store in {store} ...", flush=True)
    build_store(store)
    servers = {config_name(m, w): ServerProcess(
        store, m, args.intra_op_threads, args.inter_op_threads, args.server_arg,
        Path(tmp.name) / f"server-{m}-w{w}.log", workers=w)
        for w in args.worker_list for m in args.mode_list}
    # The attack runs last, on the batching-on server with one worker (or one of its own).
    attack_srv = None if args.no_attack or "on-w1" in servers else ServerProcess(
        store, "on", args.intra_op_threads, args.inter_op_threads, args.server_arg,
        Path(tmp.name) / "server-attack.log", workers=1)
    peer_procs, skipped = start_peers(args, store / "cnn" / "1" / "model.pb", Path(tmp.name))
    loadgen = LoadGenerator()
    inproc_rounds: list[dict[str, Any]] = []
    codec_rounds: list[dict[str, Any]] = []
    served_rounds: dict[str, list[dict[str, Any]]] = {}
    peer_rounds: dict[str, list[dict[str, Any]]] = {}
    memory: dict[str, dict[str, float]] = {}
    attack: dict[str, Any] | None = None
    peers: dict[str, PeerProcess] = {}
    try:
        for s in [*servers.values(), *([attack_srv] if attack_srv else [])]:
            s.wait_ready()
        for m, s in servers.items():
            memory[m] = {"ready_hwm_mib": tree_mem_mib(s.pid)["VmHWM"]}
        print(f"servers ready after {time.monotonic() - started:.1f}s: " + ", ".join(
            f"{m} pid {s.pid} port {s.port}" for m, s in servers.items()), flush=True)
        peers = ready_peers(peer_procs, skipped, loadgen, args)
        print("peers: " + (", ".join(f"{n}: {p.label} pid {p.pid} port {p.port}"
                                     for n, p in peers.items()) or "none"), flush=True)
        runners = load_runners(store, args.model_list, args.intra_op_threads,
                               args.inter_op_threads)
        for rnd in range(args.rounds):
            inproc, codec = run_round(rnd, args, runners, servers, peers, loadgen,
                                      served_rounds, peer_rounds, memory)
            inproc_rounds.append(inproc)
            codec_rounds.append(codec)
        for peer in peers.values():  # their CPU would disturb the attack phase
            peer.stop()
        if not args.no_attack:
            attack = attack_phase(args, attack_srv or servers["on-w1"], loadgen)
    finally:
        loadgen.close()
        for s in [*servers.values(), *([attack_srv] if attack_srv else [])]:
            s.stop()
        for peer in peer_procs:
            peer.stop()
    report = build_report(args, inproc_rounds, codec_rounds, served_rounds, memory, servers,
                          peer_rounds, peers, skipped, attack)
    report["elapsed_s"] = time.monotonic() - started
    print_report(report)
    print_issue9(report)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nwrote {out} ({report['elapsed_s']:.0f}s)")
    tmp.cleanup()
    return 0


def build_report(args: argparse.Namespace, inproc_rounds: list[dict[str, Any]],
                 codec_rounds: list[dict[str, Any]],
                 served_rounds: dict[str, list[dict[str, Any]]],
                 memory: dict[str, dict[str, float]],
                 servers: dict[str, ServerProcess],
                 peer_rounds: dict[str, list[dict[str, Any]]],
                 peers: dict[str, PeerProcess], skipped: dict[str, str],
                 attack: dict[str, Any] | None) -> dict[str, Any]:
    import tensorflow as tf

    inproc = median_dict(inproc_rounds)
    for mem in memory.values():
        if "c1_hwm_mib" in mem and "c32_hwm_mib" in mem:
            mem["ratio_max_vs_c1"] = mem["c32_hwm_mib"] / mem["c1_hwm_mib"]
    report: dict[str, Any] = {
        "label": args.label,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "tensorflow": tf.__version__, "platform": platform.platform()},
        "settings": {k: getattr(args, k) for k in (
            "quick", "rounds", "phase_seconds", "warmup_seconds", "max_requests",
            "intra_op_threads", "inter_op_threads", "server_arg", "retries", "max_other_cpu",
            "quiet_wait_seconds", "max_minutes", "workers", "peers", "attack_seconds",
            "attack_scale", "before")},
        "server_commands": {m: " ".join(s.command) for m, s in servers.items()},
        "inprocess": inproc, "codec_floats_per_s": median_dict(codec_rounds),
        "served": served_rows(served_rounds, inproc), "memory": memory,
        "peers": peer_rows(peer_rounds, inproc),
        "peer_commands": {n: {"label": p.label, "command": " ".join(p.command)}
                          for n, p in peers.items()},
        "peers_left_out": skipped, "mlserver_trials": args.mlserver_trials,
        "attack": attack,
    }
    report["targets"] = evaluate_targets(report)
    before_path = Path(args.before)
    before = json.loads(before_path.read_text()) if before_path.exists() else None
    report["issue9"] = evaluate_issue9(report, before, str(before_path))
    return report


if __name__ == "__main__":
    sys.exit(main())
