"""Prometheus metrics with the official ``prometheus_client``: the registry's hooks, and the
dataplane's request records.

Labels stay bounded: ``model`` is a model the registry has held, else ``_unknown``; ``version``
a version it has held, else empty; ``outcome`` one of the contract's codes (or ``ok``).

With several worker processes, call ``prepare_multiprocess(dir)`` in the parent before any
worker starts (it sets ``PROMETHEUS_MULTIPROC_DIR``); each worker then writes its values to that
folder and ``/metrics`` from any worker sums them all (``MultiProcessCollector``). Call
``mark_process_dead(pid)`` when a worker exits. Process metrics (CPU, memory) are only reported
in single-process mode: prometheus_client's multiprocess mode does not collect them.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
    multiprocess,
    values,
)

from model_store.serving import RegistryObserver, VersionObserver

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
UNKNOWN_MODEL = "_unknown"
STATES = ("LOADING", "AVAILABLE", "FAILED")
_LATENCY = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30)
_BATCH = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def prepare_multiprocess(directory: str | os.PathLike[str]) -> None:
    """Empty ``directory`` and make every metric created from now on (in this process and the
    workers it starts) write there. Call before the first ``Metrics`` is built."""
    path = Path(directory)
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(path)
    values.ValueClass = values.get_value_class()


def mark_process_dead(pid: int) -> None:
    """Forget a worker's live gauges (queue depth, runs in flight, states) once it exited."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        multiprocess.mark_process_dead(pid, directory)


class _VersionMetrics(VersionObserver):
    """One version's children, bound once so a request costs no label lookup."""

    def __init__(self, m: Metrics, model: str, version: str) -> None:
        self._queued = m.queued.labels(model, version)
        self._running = m.in_flight.labels(model, version)
        self._run = m.run_seconds.labels(model, version)
        self._batch = m.batch_size.labels(model, version)

    def queued(self, delta: int) -> None:
        self._queued.inc(delta)

    def running(self, delta: int) -> None:
        self._running.inc(delta)

    def ran(self, seconds: float) -> None:
        self._run.observe(seconds)

    def batched(self, rows: int) -> None:
        self._batch.observe(rows)


class Metrics(RegistryObserver):
    """Every metric of one server; a ``RegistryObserver`` and a request recorder."""

    def __init__(self) -> None:
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry()
        if not self.multiprocess:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        r = self.registry
        self.requests = Counter("tfsoap_requests", "Requests by operation, model, version and "
                                "outcome (ok or the fault code)",
                                ["operation", "model", "version", "outcome"], registry=r)
        self.request_seconds = Histogram("tfsoap_request_duration_seconds", "Time in the "
                                         "dataplane per request, decoding excluded",
                                         ["operation", "model"], buckets=_LATENCY, registry=r)
        self.run_seconds = Histogram("tfsoap_model_run_duration_seconds", "TensorFlow run "
                                     "time (one request or one merged batch)",
                                     ["model", "version"], buckets=_LATENCY, registry=r)
        self.batch_size = Histogram("tfsoap_batch_size_rows", "Rows per batched run",
                                    ["model", "version"], buckets=_BATCH, registry=r)
        self.queued = Gauge("tfsoap_queued_requests", "Requests waiting for a run slot or a "
                            "batch", ["model", "version"], registry=r,
                            multiprocess_mode="livesum")
        self.in_flight = Gauge("tfsoap_runs_in_flight", "Model runs in progress",
                               ["model", "version"], registry=r, multiprocess_mode="livesum")
        self.load_seconds = Gauge("tfsoap_model_load_seconds", "Time the last load and warm-up "
                                  "of a version took", ["model", "version"], registry=r,
                                  multiprocess_mode="livemax")
        self.memory_bytes = Gauge("tfsoap_model_memory_bytes", "Resident memory the last load "
                                  "of a version added (measured RSS delta; summed over worker "
                                  "processes)", ["model", "version"], registry=r,
                                  multiprocess_mode="livesum")
        self.version_state = Gauge("tfsoap_model_version_state", "1 for the state a version is "
                                   "in (LOADING, AVAILABLE, FAILED), else 0",
                                   ["model", "version", "state"], registry=r,
                                   multiprocess_mode="livemax")
        self.reloads = Counter("tfsoap_reloads", "Reload passes of the model store by outcome",
                               ["outcome"], registry=r)
        self._models: set[str] = set()
        self._versions: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    # -- RegistryObserver --------------------------------------------------------------------
    def version(self, name: str, version: int) -> VersionObserver:
        return _VersionMetrics(self, name, str(version))

    def state(self, name: str, version: int, state: str | None) -> None:
        v = str(version)
        with self._lock:
            self._models.add(name)
            self._versions.add((name, v))
        for s in STATES:
            self.version_state.labels(name, v, s).set(1 if s == state else 0)
        if state is None:  # left the registry: its memory is given back once drained
            self.memory_bytes.labels(name, v).set(0)

    def loaded(self, name: str, version: int, seconds: float, memory_bytes: int = 0) -> None:
        self.load_seconds.labels(name, str(version)).set(seconds)
        self.memory_bytes.labels(name, str(version)).set(memory_bytes)

    def reloaded(self, outcome: str) -> None:
        self.reloads.labels(outcome).inc()

    # -- requests ----------------------------------------------------------------------------
    def record(self, operation: str, model: str, version: int | None, outcome: str,
               seconds: float) -> None:
        """Count one request (called by the dataplane as it ends)."""
        if model == "-":
            model = ""
        elif model not in self._models:
            model, version = UNKNOWN_MODEL, None
        v = str(version) if version is not None else ""
        if v and (model, v) not in self._versions:
            v = ""
        self.requests.labels(operation, model, v, outcome).inc()
        self.request_seconds.labels(operation, model).observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The text a scrape gets, and its content type (every worker's in multiprocess mode)."""
        if self.multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
