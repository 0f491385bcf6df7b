"""Dynamic batching through the real server and the Python client: concurrent callers of a
batched model (``affine_batched``: ``max_batch_size`` 16) each get their own rows back."""

from __future__ import annotations

import threading

import numpy as np

from tests.models import affine_expected

V = 3.0  # affine_batched computes x @ (3 * ones(4, 3)) + 3


def test_32_concurrent_callers_of_a_batched_model_each_get_their_own_result(server) -> None:
    from tfsoap_client import PredictClient

    batcher = server.app.registry.get("affine_batched").batcher
    assert batcher is not None, "affine_batched should be served with batching on"
    before = batcher.requests_batched
    callers, rounds = 32, 3
    results: dict[int, object] = {}
    barrier = threading.Barrier(callers)

    def call(i: int) -> None:
        try:
            client = PredictClient(server.url, timeout=60,
                                   encoding="typed" if i % 4 == 0 else "tensor_content")
            ok = True
            for r in range(rounds):
                x = np.random.default_rng(1000 * r + i).standard_normal(
                    (1 + (i + r) % 3, 4)).astype(np.float32)
                barrier.wait(timeout=60)
                y = client.predict("affine_batched", {"x": x})["y"]
                ok = ok and y.shape == (len(x), 3) and bool(
                    np.allclose(y, affine_expected(x, V), rtol=1e-5, atol=1e-5))
            results[i] = ok
        except Exception as exc:  # collected and reported below
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert len(results) == callers
    assert all(v is True for v in results.values()), results
    assert batcher.requests_batched - before == callers * rounds


def test_a_request_over_max_batch_size_is_served_alone_beside_batched_ones(server) -> None:
    from tfsoap_client import PredictClient

    big = np.arange(40 * 4, dtype=np.float32).reshape(40, 4) / 10
    small = [np.full((1, 4), i, np.float32) for i in range(8)]
    results: dict[int, object] = {}

    def call(i: int, x: np.ndarray) -> None:
        try:
            y = PredictClient(server.url, timeout=60).predict("affine_batched", {"x": x})["y"]
            results[i] = bool(np.allclose(y, affine_expected(x, V), rtol=1e-5, atol=1e-4))
        except Exception as exc:  # collected and reported below
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i, x)) for i, x in enumerate([big, *small])]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert results == {i: True for i in range(len(small) + 1)}
