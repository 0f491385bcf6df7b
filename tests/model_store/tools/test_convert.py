"""``tfsoap convert-keras`` and ``convert-savedmodel``: frozen outputs equal the originals'."""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Callable

import numpy as np
import pytest
import tensorflow as tf

from model_store import ModelRepository
from model_store.serving.loader import LoadedModel
from model_store.tools.convert import convert_keras, convert_savedmodel
from model_store.tools.user_modules import custom_objects_of

from . import builders

RunCli = Callable[..., tuple[int, str, str]]
Snapshotter = Callable[[Path], object]


@pytest.mark.parametrize("fmt", ["keras", "h5"])
def test_keras_model_with_custom_layer_equals_predict(
        fmt: str, keras_custom: builders.Trained, custom_layers_dir: Path, store: Path,
        run_cli: RunCli, monkeypatch: pytest.MonkeyPatch) -> None:
    path = keras_custom.path if fmt == "keras" else keras_custom.extra["h5"]
    monkeypatch.chdir(custom_layers_dir)
    code, out, err = run_cli("convert-keras", path, "--custom-objects", "tfsoap_custom_layers",
                             "--model-store", store, "--name", "custom")
    assert code == 0, err
    stored = ModelRepository(store).get("custom")
    sig = stored.read_signature()
    assert [t.alias for t in sig.inputs] == ["feats", "extra"]  # the model's own names
    assert [t.alias for t in sig.outputs] == ["probs", "score"]
    assert [t.shape for t in sig.inputs] == [(-1, 8), (-1, 3)]
    got = LoadedModel(stored).run(keras_custom.feeds)
    for alias, want in keras_custom.expected.items():
        np.testing.assert_allclose(got[alias], want, rtol=1e-5, atol=1e-6)
    source = json.loads(stored.signature_path.read_text())["source"]
    assert source["keras_inputs"] == ["feats", "extra"]
    assert source["keras_outputs"] == ["probs", "score"]
    assert "probs" in out and "Keras file" in out


@pytest.mark.parametrize("optimize", [False, True], ids=["plain", "optimized"])
def test_keras_h5_cnn_equals_predict(optimize: bool, keras_cnn: builders.Trained,
                                     store: Path) -> None:
    report = convert_keras(keras_cnn.path, store, "cnn", optimize=optimize)
    got = LoadedModel(report.stored).run(keras_cnn.feeds)["output_0"]
    np.testing.assert_allclose(got, keras_cnn.expected["output_0"], rtol=1e-4, atol=1e-5)
    assert report.frozen_bytes < report.source_bytes
    if optimize:  # the Keras batch norm (Mul, AddV2 after BiasAdd) is folded into the conv
        assert report.nodes_optimized is not None
        assert report.nodes_optimized < report.nodes_frozen
        graph_def = tf.compat.v1.GraphDef.FromString(report.stored.graph_path.read_bytes())
        ops = [n.op for n in graph_def.node]
        assert "Mul" not in ops and "Rsqrt" not in ops and ops.count("BiasAdd") == 2


def test_custom_objects_from_a_dict_or_the_modules_own_classes(
        custom_layers: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert custom_objects_of("tfsoap_custom_layers") == {"Scale": custom_layers.Scale}
    (tmp_path / "declared_objects.py").write_text(
        "from tfsoap_custom_layers import Scale\n"
        "import keras\n"
        "class Unlisted(keras.layers.Layer):\n    pass\n"
        "CUSTOM_OBJECTS = {'Scale': Scale}\n")
    monkeypatch.chdir(tmp_path)
    assert custom_objects_of("declared_objects") == {"Scale": custom_layers.Scale}


def test_savedmodel_outputs_equal_the_loaded_signature(savedmodel: builders.Trained,
                                                       store: Path, run_cli: RunCli) -> None:
    code, out, err = run_cli("convert-savedmodel", savedmodel.path, "--model-store", store,
                             "--name", "scorer")
    assert code == 0, err
    stored = ModelRepository(store).get("scorer")
    sig = stored.read_signature()
    assert [t.alias for t in sig.inputs] == ["features", "ids"]
    assert sorted(t.alias for t in sig.outputs) == ["best", "ids_twice", "scores"]
    assert {t.alias: t.dtype for t in sig.outputs} == {
        "best": "DT_INT64", "ids_twice": "DT_INT32", "scores": "DT_FLOAT"}
    got = LoadedModel(stored).run(savedmodel.feeds)
    np.testing.assert_allclose(got["scores"], savedmodel.expected["scores"], rtol=1e-6)
    np.testing.assert_array_equal(got["best"], savedmodel.expected["best"])
    np.testing.assert_array_equal(got["ids_twice"], savedmodel.expected["ids_twice"])


def test_savedmodel_other_signature_and_optimize(savedmodel: builders.Trained,
                                                 store: Path) -> None:
    plain = convert_savedmodel(savedmodel.path, store, "norm", signature="norm")
    fast = convert_savedmodel(savedmodel.path, store, "norm", signature="norm", optimize=True)
    assert [t.alias for t in plain.signature.inputs] == ["x"]
    assert [t.alias for t in plain.signature.outputs] == ["norm"]
    feeds = {"x": savedmodel.feeds["features"]}
    a = LoadedModel(plain.stored).run(feeds)["norm"]
    b = LoadedModel(fast.stored).run(feeds)["norm"]
    np.testing.assert_allclose(b, a, rtol=1e-5)
    assert fast.stored.version == plain.stored.version + 1


FAILURES = {
    "keras without custom objects": (
        lambda m: ["convert-keras", m["keras"].path], "Could not locate class 'Scale'"),
    "h5 without custom objects": (
        lambda m: ["convert-keras", m["keras"].extra["h5"]], "Unknown layer: 'Scale'"),
    "not a keras file": (lambda m: ["convert-keras", str(m["tmp"] / "model.onnx")],
                         "is not a Keras file"),
    "no such custom objects module": (
        lambda m: ["convert-keras", m["keras"].path, "--custom-objects", "no_such_module_x"],
        "cannot import module 'no_such_module_x'"),
    "unknown signature": (lambda m: ["convert-savedmodel", m["saved"].path, "--signature",
                                     "nope"], "has no signature 'nope'"),
    "not a savedmodel": (lambda m: ["convert-savedmodel", str(m["tmp"])],
                         "is not a SavedModel folder"),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_conversion_failures_leave_the_store_unchanged(
        case: str, keras_custom: builders.Trained, savedmodel: builders.Trained, store: Path,
        tmp_path: Path, run_cli: RunCli, store_snapshot: Snapshotter) -> None:
    convert_savedmodel(savedmodel.path, store, "model")
    before = store_snapshot(store)
    make_args, expected = FAILURES[case]
    args = make_args({"keras": keras_custom, "saved": savedmodel, "tmp": tmp_path})
    code, out, err = run_cli(*args, "--model-store", store, "--name", "model")
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("tfsoap: error:")]
    assert len(errors) == 1 and expected in errors[0], err
    assert "Traceback" not in err and out == ""
    assert store_snapshot(store) == before
