"""The load generator: threads sending prebuilt requests over keep-alive ``http.client``
connections, in a process of its own (``LoadGenerator`` starts it with ``spawn``).

A phase runs ``concurrency`` threads, each with one connection, as fast as the server answers
(closed loop): a warm-up (connections opened, caches filled) that is not counted, then the
measured window, bounded by time and by a request count. The generator also reads the server's
CPU time (``/proc/<pid>/stat`` utime + stime) at both ends of the window and samples its
resident memory (``VmRSS``) through it, and reads ``VmHWM`` (the peak) at the end, each summed
over the server's whole process tree (``tfsoap serve`` runs granian's worker processes as its
children; gunicorn and MLServer do the same). The CPU that neither the server nor the generator
used (``other_cpu``, from ``/proc/stat``) tells whether something else ran on the machine
meanwhile.

The body is a SOAP ``Predict`` (``protocol`` ``soap``) or, for the peers, TF Serving's REST JSON
(``tfserving_json``) or the V2 inference protocol's JSON (``v2_json``); ``soap_bodies`` builds
them.
"""

from __future__ import annotations

import http.client
import itertools
import multiprocessing as mp
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from soap_bodies import request_body, sample_input

_TICK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class PhaseSpec:
    """One measured load: what to send, how hard and for how long."""

    host: str
    port: int
    server_pid: int
    model: str
    alias: str
    example_shape: tuple[int, ...]
    batch: int
    encoding: str
    concurrency: int
    warmup_s: float
    duration_s: float
    max_requests: int
    protocol: str = "soap"
    path: str = "/"


@dataclass
class PhaseResult:
    """What one phase measured (times in ms, rates per second, memory in MiB)."""

    requests: int = 0
    errors: int = 0
    first_error: str = ""
    window_s: float = 0.0
    rps: float = 0.0
    images_per_s: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    mean_ms: float = 0.0
    server_cpu: float = 0.0
    server_cpu_ms_per_req: float = 0.0
    client_cpu: float = 0.0
    other_cpu: float = 0.0
    rss_peak_mib: float = 0.0
    hwm_mib: float = 0.0
    request_bytes: int = 0
    response_bytes: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def proc_cpu_s(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (all its threads)."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        data = f.read()
    fields = data[data.rindex(b")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime (fields 14 and 15)


def tree_pids(pid: int) -> list[int]:
    """``pid`` and all its descendants (from ``/proc/<pid>/task/*/children``), parents first."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/children", encoding="ascii") as f:
                    todo.extend(int(c) for c in f.read().split())
            except OSError:
                pass
    return out


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its descendants (a process gone meanwhile
    counts 0: the server's workers live as long as the server)."""
    total = 0.0
    for p in tree_pids(pid):
        try:
            total += proc_cpu_s(p)
        except (OSError, ValueError, IndexError):
            pass
    return total


def tree_mem_mib(pid: int) -> dict[str, float]:
    """``VmRSS`` and ``VmHWM`` (MiB) summed over ``pid`` and its descendants; the summed peaks
    bound the tree's peak from above (each process peaks when it peaks)."""
    out = {"VmRSS": 0.0, "VmHWM": 0.0, "processes": 0.0}
    for p in tree_pids(pid):
        try:
            mem = proc_mem_mib(p)
        except OSError:
            continue
        out["VmRSS"] += mem.get("VmRSS", 0.0)
        out["VmHWM"] += mem.get("VmHWM", 0.0)
        out["processes"] += 1
    return out


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from ``/proc/stat``."""
    with open("/proc/stat", encoding="ascii") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle, iowait
    return (sum(values[:8]) - idle) / _TICK


def proc_mem_mib(pid: int) -> dict[str, float]:
    """``VmRSS`` and ``VmHWM`` of process ``pid`` in MiB."""
    out = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0]) / 1024.0
    return out


def run_phase(spec: PhaseSpec) -> PhaseResult:
    """Run one phase against a running server and measure it."""
    body, headers, expect = request_body(
        spec.protocol, spec.model, spec.alias,
        sample_input((spec.batch, *spec.example_shape), seed=spec.batch), spec.encoding)
    res = PhaseResult(request_bytes=len(body))
    start = time.perf_counter() + 0.05
    measure_from = start + spec.warmup_s
    stop_at = measure_from + spec.duration_s
    budget = itertools.count()
    per_thread: list[list[tuple[float, float]]] = [[] for _ in range(spec.concurrency)]
    errors: list[str] = []
    sizes: list[int] = []
    barrier = threading.Barrier(spec.concurrency + 1)

    def loop(i: int) -> None:
        conn = http.client.HTTPConnection(spec.host, spec.port, timeout=120)
        times = per_thread[i]
        barrier.wait()
        try:
            while True:
                t0 = time.perf_counter()
                if t0 >= stop_at or (t0 >= measure_from and next(budget) >= spec.max_requests):
                    break
                conn.request("POST", spec.path, body, headers)
                resp = conn.getresponse()
                data = resp.read()
                t1 = time.perf_counter()
                if resp.status != 200 or not expect(data):
                    errors.append(f"HTTP {resp.status}: {data[:600]!r}")
                    if resp.will_close:
                        conn.close()
                elif t0 >= measure_from:
                    times.append((t0, t1))
                if not sizes:
                    sizes.append(len(data))
        except Exception as exc:  # a broken connection ends this thread's loop; counted
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()

    threads = [threading.Thread(target=loop, args=(i,), daemon=True)
               for i in range(spec.concurrency)]
    for t in threads:
        t.start()
    barrier.wait()
    while time.perf_counter() < measure_from:
        time.sleep(0.005)
    cpu0, ccpu0, busy0 = tree_cpu_s(spec.server_pid), time.process_time(), machine_busy_s()
    t_cpu0 = time.perf_counter()
    rss_peak = 0.0
    while any(t.is_alive() for t in threads):
        rss_peak = max(rss_peak, tree_mem_mib(spec.server_pid)["VmRSS"])
        time.sleep(0.02)
    cpu1, ccpu1, busy1 = tree_cpu_s(spec.server_pid), time.process_time(), machine_busy_s()
    t_cpu1 = time.perf_counter()
    for t in threads:
        t.join()
    times = [x for per in per_thread for x in per]
    res.errors, res.first_error = len(errors), (errors[0] if errors else "")
    res.response_bytes = sizes[0] if sizes else 0
    res.requests = len(times)
    res.rss_peak_mib = rss_peak
    res.hwm_mib = tree_mem_mib(spec.server_pid)["VmHWM"]
    if not times:
        return res
    lat = np.array([t1 - t0 for t0, t1 in times]) * 1000.0
    res.window_s = max(t1 for _, t1 in times) - measure_from
    res.rps = res.requests / res.window_s
    res.images_per_s = res.rps * spec.batch
    res.p50_ms, res.p99_ms = (float(v) for v in np.percentile(lat, [50, 99]))
    res.mean_ms = float(lat.mean())
    span = t_cpu1 - t_cpu0
    res.server_cpu = (cpu1 - cpu0) / span
    res.client_cpu = (ccpu1 - ccpu0) / span
    res.other_cpu = max(0.0, (busy1 - busy0) - (cpu1 - cpu0) - (ccpu1 - ccpu0)) / span
    res.server_cpu_ms_per_req = (cpu1 - cpu0) * 1000.0 / max(1, res.requests)
    return res


def _serve(conn: Any) -> None:
    while True:
        spec = conn.recv()
        if spec is None:
            return
        try:
            conn.send(asdict(run_phase(spec)))
        except Exception as exc:  # reported to the orchestrator, which stops
            conn.send({"fatal": f"{type(exc).__name__}: {exc}"})


class LoadGenerator:
    """A process of its own that runs phases on request."""

    def __init__(self) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(child,), daemon=True,
                                 name="tfsoap-loadgen")
        self._proc.start()

    def run(self, spec: PhaseSpec) -> PhaseResult:
        self._conn.send(spec)
        data = self._conn.recv()
        if "fatal" in data:
            raise RuntimeError(f"load generator failed: {data['fatal']}")
        return PhaseResult(**data)

    def close(self) -> None:
        try:
            self._conn.send(None)
        except OSError:
            pass
        self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.terminate()
