"""Predict round trips through the real server and the real zeep client."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from model_store.demo import load_samples
from tests.models import ECHO_DTYPES, affine_expected

ENCODINGS = ("tensor_content", "typed")


def sample(dtype: str, shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if dtype == "DT_STRING":
        values = [f"s{i}-\u00e9\u4e2d<&>".encode() for i in range(n)]
        values[0] = b"\x00\xffraw bytes"
        arr = np.empty(n, dtype=object)
        arr[:] = values
        return arr.reshape(shape)
    if dtype == "DT_BOOL":
        return rng.integers(0, 2, shape).astype(bool)
    np_dtype = {"DT_FLOAT": np.float32, "DT_DOUBLE": np.float64, "DT_HALF": np.float16,
                "DT_INT32": np.int32, "DT_INT64": np.int64, "DT_UINT8": np.uint8,
                "DT_INT8": np.int8, "DT_INT16": np.int16, "DT_UINT16": np.uint16}[dtype]
    if np.issubdtype(np_dtype, np.floating):
        arr = (rng.standard_normal(shape) * 1e3).astype(np_dtype)
        if arr.size > 2:
            arr.reshape(-1)[:3] = [np.finfo(np_dtype).max, np.finfo(np_dtype).tiny, -0.0]
        return arr
    info = np.iinfo(np_dtype)
    arr = rng.integers(info.min, info.max, shape, dtype=np_dtype, endpoint=True)
    if arr.size > 1:
        arr.reshape(-1)[:2] = [info.min, info.max]
    return arr


@pytest.mark.parametrize("encoding", ENCODINGS)
@pytest.mark.parametrize("dtype", ECHO_DTYPES)
def test_every_dtype_round_trips_in_both_encodings(client, dtype: str, encoding: str) -> None:
    x = sample(dtype, (3, 5), seed=len(dtype))
    out = client.predict(f"echo_{dtype[3:].lower()}", {"x": x}, encoding=encoding)
    assert out["y"].shape == (3, 5)
    if dtype == "DT_STRING":
        assert out["y"].tolist() == x.tolist()
    else:
        assert out["y"].dtype == x.dtype
        np.testing.assert_array_equal(out["y"], x)
    assert out["z"].shape == () and int(out["z"]) == 15


def test_non_finite_floats_round_trip_typed(client) -> None:
    x = np.array([[np.inf, -np.inf, np.nan, 1.5]], dtype=np.float32)
    for enc in ENCODINGS:
        y = client.predict("echo_float", {"x": x}, encoding=enc)["y"]
        np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_response_uses_the_request_encoding(client, encoding: str) -> None:
    seen = []
    from zeep.plugins import HistoryPlugin

    history = HistoryPlugin()
    from tfsoap_client import PredictClient

    c = PredictClient(client.url, plugins=[history])
    c.predict("affine", {"x": np.ones((2, 4), np.float32)}, encoding=encoding)
    body = history.last_received["envelope"]
    seen = [el.tag.split("}")[1] for el in body.iter() if isinstance(el.tag, str)]
    assert ("tensor_content" in seen) == (encoding == "tensor_content")
    assert ("float_val" in seen) == (encoding == "typed")


def test_output_encoding_overrides_the_request_encoding(client) -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    for asked in ("TYPED", "TENSOR_CONTENT"):
        res = client.predict_result("affine", {"x": x}, encoding="tensor_content",
                                    output_encoding=asked)
        np.testing.assert_allclose(res.outputs["y"], affine_expected(x, 2.0), rtol=1e-6)


def test_batch_shapes(client) -> None:
    for n in (1, 7, 64):
        x = np.random.default_rng(n).standard_normal((n, 4)).astype(np.float32)
        y = client.predict("affine", {"x": x})["y"]
        assert y.shape == (n, 3)
        np.testing.assert_allclose(y, affine_expected(x, 2.0), rtol=1e-5)


def test_empty_batch(client) -> None:
    y = client.predict("affine", {"x": np.zeros((0, 4), np.float32)})["y"]
    assert y.shape == (0, 3)


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_scalar_shape(client, encoding: str) -> None:
    y = client.predict("scalar", {"x": np.float32(21.0)}, encoding=encoding)["y"]
    assert y.shape == () and float(y) == 42.0


def test_latest_version_answers_by_default(client) -> None:
    x = np.ones((1, 4), np.float32)
    res = client.predict_result("affine", {"x": x})
    assert res.version == 2
    np.testing.assert_allclose(res.outputs["y"], affine_expected(x, 2.0))


def test_explicit_version_answers(client) -> None:
    x = np.ones((1, 4), np.float32)
    res = client.predict_result("affine", {"x": x}, version=1)
    assert res.version == 1
    np.testing.assert_allclose(res.outputs["y"], affine_expected(x, 1.0))


def test_output_filter_returns_only_the_named_outputs(client) -> None:
    out = client.predict("echo_int32", {"x": np.ones((2, 2), np.int32)}, outputs=["z"])
    assert list(out) == ["z"] and int(out["z"]) == 4


def test_digits_demo_model_classifies_the_bundled_samples(client) -> None:
    images, labels = load_samples()
    for enc in ENCODINGS:
        out = client.predict("digits", {"images": images}, encoding=enc)
        assert out["classes"].tolist() == labels.tolist()
        np.testing.assert_allclose(out["probabilities"].sum(axis=1), 1.0, rtol=1e-5)


def test_32_concurrent_predict_calls_all_get_their_own_answer(server) -> None:
    from tfsoap_client import PredictClient

    images, labels = load_samples()
    results: dict[int, object] = {}
    barrier = threading.Barrier(32)

    def call(i: int) -> None:
        try:
            c = PredictClient(server.url, timeout=60)
            x = np.random.default_rng(i).standard_normal((1 + i % 3, 4)).astype(np.float32)
            barrier.wait(timeout=60)
            if i % 2:
                out = c.predict("digits", {"images": images[i % 10:i % 10 + 1]})
                results[i] = out["classes"].tolist() == [int(labels[i % 10])]
            else:
                y = c.predict("affine", {"x": x})["y"]
                results[i] = bool(np.allclose(y, affine_expected(x, 2.0), rtol=1e-5))
        except Exception as exc:  # collected and reported below
            results[i] = exc

    threads = [threading.Thread(target=call, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 32
    assert all(v is True for v in results.values()), results


def test_predict_through_spyne_pipeline_and_fast_path_answer_the_same(server) -> None:
    """A request with a SOAP Header goes through Spyne's own pipeline; one without it takes
    the Predict fast path. Both must answer byte for byte the same, results and faults."""
    from lxml import etree

    from ..raw import post, predict_xml

    def with_header(body: bytes) -> bytes:  # a header the fast path leaves to Spyne
        return body.replace(b"<soapenv:Body>", b'<soapenv:Header><x:Trace xmlns:x="urn:test"/>'
                            b"</soapenv:Header><soapenv:Body>")

    bad_tensor = ("<t:Tensor><t:name>x</t:name><t:dtype>DT_FLOAT</t:dtype><t:shape>"
                  "<t:long>1</t:long><t:long>3</t:long></t:shape><t:float_val><t:float>1"
                  "</t:float><t:float>2</t:float><t:float>3</t:float></t:float_val></t:Tensor>")
    for body in (predict_xml("affine"), predict_xml("affine", bad_tensor),
                 predict_xml("ghost")):
        fast = post(server.url, body, headers={"X-Request-ID": "same-id"})
        spyne = post(server.url, with_header(body), headers={"X-Request-ID": "same-id"})
        assert (fast.status, fast.body) == (spyne.status, spyne.body)
        etree.fromstring(fast.body)
