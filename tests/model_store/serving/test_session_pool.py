"""The admission gate: bounded runs in flight, a bounded queue, and deadlines."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from model_store import UnavailableError
from model_store.serving.session_pool import AdmissionGate, PoolLimits


def test_runs_in_flight_never_exceed_the_limit() -> None:
    gate = AdmissionGate("m", PoolLimits(max_concurrent_runs=2, max_queued=100,
                                         queue_timeout_s=10))
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal peak
        with gate.slot():
            with lock:
                peak = max(peak, gate.running)
            time.sleep(0.01)

    threads = [threading.Thread(target=work) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert peak == 2 and gate.completed == 20 and gate.rejected == 0


@contextmanager
def slot_held_elsewhere(gate: AdmissionGate) -> Iterator[None]:
    """Another thread holds the gate's only slot for the ``with`` body."""
    release = threading.Event()
    held = threading.Event()

    def hold() -> None:
        with gate.slot():
            held.set()
            release.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    held.wait(5)
    try:
        yield
    finally:
        release.set()
        t.join()


def test_a_full_queue_is_refused_at_once() -> None:
    gate = AdmissionGate("m", PoolLimits(max_concurrent_runs=1, max_queued=0,
                                         queue_timeout_s=10))
    with slot_held_elsewhere(gate):
        started = time.monotonic()
        with pytest.raises(UnavailableError, match="overloaded"):
            with gate.slot():
                pass
        assert time.monotonic() - started < 1
    with gate.slot():
        pass
    assert gate.rejected == 1


def test_a_queued_request_gives_up_at_its_deadline() -> None:
    gate = AdmissionGate("m", PoolLimits(max_concurrent_runs=1, max_queued=5,
                                         queue_timeout_s=10))
    with slot_held_elsewhere(gate):
        started = time.monotonic()
        with pytest.raises(UnavailableError, match="deadline"):
            with gate.slot(deadline=time.monotonic() + 0.2):
                pass
        assert 0.15 < time.monotonic() - started < 2
        assert gate.waiting == 0
