"""Every lifecycle event under a closed loop of 8 clients, with 0 failed requests.

Each test runs its own server on a temporary store: ``affine`` (no batching) and ``batched``
(the same graph through the dynamic batcher), version ``k`` answering ``11 * k`` for the
request ``[1, 2, 3, 4]``. Half the clients call each model. Every loop is bounded in time and
count; only 127.0.0.1 is called.
"""

from __future__ import annotations

import os
import shutil
import time
from functools import cache
from pathlib import Path
from typing import Iterator

import pytest

from model_store import ModelRepository
from model_store.store.signature import BatchingConfig
from soap_server.app import start_server
from soap_server.settings import Settings
from tests.models import affine_model
from tests.soap_server.raw import parse_fault, post, predict_xml

from .load import Load

MODELS = ("affine", "batched")


@cache
def graph(model: str, k: float) -> tuple[bytes, object]:
    batching = BatchingConfig(max_batch_size=8, batch_timeout_ms=2, max_enqueued_batches=64) \
        if model == "batched" else None
    return affine_model(k, batching)


def write(repo: ModelRepository, model: str, version: int, k: float) -> None:
    g, sig = graph(model, k)
    repo.write_version(model, g, sig, version=version)  # type: ignore[arg-type]


def replace_in_place(repo: ModelRepository, model: str, version: int, k: float) -> None:
    """New bytes in the same folder, each file swapped by rename (as a deploy tool would)."""
    g, sig = graph(model, k)
    folder = repo.root / model / str(version)
    for name, data in (("model.pb", g), ("model.json", sig.dumps().encode())):  # type: ignore
        tmp = folder / (name + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, folder / name)


@pytest.fixture
def served(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[tuple]:
    poll = getattr(request, "param", 0.2)
    repo = ModelRepository(tmp_path / "store")
    repo.root.mkdir()
    for model in MODELS:
        write(repo, model, 1, 1.0)
        write(repo, model, 2, 2.0)
    srv = start_server(Settings(model_store=str(repo.root), port=0, threads=32,
                                poll_interval_s=poll, access_log=False))
    assert srv.wait_ready(60)
    yield srv, repo
    srv.stop()


def answers(k: float, version: int):  # noqa: ANN201
    return lambda a: a[1] == version and a[2] == 11 * k


def check(load: Load) -> None:
    result = load.stop()
    assert result.failed == 0, result.faults
    assert result.ok > 50


def test_a_version_added_under_load_takes_over_with_no_failure(served) -> None:
    srv, repo = served
    with Load(srv.url, MODELS) as load:
        assert load.wait_for(answers(2.0, 2))
        for model in MODELS:
            write(repo, model, 3, 3.0)
        assert load.wait_for(answers(3.0, 3)), load.result.last
        check(load)


def test_a_version_changed_in_place_under_load_is_picked_up_with_no_failure(served) -> None:
    srv, repo = served
    with Load(srv.url, MODELS) as load:
        assert load.wait_for(answers(2.0, 2))
        for model in MODELS:
            replace_in_place(repo, model, 2, 7.0)
        assert load.wait_for(answers(7.0, 2)), load.result.last
        check(load)
    entry = srv.app.registry.latest_entry("affine", 2)
    assert entry.state.value == "AVAILABLE" and entry.content_hash


def test_a_version_removed_under_load_drains_with_no_failure(served) -> None:
    srv, repo = served
    with Load(srv.url, MODELS) as load:
        assert load.wait_for(answers(2.0, 2))
        for model in MODELS:
            shutil.rmtree(repo.root / model / "2")
        assert load.wait_for(answers(1.0, 1)), load.result.last
        check(load)


@pytest.mark.parametrize("served", [0], indirect=True)
def test_reload_under_load_switches_with_no_failure(served) -> None:
    srv, repo = served
    with Load(srv.url, MODELS) as load:
        assert load.wait_for(answers(2.0, 2))
        for model in MODELS:
            write(repo, model, 3, 3.0)
            shutil.rmtree(repo.root / model / "2")
        assert load.wait_for(answers(2.0, 2), 1.0)  # no polling: nothing changes by itself
        counts = srv.app.registry.reload()
        assert counts["AVAILABLE"] == [1, 3, 1, 3]
        assert load.wait_for(answers(3.0, 3)), load.result.last
        check(load)


@pytest.mark.parametrize("served", [0], indirect=True)
def test_admin_reload_under_load_switches_with_no_failure(served) -> None:
    srv, repo = served
    with Load(srv.url, MODELS) as load:
        assert load.wait_for(answers(2.0, 2))
        for model in MODELS:
            replace_in_place(repo, model, 2, 5.0)
        answer = post(srv.url.rstrip("/") + "/admin/reload", b"")
        assert answer.status == 200 and b'"reloaded": true' in answer.body
        assert load.wait_for(answers(5.0, 2)), load.result.last
        check(load)


def test_a_corrupt_version_arriving_under_load_fails_alone(served) -> None:
    srv, repo = served
    with Load(srv.url, MODELS) as load:
        assert load.wait_for(answers(2.0, 2))
        _, sig = graph("affine", 3.0)
        repo.write_version("affine", b"not a graph", sig, version=3)  # type: ignore[arg-type]
        for _ in range(200):
            entries = {e.stored.version: e for e in srv.app.registry.entries()
                       if e.stored.name == "affine"}
            if 3 in entries and entries[3].state.value == "FAILED":
                break
            time.sleep(0.05)
        assert entries[3].state.value == "FAILED"
        assert str(repo.root) not in entries[3].error and "\n" not in entries[3].error
        assert load.wait_for(answers(2.0, 2))
        check(load)
    fault = parse_fault(post(srv.url, predict_xml("affine").replace(
        b"<t:inputs>", b"<t:version>3</t:version><t:inputs>")))
    assert fault.code == "Client.ModelNotFound" and "failed to load" in fault.message
    assert "retry" not in fault.message and str(repo.root) not in fault.message
    assert post(srv.url.rstrip("/") + "/readyz", b"", method="GET").status == 200
