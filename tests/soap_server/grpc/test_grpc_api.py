"""TF Serving's gRPC API, called the way TF Serving's own examples call a server: the
``PredictionServiceStub``, ``tf.make_tensor_proto`` in and ``tf.make_ndarray`` out."""

from __future__ import annotations

from typing import Any

import grpc
import numpy as np
import pytest
import tensorflow as tf

from model_store import bundled_store_path
from tests.models import affine_expected

from .conftest import require_serving_api

require_serving_api()
from tensorflow_serving.apis import (  # noqa: E402
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
)

DIGITS = np.load(f"{bundled_store_path()}/../demo_data/digits_images.npy")


def _request(model: str, inputs: dict[str, Any], version: int | None = None,
             label: str | None = None, signature: str = "serving_default") -> Any:
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    for alias, value in inputs.items():
        request.inputs[alias].CopyFrom(value if isinstance(value, type(request.inputs[alias]))
                                       else tf.make_tensor_proto(value))
    return request


def test_digits_demo_with_the_official_stub(stub, client) -> None:
    response = stub.Predict(_request("digits", {"images": DIGITS}), timeout=30)
    classes = tf.make_ndarray(response.outputs["classes"])
    assert classes.tolist() == list(range(10))
    assert response.model_spec.name == "digits" and response.model_spec.version.value == 1
    served = client.predict("digits", {"images": DIGITS})
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["probabilities"]),
                               served["probabilities"], rtol=1e-6)


def test_typed_fields_and_output_filter(stub) -> None:
    proto = tf.make_tensor_proto(DIGITS[:2])
    typed = type(proto)()
    typed.dtype = proto.dtype
    typed.tensor_shape.CopyFrom(proto.tensor_shape)
    typed.float_val.extend(DIGITS[:2].reshape(-1).tolist())  # float_val, not tensor_content
    request = _request("digits", {"images": typed})
    request.output_filter.append("classes")
    response = stub.Predict(request, timeout=30)
    assert list(response.outputs) == ["classes"]
    assert tf.make_ndarray(response.outputs["classes"]).tolist() == [0, 1]


@pytest.mark.parametrize("model,value", [
    ("echo_half", np.array([[1.5, -2.25]], np.float16)),
    ("echo_string", np.array([[b"a", b"\xff\x00"]], object)),
    ("echo_bool", np.array([[True, False]])),
    ("echo_uint8", np.array([[0, 255]], np.uint8)),
    ("echo_int16", np.array([[-3, 7]], np.int16)),
    ("echo_int64", np.array([[2**40]], np.int64)),
    ("echo_double", np.array([[0.1]], np.float64)),
])
def test_every_dtype_round_trips(stub, model, value) -> None:
    response = stub.Predict(_request(model, {"x": value}), timeout=30)
    got = tf.make_ndarray(response.outputs["y"])
    assert got.dtype == value.dtype if value.dtype != object else got.dtype == object
    np.testing.assert_array_equal(got, value)
    assert tf.make_ndarray(response.outputs["z"]) == value.size


def test_a_single_typed_value_fills_the_shape(stub) -> None:
    proto = tf.make_tensor_proto(1.0, dtype=tf.float32, shape=[2, 4])  # float_val [1.0]
    assert len(proto.float_val) == 1 and not proto.tensor_content
    response = stub.Predict(_request("affine", {"x": proto}, version=2), timeout=30)
    np.testing.assert_allclose(tf.make_ndarray(response.outputs["y"]),
                               affine_expected(np.ones((2, 4), np.float32), 2.0))


def test_metadata_and_model_status(stub, channel) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "digits"
    request.metadata_field.append("signature_def")
    response = stub.GetModelMetadata(request, timeout=30)
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    response.metadata["signature_def"].Unpack(sig_map)
    sig = sig_map.signature_def["serving_default"]
    assert sig.method_name == "tensorflow/serving/predict"
    assert [d.size for d in sig.inputs["images"].tensor_shape.dim] == [-1, 64]
    assert sig.inputs["images"].dtype == tf.float32.as_datatype_enum
    assert sig.outputs["classes"].dtype == tf.int64.as_datatype_enum

    status_stub = model_service_pb2_grpc.ModelServiceStub(channel)
    status_request = get_model_status_pb2.GetModelStatusRequest()
    status_request.model_spec.name = "affine"
    status = status_stub.GetModelStatus(status_request, timeout=30)
    assert [(s.version, s.State.Name(s.state), s.status.error_code)
            for s in status.model_version_status] == [(2, "AVAILABLE", 0), (1, "AVAILABLE", 0)]


def _bad_dtype() -> Any:
    proto = tf.make_tensor_proto(np.ones((1, 4), np.float64))
    return proto


def _short_content() -> Any:
    proto = tf.make_tensor_proto(np.ones((1, 4), np.float32))
    proto.tensor_content = proto.tensor_content[:-4]
    return proto


def _huge_shape() -> Any:
    proto = tf.make_tensor_proto(1.0, dtype=tf.float32, shape=[1])
    proto.tensor_shape.dim[0].size = 10**12  # one float_val would fill a terabyte
    return proto


FAULTS = {
    "unknown model": (lambda: _request("nope", {"x": np.ones((1, 4), np.float32)}),
                      grpc.StatusCode.NOT_FOUND, "not served here"),
    "unknown version": (lambda: _request("affine", {"x": np.ones((1, 4), np.float32)}, 9),
                        grpc.StatusCode.NOT_FOUND, "has no version 9"),
    "unknown label": (lambda: _request("affine", {"x": np.ones((1, 4), np.float32)},
                                       label="gold"), grpc.StatusCode.NOT_FOUND,
                      "no version label"),
    "wrong shape": (lambda: _request("affine", {"x": np.ones((1, 3), np.float32)}),
                    grpc.StatusCode.INVALID_ARGUMENT, "must have shape"),
    "wrong dtype": (lambda: _request("affine", {"x": _bad_dtype()}),
                    grpc.StatusCode.INVALID_ARGUMENT, "must have dtype DT_FLOAT"),
    "unknown input": (lambda: _request("affine", {"w": np.ones((1, 4), np.float32)}),
                      grpc.StatusCode.INVALID_ARGUMENT, "unknown input"),
    "bad tensor_content": (lambda: _request("affine", {"x": _short_content()}),
                           grpc.StatusCode.INVALID_ARGUMENT, "tensor_content has"),
    "huge shape": (lambda: _request("affine", {"x": _huge_shape()}),
                   grpc.StatusCode.INVALID_ARGUMENT, "over the limit"),
    "other signature": (lambda: _request("affine", {"x": np.ones((1, 4), np.float32)},
                                         signature="classify"),
                        grpc.StatusCode.INVALID_ARGUMENT, "Serving signature name"),
    "inference error": (lambda: _request("failing", {"x": np.array([np.nan], np.float32)}),
                        grpc.StatusCode.INTERNAL, ""),
}


@pytest.mark.parametrize("case", list(FAULTS))
def test_fault_cases_get_grpc_codes(stub, case) -> None:
    build, code, words = FAULTS[case]
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(build(), timeout=30)
    assert caught.value.code() == code, caught.value.details()
    assert words in caught.value.details()
    assert "Traceback" not in caught.value.details()


def test_message_over_max_body_bytes_is_resource_exhausted(stub, server) -> None:
    limit = server.app.settings.max_body_bytes
    big = np.zeros((limit // 16 + 1, 4), np.float32)  # just over the limit as tensor_content
    with pytest.raises(grpc.RpcError) as caught:
        stub.Predict(_request("affine", {"x": big}), timeout=30)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_metadata_needs_the_signature_def_field(stub) -> None:
    request = get_model_metadata_pb2.GetModelMetadataRequest()
    request.model_spec.name = "digits"
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetModelMetadata(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
