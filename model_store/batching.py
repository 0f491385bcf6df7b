"""Dynamic batching: merge concurrent requests to one model along the batch dimension.

Requests whose inputs agree on every dimension but the first (and ask for the same outputs) are
concatenated, run once, and the outputs split back to each caller in order. A batch closes when
it holds ``max_batch_size`` rows or ``batch_timeout_ms`` after its first request arrived. A
request larger than ``max_batch_size`` runs alone. At most ``max_enqueued_batches`` batches' worth
of requests wait; more are refused with ``UnavailableError``. A failure of a merged run is
reported to every request in it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from .errors import ModelStoreError, UnavailableError
from .loader import LoadedModel
from .session_pool import AdmissionGate
from .signature import BatchingConfig, TensorSpec

log = logging.getLogger(__name__)


@dataclass(eq=False)
class _Pending:
    feeds: Mapping[str, np.ndarray]
    specs: tuple[TensorSpec, ...]
    rows: int
    key: tuple[object, ...]
    done: threading.Event = field(default_factory=threading.Event)
    result: dict[str, np.ndarray] | None = None
    error: BaseException | None = None
    taken: bool = False


class DynamicBatcher:
    """Batches requests for one loaded model; ``gate`` bounds the merged runs in flight."""

    def __init__(self, model: LoadedModel, gate: AdmissionGate, config: BatchingConfig,
                 workers: int | None = None) -> None:
        self.model = model
        self.gate = gate
        self.config = config
        self._queue: deque[_Pending] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self.batches_run = 0
        self.requests_batched = 0
        n = workers if workers is not None else max(1, gate.limits.max_concurrent_runs)
        self._workers = [threading.Thread(target=self._work, daemon=True,
                                          name=f"tfsoap-batch-{model.name}-{i}")
                         for i in range(n)]
        for w in self._workers:
            w.start()

    @property
    def max_pending(self) -> int:
        return self.config.max_enqueued_batches * self.config.max_batch_size

    def submit(self, feeds: Mapping[str, np.ndarray], specs: Sequence[TensorSpec],
               deadline: float | None = None) -> dict[str, np.ndarray]:
        """Run ``feeds`` as part of a batch; block until its own outputs are ready."""
        inputs = self.model.signature.inputs
        rows = int(feeds[inputs[0].alias].shape[0])
        specs = tuple(specs)
        if rows > self.config.max_batch_size or rows == 0:
            return self.gate.call(lambda: self.model.run(feeds, specs), deadline)
        key = (tuple(t.alias for t in specs),) + tuple(
            (feeds[t.alias].shape[1:], feeds[t.alias].dtype.str) for t in inputs)
        item = _Pending(feeds, specs, rows, key)
        if deadline is None:
            deadline = time.monotonic() + self.gate.limits.queue_timeout_s
        with self._cond:
            if self._closed:
                raise UnavailableError(f"model {self.model.name} is being unloaded")
            if len(self._queue) >= self.max_pending:
                self.gate.rejected += 1
                raise UnavailableError(
                    f"model {self.model.name} v{self.model.version} batch queue is full "
                    f"({len(self._queue)} waiting); retry later")
            self._queue.append(item)
            self._cond.notify()
        if not item.done.wait(max(0.0, deadline - time.monotonic())):
            with self._cond:
                if not item.taken:
                    self._queue.remove(item)
                    raise UnavailableError(
                        f"model {self.model.name} is overloaded: the request was not batched "
                        "within its deadline; retry later")
            item.done.wait()
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    def _take_batch(self) -> list[_Pending] | None:
        """Block for the first request, then gather compatible ones until full or timed out."""
        timeout_s = self.config.batch_timeout_ms / 1000.0
        with self._cond:
            while not self._queue and not self._closed:
                self._cond.wait()
            if self._closed and not self._queue:
                return None
            first = self._queue.popleft()
            first.taken = True
            batch, rows = [first], first.rows
            closes_at = time.monotonic() + timeout_s
            while rows < self.config.max_batch_size:
                for item in list(self._queue):
                    if item.key == first.key and rows + item.rows <= self.config.max_batch_size:
                        self._queue.remove(item)
                        item.taken = True
                        batch.append(item)
                        rows += item.rows
                        if rows >= self.config.max_batch_size:
                            break
                left = closes_at - time.monotonic()
                if rows >= self.config.max_batch_size or left <= 0 or self._closed:
                    break
                self._cond.wait(left)
            if self._queue:
                self._cond.notify()
            return batch

    def _work(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            self._run(batch)

    def _run(self, batch: list[_Pending]) -> None:
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

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
