"""The bundled demo model ``digits``: it loads, classifies the held-out digits well, agrees with
its sample file, and ``scripts/build_demo_model.py`` regenerates it."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Iterator

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

pytest.importorskip("tensorflow")
pytest.importorskip("sklearn")

from model_store import ModelRepository, bundled_store_path  # noqa: E402
from model_store.demo import (  # noqa: E402
    DEMO_MODEL_NAME,
    DEMO_MODEL_VERSION,
    DigitsSplit,
    bundled_samples_path,
    load_digits_split,
    load_samples,
)
from model_store.serving.loader import LoadedModel  # noqa: E402

SCRIPT = REPO_ROOT / "scripts" / "build_demo_model.py"
MIN_ACCURACY = 0.95


def _load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_demo_model", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    saved, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no scripts/__pycache__
    try:
        spec.loader.exec_module(module)
    finally:
        sys.dont_write_bytecode = saved
    return module


@pytest.fixture(scope="module")
def split() -> DigitsSplit:
    return load_digits_split()


@pytest.fixture(scope="module")
def bundled() -> Iterator[LoadedModel]:
    repo = ModelRepository(bundled_store_path())
    model = LoadedModel(repo.get(DEMO_MODEL_NAME, DEMO_MODEL_VERSION))
    yield model
    model.close()


def test_split_is_fixed_and_stratified(split: DigitsSplit) -> None:
    again = load_digits_split()
    assert np.array_equal(split.test_labels, again.test_labels)
    assert np.array_equal(split.test_images, again.test_images)
    assert split.train_images.shape == (1347, 64) and split.test_images.shape == (450, 64)
    assert split.test_images.dtype == np.float32 and split.test_labels.dtype == np.int64
    assert 0.0 <= split.test_images.min() and split.test_images.max() <= 1.0
    assert sorted(set(split.test_labels.tolist())) == list(range(10))


def test_bundled_store_lists_digits() -> None:
    repo = ModelRepository(bundled_store_path())
    assert DEMO_MODEL_NAME in repo.model_names()
    assert [v.version for v in repo.versions(DEMO_MODEL_NAME)] == [DEMO_MODEL_VERSION]
    sig = repo.get(DEMO_MODEL_NAME).read_signature()
    assert [(t.alias, t.name, t.dtype, t.shape) for t in sig.inputs] == \
        [("images", "images:0", "DT_FLOAT", (-1, 64))]
    assert [(t.alias, t.name, t.dtype, t.shape) for t in sig.outputs] == [
        ("probabilities", "probabilities:0", "DT_FLOAT", (-1, 10)),
        ("classes", "classes:0", "DT_INT64", (-1,))]
    assert sig.labels == tuple(str(d) for d in range(10))
    assert sig.batching is not None and sig.batching.max_batch_size == 32
    assert sig.batchable
    assert sig.description


def test_bundled_model_accuracy(bundled: LoadedModel, split: DigitsSplit) -> None:
    bundled.signature.check_inputs({"images": split.test_images})
    out = bundled.run({"images": split.test_images})
    assert out["classes"].dtype == np.int64 and out["classes"].shape == (450,)
    assert out["probabilities"].dtype == np.float32 and out["probabilities"].shape == (450, 10)
    np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1.0, rtol=1e-5)
    assert np.array_equal(out["classes"], out["probabilities"].argmax(axis=1))
    accuracy = float(np.mean(out["classes"] == split.test_labels))
    assert accuracy > MIN_ACCURACY
    metrics = bundled.signature.extra["metrics"]
    assert metrics["test_samples"] == len(split.test_labels)
    assert metrics["test_accuracy"] == pytest.approx(accuracy, abs=1 / len(split.test_labels))


def test_bundled_samples_predicted_as_recorded(bundled: LoadedModel) -> None:
    path = bundled_samples_path()
    assert path.stat().st_size < 100_000
    images, labels = load_samples()
    assert images.shape == (10, 64) and images.dtype == np.float32
    assert labels.shape == (10,) and labels.dtype == np.int64
    out = bundled.run({"images": images})
    assert out["classes"].tolist() == labels.tolist()


def test_bundled_files_are_small() -> None:
    stored = ModelRepository(bundled_store_path()).get(DEMO_MODEL_NAME, DEMO_MODEL_VERSION)
    assert stored.graph_path.stat().st_size < 100_000
    assert stored.signature_path.stat().st_size < 100_000


def test_script_regenerates_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "store"
    stale = store / DEMO_MODEL_NAME / "7"
    stale.mkdir(parents=True)
    (stale / "junk.txt").write_text("left over from an older build")
    samples = tmp_path / "data" / "samples.npz"

    status = _load_script().main(["--output", str(store), "--samples", str(samples)])

    assert status == 0, capsys.readouterr().err
    repo = ModelRepository(store)
    assert repo.model_names() == [DEMO_MODEL_NAME]
    assert sorted(p.name for p in (store / DEMO_MODEL_NAME).iterdir()) == ["1"]
    stored = repo.get(DEMO_MODEL_NAME, DEMO_MODEL_VERSION)
    data = json.loads(stored.signature_path.read_text(encoding="utf-8"))
    assert data["metrics"]["test_accuracy"] > MIN_ACCURACY
    assert data["metrics"]["test_samples"] == 450
    assert data["batching"] == {"max_batch_size": 32, "batch_timeout_ms": 2,
                                "max_enqueued_batches": 64}

    split = load_digits_split()
    model = LoadedModel(stored)
    try:
        classes = model.run({"images": split.test_images})["classes"]
        images, labels = load_samples(samples)
        assert model.run({"images": images})["classes"].tolist() == labels.tolist()
    finally:
        model.close()
    assert float(np.mean(classes == split.test_labels)) == data["metrics"]["test_accuracy"]
