"""Dynamic batching: merge concurrent requests to one model along the batch dimension.

Requests whose inputs agree on every dimension but the first (and ask for the same outputs) are
concatenated, run once, and the outputs split back to each caller in order. A batch is gathered
by one worker at a time and closes when it holds ``max_batch_size`` rows, when no other batch of
the model is running (waiting would only leave the model idle: at low load a request runs at
once, and under load the next batch fills while the previous one runs) unless requests arrive
closer together than a run takes (moving averages of both: then the next request, due within
1.5 gaps, is cheaper to add than to run alone; a server answering on its event loop hands over
requests one by one, and this made its batches at 8 clients twice as big), or
``batch_timeout_ms`` after its first request arrived. A request of ``max_batch_size`` rows or
more runs alone, straight through the gate, beside the merged runs. At most
``max_enqueued_batches`` batches' worth of requests wait; more are refused with
``UnavailableError``. A failure of a merged run is reported to every request in it.

Requests wait in one FIFO queue per input signature (the shapes past the batch dimension, the
dtypes and the outputs asked for), so gathering a batch costs what the batch holds, not what
the queues hold; a batch starts with the oldest waiting request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from ..errors import ModelStoreError, UnavailableError
from ..store import BatchingConfig, TensorSpec
from .loader import LoadedModel
from .session_pool import AdmissionGate

log = logging.getLogger(__name__)



@dataclass(eq=False)
class BatchTicket:
    """One request waiting for, or in, a batch."""

    feeds: Mapping[str, np.ndarray]
    specs: tuple[TensorSpec, ...]
    rows: int
    key: tuple[object, ...]
    arrived: float
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, np.ndarray] | None = None
    error: BaseException | None = None
    taken: bool = False
    #: called in the worker's thread once ``result`` or ``error`` is set (``submit_nowait``)
    notify: Callable[[], None] | None = None

    def outcome(self) -> dict[str, np.ndarray]:
        """The request's outputs by alias, or the error of its batch raised."""
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


class _Queue(deque[BatchTicket]):
    """The requests waiting with one input signature, and how many rows they hold."""

    rows = 0


class DynamicBatcher:
    """Batches requests for one loaded model; ``gate`` bounds the merged runs in flight.

    ``workers`` (default: the model's session ``instances``) merged runs may be in flight.
    """

    def __init__(self, model: LoadedModel, gate: AdmissionGate, config: BatchingConfig,
                 workers: int | None = None) -> None:
        self.model = model
        self.gate = gate
        self.config = config
        self._queues: dict[tuple[object, ...], _Queue] = {}
        self._waiting = 0  # requests in self._queues
        self._running = 0  # batches gathered and not finished
        self._gathering = False  # one worker gathers at a time, so batches are not split
        self._gather_key: tuple[object, ...] = ()
        self._gather_rows = 0
        self._gathered = 0  # requests in the batch being gathered
        self._last_arrival = 0.0  # when the last request was queued (monotonic)
        self._gap = 1.0  # seconds between queued requests, a moving average
        self._soon = False  # the gatherer waits for a request due soon (the model is idle)
        self._run_s = 0.0  # seconds a batch takes to run, a moving average
        # One lock, two conditions, so each event wakes only the thread it concerns: idle
        # workers wait for requests to gather, the gathering worker for more of them (or for
        # the model to fall idle).
        lock = threading.Lock()
        self._cond = threading.Condition(lock)
        self._more = threading.Condition(lock)
        self._closed = False
        self.batches_run = 0
        self.requests_batched = 0
        self.accepted = 0  # requests taken in (queued, or run at once on the caller's thread)
        # One merged run at a time per session: a batch already uses every core (intra-op
        # threads), and while it runs the next one gathers. A second worker running a second
        # batch beside it measured slower (fewer, smaller batches and more thread switches).
        n = workers if workers is not None else max(1, model.instances)
        self._workers = [threading.Thread(target=self._work, daemon=True,
                                          name=f"tfsoap-batch-{model.name}-{i}")
                         for i in range(n)]
        for w in self._workers:
            w.start()

    @property
    def max_pending(self) -> int:
        return self.config.max_enqueued_batches * self.config.max_batch_size

    @property
    def waiting(self) -> int:
        """Requests accepted and not running yet (queued, or in the batch being gathered)."""
        return self._waiting + self._gathered

    @property
    def running(self) -> int:
        """Batches running or waiting for a run slot."""
        return self._running

    def submit(self, feeds: Mapping[str, np.ndarray], specs: Sequence[TensorSpec],
               deadline: float | None = None) -> dict[str, np.ndarray]:
        """Run ``feeds`` as part of a batch; block until its own outputs are ready."""
        specs = tuple(specs)
        rows = self._rows(feeds)
        if rows >= self.config.max_batch_size or rows == 0:  # nothing could join it
            return self.gate.call(lambda: self.model.run(feeds, specs), deadline)
        item = self._item(feeds, specs, rows)
        if deadline is None:
            deadline = item.arrived + self.gate.limits.queue_timeout_s
        # An idle model with nothing queued runs the request at once, on this thread:
        # handing it to a worker would only add two thread switches.
        if self._enqueue(item, direct=True):
            self._run_batch([item])
        if not item.done.wait(max(0.0, deadline - time.monotonic())):
            if self.withdraw(item):
                raise self._late()
            item.done.wait()
        return item.outcome()

    def submit_nowait(self, feeds: Mapping[str, np.ndarray], specs: Sequence[TensorSpec],
                      notify: Callable[[], None]) -> BatchTicket | None:
        """Queue ``feeds`` for a batch and return at once, for a caller that must not block
        (an event loop). ``notify`` is called, in a worker's thread, once the ticket's
        ``outcome()`` is ready; the request never runs in the caller's thread. A caller whose
        deadline passes first calls ``withdraw(ticket)``. None for a request that no other
        could join (``max_batch_size`` rows or more, or none): run it with ``submit``, in a
        thread that may block."""
        specs = tuple(specs)
        rows = self._rows(feeds)
        if rows >= self.config.max_batch_size or rows == 0:
            return None
        item = self._item(feeds, specs, rows)
        item.notify = notify
        self._enqueue(item, direct=False)
        return item

    def withdraw(self, item: BatchTicket) -> bool:
        """Take ``item`` out of its queue if no batch has taken it yet (its deadline passed):
        True when withdrawn, False when it runs or ran (its outcome comes)."""
        with self._cond:
            if item.taken:
                return False
            queue = self._queues[item.key]
            queue.remove(item)
            queue.rows -= item.rows
            self._waiting -= 1
            self.gate.observer.queued(-1)
            if not queue and not self._gathering:
                del self._queues[item.key]
            return True

    def _late(self) -> UnavailableError:
        return UnavailableError(f"model {self.model.name} is overloaded: the request was not "
                                "batched within its deadline; retry later")

    def _rows(self, feeds: Mapping[str, np.ndarray]) -> int:
        return int(feeds[self.model.signature.inputs[0].alias].shape[0])

    def _item(self, feeds: Mapping[str, np.ndarray], specs: tuple[TensorSpec, ...],
              rows: int) -> BatchTicket:
        key = (tuple(t.alias for t in specs),) + tuple(
            (feeds[t.alias].shape[1:], feeds[t.alias].dtype.str)
            for t in self.model.signature.inputs)
        return BatchTicket(feeds, specs, rows, key, time.monotonic())

    def _enqueue(self, item: BatchTicket, direct: bool) -> bool:
        """Queue ``item`` (waking the worker that gathers); or, with ``direct`` and an idle
        model, count it as running and return True: the caller runs it."""
        with self._cond:
            if self._closed:
                raise UnavailableError(f"model {self.model.name} is being unloaded")
            if self._waiting >= self.max_pending:
                self.gate.rejected += 1
                raise UnavailableError(
                    f"model {self.model.name} v{self.model.version} batch queue is full "
                    f"({self._waiting} waiting); retry later")
            self.accepted += 1
            if direct and not (self._running or self._waiting or self._gathering):
                item.taken = True
                self._running += 1
                return True
            gap = item.arrived - self._last_arrival
            self._gap += 0.25 * (min(gap, 1.0) - self._gap)
            self._last_arrival = item.arrived
            queue = self._queues.get(item.key)
            if queue is None:
                queue = self._queues[item.key] = _Queue()
            queue.append(item)
            queue.rows += item.rows
            self._waiting += 1
            self.gate.observer.queued(1)
            if not self._gathering:
                self._cond.notify()
            elif item.key == self._gather_key and (self._soon or \
                    self._gather_rows + queue.rows >= self.config.max_batch_size):
                # only now can the batch being gathered close before the model falls
                # idle: waking the gatherer for every request costs two thread switches
                self._more.notify()
        return False

    def _gather(self, queue: _Queue, batch: list[BatchTicket], rows: int) -> int:
        """Move requests from the front of ``queue`` into ``batch`` while they fit."""
        limit = self.config.max_batch_size
        while queue and rows + queue[0].rows <= limit:
            item = queue.popleft()
            item.taken = True
            batch.append(item)
            rows += item.rows
            queue.rows -= item.rows
            self._waiting -= 1
            self.gate.observer.queued(-1)
        self._gather_rows = rows
        self._gathered = len(batch)
        return rows

    def _take_batch(self) -> list[BatchTicket] | None:
        """Wait for requests, then gather one batch (see the module docstring for when it
        closes). Called with ``self._cond`` not held."""
        timeout_s = self.config.batch_timeout_ms / 1000.0
        with self._cond:
            while self._gathering or not self._waiting:
                if self._closed and not self._waiting:
                    return None
                self._cond.wait()
            self._gathering = True
            try:
                key, queue = min(((k, q) for k, q in self._queues.items() if q),
                                 key=lambda kq: kq[1][0].arrived)
                closes_at = queue[0].arrived + timeout_s
                self._gather_key = key
                batch: list[BatchTicket] = []
                rows = self._gather(queue, batch, 0)
                # Wait for more only while the model is busy anyway, or while requests arrive
                # so close together that the next is due within _SOON_S, and the batch could
                # grow: a request left at the head of the queue does not fit, and FIFO order
                # holds.
                while (rows < self.config.max_batch_size and not queue
                       and not self._closed):
                    now = time.monotonic()
                    left = closes_at - now
                    if left <= 0:
                        break
                    if not self._running:
                        due = self._last_arrival + 1.5 * self._gap - now
                        if self._gap > self._run_s or due <= 0:
                            break
                        left = min(left, due)
                    self._soon = not self._running
                    self._more.wait(left)
                    self._soon = False
                    rows = self._gather(queue, batch, rows)
                if not queue:
                    del self._queues[key]
                self._running += 1
            finally:
                self._gathering = False
                self._gathered = 0
                if self._waiting or self._closed:
                    self._cond.notify()
        return batch

    def _work(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            self._run_batch(batch)

    def _run_batch(self, batch: list[BatchTicket]) -> None:
        """Run a gathered batch (counted in ``_running``), then let the next one go."""
        started = time.monotonic()
        try:
            self._run(batch)
        finally:
            with self._cond:
                self._run_s += 0.25 * (min(time.monotonic() - started, 1.0) - self._run_s)
                self._running -= 1
                self._more.notify()  # the model may be idle now: a gathered batch can go
                if self._waiting and not self._gathering:
                    self._cond.notify()

    def _run(self, batch: list[BatchTicket]) -> None:
        try:
            if len(batch) == 1:
                merged = batch[0].feeds
            else:
                merged = {t.alias: np.concatenate([b.feeds[t.alias] for b in batch])
                          for t in self.model.signature.inputs}
            outputs = self.gate.call(lambda: self.model.run(merged, batch[0].specs),
                                     time.monotonic() + self.gate.limits.queue_timeout_s)
            offset = 0
            for item in batch:
                item.result = {k: v[offset:offset + item.rows] for k, v in outputs.items()}
                offset += item.rows
            self.batches_run += 1
            self.requests_batched += len(batch)
            self.gate.observer.batched(sum(item.rows for item in batch))
        except ModelStoreError as exc:
            for item in batch:
                item.error = exc
        except Exception as exc:  # reported to every caller; the worker keeps running
            log.exception("batched run of %s failed", self.model.name)
            for item in batch:
                item.error = exc
        finally:
            for item in batch:
                item.done.set()
                if item.notify is not None:
                    try:
                        item.notify()
                    except Exception:  # the waiter is gone (its event loop closed)
                        log.debug("a batched request's waiter could not be told", exc_info=True)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            self._more.notify_all()
