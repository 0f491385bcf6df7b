"""The registry's lifecycle: leases and drains, version policies, content hashes, readiness."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from model_store import ModelRepository, UnavailableError
from model_store.serving import ModelRegistry, RegistrySettings, VersionPolicy
from tests.models import affine_model, slow_model


def test_drain_lets_running_requests_finish_then_closes(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    g, sig = slow_model(size=400, steps=40)
    repo.write_version("slow", g, sig, version=1)
    reg = ModelRegistry(repo)
    reg.load_all()
    results: list[object] = []
    started = threading.Barrier(5)

    def call() -> None:
        try:
            with reg.lease("slow") as served:
                started.wait(10)
                results.append(served.predict({"x": np.ones((64, 400), np.float32)})["y"].shape)
        except Exception as exc:  # noqa: BLE001 - the test reports what a client would see
            results.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    started.wait(10)  # all four hold a lease: two running, two queued
    assert reg.drain(60) is True
    for t in threads:
        t.join(60)
    assert results == [(64, 400)] * 4
    with pytest.raises(UnavailableError, match="shutting down"):
        with reg.lease("slow"):
            pass
    assert not reg.ready


def test_a_removed_version_finishes_its_requests_before_closing(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    g, sig = slow_model(size=400, steps=40)
    repo.write_version("slow", g, sig, version=1)
    repo.write_version("slow", g, sig, version=2)
    reg = ModelRegistry(repo)
    reg.load_all()
    held = reg.lease("slow", 2)
    served = held.__enter__()
    import shutil

    shutil.rmtree(repo.root / "slow" / "2")
    reg.reload()
    assert [e.stored.version for e in reg.entries()] == [1]
    time.sleep(0.2)
    # retired but leased: still open, and the request runs to the end
    out = served.predict({"x": np.ones((2, 400), np.float32)})["y"]
    assert out.shape == (2, 400)
    held.__exit__(None, None, None)
    assert served.wait_idle(5)
    for _ in range(100):
        if served._closed:
            break
        time.sleep(0.05)
    assert served._closed
    reg.close()


@pytest.mark.parametrize("policy, served", [
    ("all", [1, 2, 3]), ("latest:1", [3]), ("latest:2", [2, 3]), ("specific:1,3", [1, 3])])
def test_version_policies_choose_the_versions_served(tmp_path: Path, policy: str,
                                                     served: list[int]) -> None:
    repo = ModelRepository(tmp_path)
    for v in (1, 2, 3):
        g, sig = affine_model(float(v))
        repo.write_version("affine", g, sig, version=v)
    reg = ModelRegistry(repo, RegistrySettings(version_policy=VersionPolicy.parse(policy)))
    reg.load_all()
    assert [e.stored.version for e in reg.entries()] == served
    reg.close()


def test_model_json_overrides_the_default_policy(tmp_path: Path) -> None:
    import dataclasses

    repo = ModelRepository(tmp_path)
    for v in (1, 2, 3):
        g, sig = affine_model(float(v))
        if v == 3:
            sig = dataclasses.replace(sig, extra={"version_policy": {"latest": 2}})
        repo.write_version("affine", g, sig, version=v)
    reg = ModelRegistry(repo)
    reg.load_all()
    assert [e.stored.version for e in reg.entries()] == [2, 3]
    reg.close()


@pytest.mark.parametrize("bad", ["latest:0", "newest", "specific:", "specific:a"])
def test_a_bad_policy_is_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="version policy"):
        VersionPolicy.parse(bad)


def test_touching_files_without_changing_them_does_not_reload(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    g, sig = affine_model(1.0)
    repo.write_version("affine", g, sig, version=1)
    reg = ModelRegistry(repo)
    reg.load_all()
    before = reg.get("affine")
    later = time.time() + 5
    os.utime(repo.root / "affine" / "1" / "model.pb", (later, later))
    reg.reload()
    assert reg.get("affine") is before
    reg.close()


def test_readiness_needs_a_servable_version_and_the_required_models(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    reg = ModelRegistry(repo, RegistrySettings(require_models=("affine",)))
    reg.load_all()
    assert not reg.ready  # empty store
    _, sig = affine_model(1.0)
    repo.write_version("affine", b"broken", sig, version=1)
    reg.reload()
    assert not reg.ready  # its only version failed
    g, sig = affine_model(2.0)
    repo.write_version("affine", g, sig, version=2)
    reg.reload()
    assert reg.ready
    reg.close()
