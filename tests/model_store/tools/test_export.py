"""``tfsoap export-savedmodel``: a store version as a SavedModel TF Serving loads, checked by
loading it back, by ``saved_model_cli``, and by the round trip SavedModel -> store -> SavedModel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
import tensorflow as tf

from model_store import ModelRepository, bundled_store_path
from model_store.errors import ConversionError
from model_store.serving.loader import LoadedModel
from model_store.tools import convert_savedmodel, export_savedmodel

from . import builders

DIGITS = np.load(Path(bundled_store_path()).parent / "demo_data" / "digits_images.npy")


def _run_signature(path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    fn = tf.saved_model.load(str(path)).signatures["serving_default"]
    return {k: v.numpy() for k, v in fn(**{k: tf.constant(v) for k, v in feeds.items()}).items()}


def test_exported_digits_answer_like_the_served_model(tmp_path: Path, client: Any,
                                                      run_cli: Callable[..., Any]) -> None:
    code, out, err = run_cli("export-savedmodel", "--model-store", bundled_store_path(),
                             "--name", "digits", "--output", tmp_path / "tfs", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["path"] == str(tmp_path / "tfs" / "1")
    assert report["model_base_path"] == str(tmp_path / "tfs")
    assert sorted(p.name for p in (tmp_path / "tfs").iterdir()) == ["1"]  # no temporary left
    got = _run_signature(tmp_path / "tfs" / "1", {"images": DIGITS})
    served = client.predict("digits", {"images": DIGITS})
    np.testing.assert_array_equal(got["classes"], served["classes"])
    np.testing.assert_allclose(got["probabilities"], served["probabilities"], rtol=1e-6)
    assert got["classes"].tolist() == list(range(10))


def test_saved_model_cli_lists_the_signature(tmp_path: Path) -> None:
    report = export_savedmodel(bundled_store_path(), "digits", tmp_path)
    assert "tensorflow_model_server --model_name=digits" in "\n".join(report.lines())
    cli = shutil.which("saved_model_cli") or ""
    cmd = [cli] if cli else [sys.executable, "-m", "tensorflow.python.tools.saved_model_cli"]
    shown = subprocess.run(cmd + ["show", "--dir", str(report.path), "--all"],
                           capture_output=True, text=True, timeout=300,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert shown.returncode == 0, shown.stderr[-2000:]
    text = shown.stdout
    assert "signature_def['serving_default']" in text
    assert "inputs['images'] tensor_info:" in text and "shape: (-1, 64)" in text
    assert "outputs['classes'] tensor_info:" in text and "dtype: DT_INT64" in text
    assert "Method name is: tensorflow/serving/predict" in text


def test_round_trip_savedmodel_store_savedmodel(tmp_path: Path) -> None:
    original = builders.save_savedmodel(tmp_path)
    store = tmp_path / "store"
    stored = convert_savedmodel(original.path, store, "scorer").stored
    report = export_savedmodel(store, "scorer", tmp_path / "tfs")
    assert report.path == tmp_path / "tfs" / str(stored.version)
    back = _run_signature(report.path, original.feeds)
    assert set(back) == set(original.expected)
    np.testing.assert_allclose(back["scores"], original.expected["scores"], rtol=1e-6)
    np.testing.assert_array_equal(back["best"], original.expected["best"])
    np.testing.assert_array_equal(back["ids_twice"], original.expected["ids_twice"])
    # and the exported SavedModel converts back into the store with the same answers
    again = convert_savedmodel(report.path, store, "scorer").stored
    np.testing.assert_allclose(LoadedModel(again).run(original.feeds)["scores"],
                               original.expected["scores"], rtol=1e-6)


def test_a_chosen_version_and_its_shapes(tmp_path: Path) -> None:
    from tests.models import affine_model

    repo = ModelRepository(tmp_path / "store")
    for version, v in ((1, 1.0), (2, 2.0)):
        graph, sig = affine_model(v)
        repo.write_version("affine", graph, sig, version=version)
    report = export_savedmodel(repo, "affine", tmp_path / "tfs", version=1)
    assert report.path.name == "1"
    loaded = tf.saved_model.load(str(report.path)).signatures["serving_default"]
    spec = loaded.structured_input_signature[1]["x"]
    assert spec.dtype == tf.float32 and spec.shape.as_list() == [None, 4]
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(loaded(x=tf.constant(x))["y"].numpy(),
                               LoadedModel(repo.get("affine", 1)).run({"x": x})["y"])


@pytest.mark.parametrize("case,words", [
    ("unknown model", "'nope' is not in the store"),
    ("unknown version", "has no version 7"),
    ("existing version folder", "already exists"),
])
def test_failures_are_one_line_and_leave_the_output_alone(
        tmp_path: Path, run_cli: Callable[..., Any], case: str, words: str) -> None:
    out_dir = tmp_path / "tfs"
    (out_dir / "1").mkdir(parents=True)
    (out_dir / "1" / "keep.txt").write_text("mine")
    args = {"unknown model": ["--name", "nope"],
            "unknown version": ["--name", "digits", "--version", "7"],
            "existing version folder": ["--name", "digits"]}[case]
    code, out, err = run_cli("export-savedmodel", "--model-store", bundled_store_path(),
                             "--output", out_dir, *args)
    assert code == 2 and out == ""
    assert err.strip().startswith("tfsoap: error:") and words in err and len(
        err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in out_dir.iterdir()) == ["1"]
    assert (out_dir / "1" / "keep.txt").read_text() == "mine"


def test_conversion_error_from_the_library(tmp_path: Path) -> None:
    with pytest.raises(ConversionError, match="not in the store"):
        export_savedmodel(tmp_path / "empty", "nope", tmp_path / "tfs")
