"""``Server.Unavailable``: an overloaded model answers at once with a fault, and recovers."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

import tfsoap_client as tc
from model_store import ModelRepository
from soap_server.app import start_server
from soap_server.settings import Settings
from tests.models import slow_model


@pytest.fixture(scope="module")
def tight_server(tmp_path_factory: pytest.TempPathFactory):
    root: Path = tmp_path_factory.mktemp("slow_store")
    graph, sig = slow_model()
    ModelRepository(root).write_version("slow", graph, sig, version=1)
    srv = start_server(Settings(model_store=str(root), port=0, max_concurrent_runs=1,
                                max_queued=1, request_timeout_s=30.0))
    assert srv.wait_ready(60)
    yield srv
    srv.stop()


def test_overload_gets_server_unavailable_and_the_model_recovers(tight_server) -> None:
    x = np.ones((256, 600), np.float32)
    outcomes: list[object] = []
    lock = threading.Lock()

    clients = [tc.PredictClient(tight_server.url, timeout=120) for _ in range(8)]
    barrier = threading.Barrier(8)

    def call(c: tc.PredictClient) -> None:
        barrier.wait(timeout=60)
        try:
            c.predict("slow", {"x": x})
            result: object = "ok"
        except tc.UnavailableError as exc:
            assert exc.code == "Server.Unavailable" and exc.request_id
            result = "unavailable"
        except Exception as exc:  # reported by the assertion below
            result = exc
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=call, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert len(outcomes) == 8
    assert set(outcomes) <= {"ok", "unavailable"}, outcomes
    assert outcomes.count("unavailable") >= 1 and outcomes.count("ok") >= 1
    y = tc.PredictClient(tight_server.url).predict("slow", {"x": np.ones((1, 600), np.float32)})
    np.testing.assert_allclose(y["y"], np.ones((1, 600)), rtol=1e-4)
    status = tc.PredictClient(tight_server.url).status()
    assert status.models[0]["requests_rejected"] >= 1
