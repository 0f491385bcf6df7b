"""``model.json`` and the checks made before TensorFlow sees a request."""

from __future__ import annotations

import json

import numpy as np
import pytest

from model_store import InvalidInputError, ModelLoadError, ModelSignature, TensorSpec
from model_store.store.signature import BatchingConfig

SIG = ModelSignature(
    inputs=(TensorSpec("images", "images:0", "DT_FLOAT", (-1, 8, 8)),
            TensorSpec("scale", "scale:0", "DT_FLOAT", ())),
    outputs=(TensorSpec("p", "p:0", "DT_FLOAT", (-1, 10)),
             TensorSpec("c", "c:0", "DT_INT64", (-1,))),
    labels=tuple("0123456789"), description="d",
    batching=BatchingConfig(16, 1.5, 8))


def test_json_round_trip_keeps_everything_and_unknown_keys() -> None:
    data = SIG.to_json()
    data["metrics"] = {"accuracy": 0.97}
    again = ModelSignature.from_json(json.loads(json.dumps(data)))
    assert again.inputs == SIG.inputs and again.outputs == SIG.outputs
    assert again.labels == SIG.labels and again.batching == SIG.batching
    assert again.extra == {"metrics": {"accuracy": 0.97}}


def test_tensor_names_get_an_output_index() -> None:
    spec = TensorSpec.from_json({"alias": "a", "name": "scope/op", "dtype": "DT_FLOAT",
                                 "shape": None})
    assert spec.name == "scope/op:0" and spec.shape is None


@pytest.mark.parametrize("bad", [
    "{", "[]", '{"inputs": [], "outputs": []}',
    '{"inputs": [{"alias": "a", "name": "a", "dtype": "DT_NOPE"}], "outputs": []}',
    '{"inputs": [{"alias": "../a", "name": "a", "dtype": "DT_FLOAT"}],'
    ' "outputs": [{"alias": "b", "name": "b", "dtype": "DT_FLOAT"}]}',
    '{"inputs": [{"name": "a", "dtype": "DT_FLOAT"}], "outputs": []}',
])
def test_malformed_model_json_is_a_load_error(bad: str) -> None:
    with pytest.raises(ModelLoadError):
        ModelSignature.loads(bad)


def feeds(**over: np.ndarray) -> dict[str, np.ndarray]:
    base = {"images": np.zeros((2, 8, 8), np.float32), "scale": np.float32(1.0)}
    base.update(over)
    return {k: np.asarray(v) for k, v in base.items()}


def test_valid_inputs_pass() -> None:
    SIG.check_inputs(feeds())
    SIG.check_inputs(feeds(images=np.zeros((0, 8, 8), np.float32)))


@pytest.mark.parametrize("change,match", [
    ({"images": np.zeros((2, 8, 8), np.float64)}, "dtype DT_FLOAT, got DT_DOUBLE"),
    ({"images": np.zeros((2, 64), np.float32)}, "rank 3"),
    ({"images": np.zeros((2, 8, 9), np.float32)}, "dimension 2 is 9"),
    ({"scale": np.zeros((1,), np.float32)}, "rank 0"),
    ({"other": np.zeros(1, np.float32)}, "unknown input 'other'"),
])
def test_inputs_that_do_not_fit_are_refused(change, match) -> None:
    with pytest.raises(InvalidInputError, match=match):
        SIG.check_inputs(feeds(**change))


def test_missing_input_is_refused() -> None:
    f = feeds()
    del f["scale"]
    with pytest.raises(InvalidInputError, match="missing required input"):
        SIG.check_inputs(f)


def test_batched_inputs_must_agree_on_the_batch_size() -> None:
    sig = ModelSignature(inputs=(TensorSpec("a", "a:0", "DT_FLOAT", (-1, 2)),
                                 TensorSpec("b", "b:0", "DT_FLOAT", (-1,))),
                         outputs=(TensorSpec("y", "y:0", "DT_FLOAT", (-1,)),))
    with pytest.raises(InvalidInputError, match="disagree on the batch size"):
        sig.check_inputs({"a": np.zeros((3, 2), np.float32), "b": np.zeros(2, np.float32)})
    assert sig.batchable and not SIG.batchable


def test_output_filter() -> None:
    assert [t.alias for t in SIG.output_specs(["c"])] == ["c"]
    assert [t.alias for t in SIG.output_specs(None)] == ["p", "c"]
    with pytest.raises(InvalidInputError, match="unknown output"):
        SIG.output_specs(["zzz"])
