"""Loading every stored version, choosing versions, reloading, and failures that lose nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from model_store import InvalidInputError, ModelNotFoundError, ModelRepository
from model_store.serving.registry import ModelRegistry, ModelState
from tests.models import affine_expected, affine_model


@pytest.fixture
def repo(tmp_path: Path) -> ModelRepository:
    repo = ModelRepository(tmp_path)
    for version, v in ((1, 1.0), (2, 2.0)):
        graph, sig = affine_model(v)
        repo.write_version("affine", graph, sig, version=version)
    return repo


def run(registry: ModelRegistry, version: int | None = None) -> np.ndarray:
    x = np.ones((2, 4), np.float32)
    return registry.get("affine", version).predict({"x": x})["y"]


def test_latest_version_answers_unless_one_is_named(repo: ModelRepository) -> None:
    reg = ModelRegistry(repo)
    reg.load_all()
    assert reg.ready
    np.testing.assert_allclose(run(reg), affine_expected(np.ones((2, 4)), 2.0))
    np.testing.assert_allclose(run(reg, 1), affine_expected(np.ones((2, 4)), 1.0))
    with pytest.raises(ModelNotFoundError):
        reg.get("affine", 3)
    with pytest.raises(ModelNotFoundError):
        reg.get("nope")
    reg.close()


def test_inputs_are_checked_before_tensorflow(repo: ModelRepository) -> None:
    reg = ModelRegistry(repo)
    reg.load_all()
    with pytest.raises(InvalidInputError):
        reg.get("affine").predict({"x": np.ones((2, 5), np.float32)})
    reg.close()


def test_a_broken_version_fails_alone_and_the_previous_one_keeps_serving(
        repo: ModelRepository) -> None:
    reg = ModelRegistry(repo)
    reg.load_all()
    _, sig = affine_model(9.0)
    repo.write_version("affine", b"this is not a GraphDef", sig, version=3)
    counts = reg.reload()
    assert counts["FAILED"] == [3]
    assert reg.latest_entry("affine", 3).state is ModelState.FAILED
    np.testing.assert_allclose(run(reg), affine_expected(np.ones((2, 4)), 2.0))
    with pytest.raises(ModelNotFoundError, match="failed to load") as info:
        reg.get("affine", 3)
    assert "retry" not in str(info.value) and str(repo.root) not in str(info.value)
    assert reg.ready
    reg.close()


def test_reload_picks_up_new_versions_and_drops_removed_ones(repo: ModelRepository) -> None:
    reg = ModelRegistry(repo)
    reg.load_all()
    graph, sig = affine_model(5.0)
    repo.write_version("affine", graph, sig, version=5)
    shutil.rmtree(repo.root / "affine" / "1")
    reg.reload()
    assert [e.stored.version for e in reg.entries()] == [2, 5]
    np.testing.assert_allclose(run(reg), affine_expected(np.ones((2, 4)), 5.0))
    with pytest.raises(ModelNotFoundError):
        reg.get("affine", 1)
    reg.close()


def test_signature_naming_a_missing_tensor_fails_to_load(tmp_path: Path) -> None:
    repo = ModelRepository(tmp_path)
    graph, sig = affine_model(1.0)
    from model_store import ModelSignature, TensorSpec

    bad = ModelSignature(inputs=sig.inputs,
                         outputs=(TensorSpec("y", "no_such_op:0", "DT_FLOAT", (-1, 3)),))
    repo.write_version("bad", graph, bad, version=1)
    reg = ModelRegistry(repo)
    reg.load_all()
    entry = reg.latest_entry("bad")
    assert entry.state is ModelState.FAILED and "no_such_op" in entry.error
    assert not reg.ready
    reg.close()
