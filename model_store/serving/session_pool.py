"""Admission control in front of a loaded model: bounded runs in flight, a deadline queue.

Concurrency must not cost a copy of the weights per request (every ``Session`` holds its own
copy), so requests share the model's sessions: at most ``max_concurrent_runs`` run at once, up to
``max_queued`` more wait for a slot until their deadline, and the rest are refused at once with
``UnavailableError`` so an overloaded server answers quickly instead of piling up threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, TypeVar

from ..errors import UnavailableError
from .observer import NULL_VERSION_OBSERVER, VersionObserver

T = TypeVar("T")


@dataclass(frozen=True)
class PoolLimits:
    """How many runs may be in flight per model, how many may wait, and for how long."""

    max_concurrent_runs: int = 2
    max_queued: int = 256
    queue_timeout_s: float = 30.0


class AdmissionGate:
    """Lets at most ``limits.max_concurrent_runs`` callers through at once, FIFO-fair enough."""

    def __init__(self, label: str, limits: PoolLimits,
                 observer: VersionObserver = NULL_VERSION_OBSERVER) -> None:
        self.label = label
        self.limits = limits
        self.observer = observer
        self._cond = threading.Condition()
        self._running = 0
        self._waiting = 0
        self.completed = 0
        self.rejected = 0

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return self._waiting

    @contextmanager
    def slot(self, deadline: float | None = None) -> Iterator[None]:
        """Hold a run slot for the ``with`` body; raise ``UnavailableError`` if none comes in time.

        ``deadline`` is a ``time.monotonic()`` value; by default ``queue_timeout_s`` from now.
        """
        if deadline is None:
            deadline = time.monotonic() + self.limits.queue_timeout_s
        with self._cond:
            if self._running >= self.limits.max_concurrent_runs:
                if self._waiting >= self.limits.max_queued:
                    self.rejected += 1
                    raise UnavailableError(
                        f"{self.label} is overloaded: {self._running} running and "
                        f"{self._waiting} queued; retry later")
                self._waiting += 1
                self.observer.queued(1)
                try:
                    while self._running >= self.limits.max_concurrent_runs:
                        left = deadline - time.monotonic()
                        if left <= 0 or not self._cond.wait(left) and \
                                self._running >= self.limits.max_concurrent_runs:
                            self.rejected += 1
                            raise UnavailableError(
                                f"{self.label} is overloaded: no run slot within the deadline; "
                                "retry later")
                finally:
                    self._waiting -= 1
                    self.observer.queued(-1)
            self._running += 1
        self.observer.running(1)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.observer.ran(time.perf_counter() - started)
            self.observer.running(-1)
            with self._cond:
                self._running -= 1
                self.completed += 1
                self._cond.notify()

    def call(self, fn: Callable[[], T], deadline: float | None = None) -> T:
        """Run ``fn`` holding a slot."""
        with self.slot(deadline):
            return fn()
