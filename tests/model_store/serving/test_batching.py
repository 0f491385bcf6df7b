"""Dynamic batching on a real TensorFlow model: every caller gets its own rows back, batches
close as documented, failures and overload reach every request concerned.

Where a test needs requests to wait, the model's first run is held on an event (``HeldRun``):
that request found the model idle and runs at once on its own thread; the requests submitted
meanwhile are gathered into the next batch, which waits for the model to fall idle (the batch
timeout is long), so what merges with what is deterministic.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Callable

import numpy as np
import pytest

from model_store import InferenceError, ModelRepository, UnavailableError
from model_store.serving.loader import LoadedModel
from model_store.serving.registry import RegistrySettings, ServedModel
from model_store.serving.session_pool import PoolLimits
from model_store.store.signature import BatchingConfig
from tests.models import affine_expected, affine_model, echo_model, failing_model

V = 3.0


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> ModelRepository:
    repo = ModelRepository(tmp_path_factory.mktemp("batching-store"))
    graph, sig = affine_model(V)
    repo.write_version("affine", graph, sig, version=1)
    graph, sig = failing_model()
    repo.write_version("failing", graph, sig, version=1)
    graph, sig = echo_model("DT_FLOAT")  # without its scalar output, which has no batch dim
    repo.write_version("echo", graph, dataclasses.replace(sig, outputs=sig.outputs[:1]),
                       version=1)
    return repo


def served(repo: ModelRepository, name: str, config: BatchingConfig | None,
           runs: int = 2, queued: int = 256) -> ServedModel:
    """``name`` served with ``config`` (None: batching off) and ``runs`` runs in flight."""
    settings = RegistrySettings(limits=PoolLimits(runs, queued, 30.0), batching=config,
                                disable_batching=config is None)
    return ServedModel(LoadedModel(repo.versions(name)[-1]), settings)


class HeldRun:
    """Wraps ``LoadedModel.run`` of ``model``: records the feeds of every run and holds the
    first one until ``release()``."""

    def __init__(self, model: ServedModel) -> None:
        self.model = model
        self.inner: Callable[..., dict[str, np.ndarray]] = model.loaded.run
        self.started = threading.Event()
        self.gate = threading.Event()
        self.runs: list[dict[str, np.ndarray]] = []
        self.threads: list[str] = []  # the thread of each run
        self._lock = threading.Lock()
        model.loaded.run = self  # type: ignore[method-assign]

    def __call__(self, feeds: Any, outputs: Any = None) -> dict[str, np.ndarray]:
        with self._lock:
            self.runs.append({k: np.array(v) for k, v in feeds.items()})
            self.threads.append(threading.current_thread().name)
            first = len(self.runs) == 1
        if first:
            self.started.set()
            assert self.gate.wait(30), "the held run was never released"
        return self.inner(feeds, outputs)

    def release(self) -> None:
        self.gate.set()

    def wait_queued(self, n: int, timeout: float = 10.0) -> None:
        """Block until ``n`` requests wait in the batcher (queued or being gathered)."""
        batcher = self.model.batcher
        assert batcher is not None
        deadline = time.monotonic() + timeout
        while batcher.waiting < n:
            assert time.monotonic() < deadline, f"{batcher.waiting} of {n} requests queued"
            time.sleep(0.002)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.002)


def in_threads(calls: list[Callable[[], Any]]) -> tuple[list[Any], list[threading.Thread]]:
    """Start each call in a thread; results (or the exception raised) land in the list."""
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            results[i] = calls[i]()
        except Exception as exc:  # the test inspects it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    return results, threads


def join(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.join(timeout=60)
        assert not t.is_alive()


@pytest.mark.parametrize("batching", [True, False], ids=["batching-on", "batching-off"])
def test_many_concurrent_callers_each_get_exactly_their_own_outputs(
        repo: ModelRepository, batching: bool) -> None:
    config = BatchingConfig(max_batch_size=16, batch_timeout_ms=5, max_enqueued_batches=64)
    model = served(repo, "affine", config if batching else None)
    assert (model.batcher is not None) is batching
    inputs = [np.random.default_rng(i).standard_normal((1 + i % 3, 4)).astype(np.float32)
              for i in range(64)]
    barrier = threading.Barrier(len(inputs))

    def call(x: np.ndarray) -> np.ndarray:
        barrier.wait(timeout=30)
        return model.predict({"x": x})["y"]

    try:
        for _ in range(3):
            results, threads = in_threads([lambda x=x: call(x) for x in inputs])
            join(threads)
            for x, y in zip(inputs, results):
                assert isinstance(y, np.ndarray), y
                np.testing.assert_allclose(y, affine_expected(x, V), rtol=1e-6)
    finally:
        model.close()


def test_queued_requests_are_merged_into_one_run_and_split_back(repo: ModelRepository) -> None:
    model = served(repo, "affine", BatchingConfig(max_batch_size=16, batch_timeout_ms=10_000),
                   runs=1)
    held = HeldRun(model)
    first = np.zeros((1, 4), np.float32)
    inputs = [np.full((1 + i % 2, 4), i, np.float32) for i in range(6)]
    try:
        results0, t0 = in_threads([lambda: model.predict({"x": first})["y"]])
        assert held.started.wait(10)
        results, threads = in_threads([lambda x=x: model.predict({"x": x})["y"]
                                       for x in inputs])
        held.wait_queued(len(inputs))
        held.release()
        join(t0 + threads)
        assert [len(r["x"]) for r in held.runs] == [1, sum(len(x) for x in inputs)]
        np.testing.assert_allclose(results0[0], affine_expected(first, V))
        for x, y in zip(inputs, results):
            np.testing.assert_allclose(y, affine_expected(x, V), rtol=1e-6)
        assert model.batcher is not None and model.batcher.batches_run == 2
    finally:
        held.release()
        model.close()


def test_a_lone_request_runs_at_once_instead_of_waiting_for_the_timeout(
        repo: ModelRepository) -> None:
    model = served(repo, "affine", BatchingConfig(max_batch_size=16, batch_timeout_ms=5_000))
    x = np.ones((1, 4), np.float32)
    try:
        model.predict({"x": x})  # warm
        started = time.monotonic()
        y = model.predict({"x": x})["y"]
        assert time.monotonic() - started < 2.0
        np.testing.assert_allclose(y, affine_expected(x, V))
    finally:
        model.close()


def test_a_request_larger_than_max_batch_size_runs_alone(repo: ModelRepository) -> None:
    model = served(repo, "affine", BatchingConfig(max_batch_size=4, batch_timeout_ms=10_000),
                   runs=2)
    held = HeldRun(model)
    small = [np.full((1, 4), i, np.float32) for i in range(3)]
    big = np.arange(40, dtype=np.float32).reshape(10, 4)
    try:
        results0, t0 = in_threads([lambda: model.predict({"x": small[0]})["y"]])
        assert held.started.wait(10)
        results, threads = in_threads([lambda: model.predict({"x": big})["y"]]
                                      + [lambda x=x: model.predict({"x": x})["y"]
                                         for x in small[1:]])
        join(threads[:1])  # the big one does not wait for the held batch, nor join it
        np.testing.assert_allclose(results[0], affine_expected(big, V), rtol=1e-6)
        held.release()
        join(t0 + threads)
        assert sorted(len(r["x"]) for r in held.runs) == [1, 2, 10]
        for x, y in zip(small, results0 + results[1:]):
            np.testing.assert_allclose(y, affine_expected(x, V), rtol=1e-6)
    finally:
        held.release()
        model.close()


def test_a_failure_in_a_merged_batch_is_reported_to_each_request_in_it(
        repo: ModelRepository) -> None:
    model = served(repo, "failing", BatchingConfig(max_batch_size=8, batch_timeout_ms=10_000),
                   runs=1)
    held = HeldRun(model)
    clean = np.array([1.0, 2.0], np.float32)
    merged = [np.array([3.0], np.float32), np.array([np.nan, 4.0], np.float32),
              np.array([5.0], np.float32)]
    try:
        results0, t0 = in_threads([lambda: model.predict({"x": clean})["y"]])
        assert held.started.wait(10)
        results, threads = in_threads([lambda x=x: model.predict({"x": x})["y"]
                                       for x in merged])
        held.wait_queued(len(merged))
        held.release()
        join(t0 + threads)
        np.testing.assert_array_equal(results0[0], clean)
        assert [len(r["x"]) for r in held.runs] == [2, 4]
        assert all(isinstance(r, InferenceError) for r in results), results
        # the batcher keeps serving after a failed batch
        np.testing.assert_array_equal(model.predict({"x": clean})["y"], clean)
    finally:
        held.release()
        model.close()


def test_a_full_queue_answers_unavailable_at_once(repo: ModelRepository) -> None:
    config = BatchingConfig(max_batch_size=2, batch_timeout_ms=10_000, max_enqueued_batches=1)
    model = served(repo, "affine", config, runs=1)
    held = HeldRun(model)
    batcher = model.batcher
    assert batcher is not None
    x = np.ones((1, 4), np.float32)
    try:
        results0, t0 = in_threads([lambda: model.predict({"x": x})["y"]])
        assert held.started.wait(10)
        # two fill a batch, which waits for the run slot the held run has ...
        results1, t1 = in_threads([lambda: model.predict({"x": x})["y"]] * 2)
        wait_until(lambda: batcher.running == 2 and batcher.waiting == 0)
        # ... and two more fill the queue (max_enqueued_batches * max_batch_size)
        results2, t2 = in_threads([lambda: model.predict({"x": x})["y"]] * 2)
        held.wait_queued(2)
        started = time.monotonic()
        with pytest.raises(UnavailableError, match="queue is full"):
            model.predict({"x": x})
        assert time.monotonic() - started < 1.0
        assert model.gate.rejected == 1
        held.release()
        join(t0 + t1 + t2)
        for y in results0 + results1 + results2:
            np.testing.assert_allclose(y, affine_expected(x, V))
    finally:
        held.release()
        model.close()


def test_a_request_not_batched_by_its_deadline_is_refused(repo: ModelRepository) -> None:
    model = served(repo, "echo", BatchingConfig(max_batch_size=4, batch_timeout_ms=10_000),
                   runs=1)
    held = HeldRun(model)
    x, y, late = (np.ones((1, n), np.float32) for n in (2, 3, 5))
    try:
        results0, t0 = in_threads([lambda: model.predict({"x": x})["y"]])
        assert held.started.wait(10)
        results1, t1 = in_threads([lambda: model.predict({"x": y})["y"]])
        held.wait_queued(1)  # the next batch (of y's shape) waits for the model to be idle
        with pytest.raises(UnavailableError, match="deadline"):
            model.predict({"x": late}, deadline=time.monotonic() + 0.1)
        assert model.batcher is not None and model.batcher.waiting == 1
        held.release()
        join(t0 + t1)
        np.testing.assert_array_equal(results1[0], y)
        np.testing.assert_array_equal(model.predict({"x": late})["y"], late)
    finally:
        held.release()
        model.close()


def test_requests_with_different_inner_shapes_are_not_merged(repo: ModelRepository) -> None:
    model = served(repo, "echo", BatchingConfig(max_batch_size=16, batch_timeout_ms=10_000),
                   runs=1)
    held = HeldRun(model)
    first = np.zeros((1, 2), np.float32)
    inputs = [np.full((1, 3), 1.0, np.float32), np.full((2, 5), 2.0, np.float32),
              np.full((1, 3), 3.0, np.float32), np.full((1, 5), 4.0, np.float32)]
    try:
        results0, t0 = in_threads([lambda: model.predict({"x": first})["y"]])
        assert held.started.wait(10)
        results, threads = in_threads([lambda x=x: model.predict({"x": x})["y"]
                                       for x in inputs])
        held.wait_queued(len(inputs))
        held.release()
        join(t0 + threads)
        assert sorted(r["x"].shape for r in held.runs) == [(1, 2), (2, 3), (3, 5)]
        np.testing.assert_array_equal(results0[0], first)
        for x, y in zip(inputs, results):
            np.testing.assert_array_equal(y, x)
    finally:
        held.release()
        model.close()


def test_closing_the_batcher_refuses_new_requests(repo: ModelRepository) -> None:
    model = served(repo, "affine", BatchingConfig(max_batch_size=4, batch_timeout_ms=1))
    model.close()
    with pytest.raises(UnavailableError):
        model.predict({"x": np.ones((1, 4), np.float32)})


class Told:
    """A ``notify`` for ``predict_nowait``: records the thread that called it."""

    def __init__(self) -> None:
        self.threads: list[str] = []
        self.event = threading.Event()

    def __call__(self) -> None:
        self.threads.append(threading.current_thread().name)
        self.event.set()


def test_requests_queued_without_waiting_are_batched_and_told_in_a_worker(
        repo: ModelRepository) -> None:
    model = served(repo, "affine", BatchingConfig(max_batch_size=16, batch_timeout_ms=10_000),
                   runs=1)
    held = HeldRun(model)
    first = np.zeros((1, 4), np.float32)
    inputs = [np.full((1 + i % 2, 4), i, np.float32) for i in range(4)]
    try:
        results0, t0 = in_threads([lambda: model.predict({"x": first})["y"]])
        assert held.started.wait(10)
        told = [Told() for _ in inputs]
        tickets = [model.predict_nowait({"x": x}, None, t) for x, t in zip(inputs, told)]
        held.wait_queued(len(inputs))
        assert not any(t.event.is_set() for t in told)
        held.release()
        join(t0)
        for x, ticket, t in zip(inputs, tickets, told):
            assert ticket is not None and t.event.wait(10)
            assert len(t.threads) == 1 and t.threads[0].startswith("tfsoap-batch-affine")
            np.testing.assert_allclose(ticket.outcome()["y"], affine_expected(x, V), rtol=1e-6)
        assert [len(r["x"]) for r in held.runs] == [1, sum(len(x) for x in inputs)]
    finally:
        held.release()
        model.close()


def test_a_request_queued_without_waiting_never_runs_in_the_callers_thread(
        repo: ModelRepository) -> None:
    model = served(repo, "affine", BatchingConfig(max_batch_size=16, batch_timeout_ms=5_000))
    x = np.ones((1, 4), np.float32)
    held = HeldRun(model)
    held.release()
    try:
        told = Told()
        ticket = model.predict_nowait({"x": x}, None, told)  # the model is idle
        assert ticket is not None and told.event.wait(10)
        np.testing.assert_allclose(ticket.outcome()["y"], affine_expected(x, V))
        assert held.threads == told.threads and told.threads[0].startswith("tfsoap-batch-affine")
    finally:
        model.close()


def test_a_withdrawn_request_leaves_the_queue_and_a_taken_one_cannot_be_withdrawn(
        repo: ModelRepository) -> None:
    model = served(repo, "affine", BatchingConfig(max_batch_size=4, batch_timeout_ms=10_000),
                   runs=1)
    held = HeldRun(model)
    x = np.ones((1, 4), np.float32)
    try:
        results0, t0 = in_threads([lambda: model.predict({"x": x})["y"]])
        assert held.started.wait(10)
        gone, kept = Told(), Told()
        withdrawn = model.predict_nowait({"x": x}, None, gone)
        ticket = model.predict_nowait({"x": 2 * x}, None, kept)
        held.wait_queued(2)
        batcher = model.batcher
        assert batcher is not None and withdrawn is not None and ticket is not None
        assert batcher.withdraw(withdrawn) and batcher.waiting == 1
        held.release()
        join(t0)
        assert kept.event.wait(10)
        np.testing.assert_allclose(ticket.outcome()["y"], affine_expected(2 * x, V))
        assert not batcher.withdraw(ticket)  # it ran: its outcome stands
        assert not gone.event.is_set() and batcher.waiting == 0
        assert [len(r["x"]) for r in held.runs] == [1, 1]
    finally:
        held.release()
        model.close()


def test_requests_no_other_could_join_are_not_queued_without_waiting(
        repo: ModelRepository) -> None:
    model = served(repo, "affine", BatchingConfig(max_batch_size=4, batch_timeout_ms=1))
    plain = served(repo, "affine", None)
    try:
        told = Told()
        assert model.predict_nowait({"x": np.ones((4, 4), np.float32)}, None, told) is None
        assert plain.predict_nowait({"x": np.ones((1, 4), np.float32)}, None, told) is None
        assert not told.threads
    finally:
        model.close()
        plain.close()
    with pytest.raises(UnavailableError):
        model.predict_nowait({"x": np.ones((1, 4), np.float32)}, None, Told())


@pytest.mark.parametrize("run_s, merged", [(1.0, True), (0.01, False)],
                         ids=["arrivals-closer-than-a-run", "arrivals-farther-than-a-run"])
def test_an_idle_model_waits_for_a_request_due_sooner_than_a_run_takes(
        repo: ModelRepository, run_s: float, merged: bool) -> None:
    # The gatherer's estimates are set as a stream of requests 0.2 s apart and runs of
    # ``run_s`` would leave them: a request due (by the arrivals) before a run would end is
    # worth waiting for, with the model idle; one due later is not.
    model = served(repo, "affine", BatchingConfig(max_batch_size=8, batch_timeout_ms=2_000))
    held = HeldRun(model)
    held.release()
    batcher = model.batcher
    assert batcher is not None
    x, y = np.ones((1, 4), np.float32), np.full((1, 4), 2.0, np.float32)
    try:
        with batcher._cond:
            batcher._gap, batcher._run_s = 0.2, run_s
            batcher._last_arrival = time.monotonic()
        first, second = Told(), Told()
        a = model.predict_nowait({"x": x}, None, first)
        time.sleep(0.1)  # the second comes 0.1 s later: within 1.5 gaps of the first
        b = model.predict_nowait({"x": y}, None, second)
        assert a is not None and b is not None
        assert first.event.wait(10) and second.event.wait(10)
        np.testing.assert_allclose(a.outcome()["y"], affine_expected(x, V))
        np.testing.assert_allclose(b.outcome()["y"], affine_expected(y, V))
        assert [len(r["x"]) for r in held.runs] == ([2] if merged else [1, 1])
    finally:
        model.close()
