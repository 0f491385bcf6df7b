"""TF Serving's REST API on the SOAP port: the JSON shapes of its ``api_rest`` document, the same
answers as SOAP, and every fault case with TF Serving's HTTP status and ``{"error": ...}``."""

from __future__ import annotations

import base64
import http.client
import json
from urllib.parse import urlsplit

import numpy as np
import pytest

from model_store import bundled_store_path
from tests.models import affine_expected

from .conftest import rest_call

DIGITS = np.load(f"{bundled_store_path()}/../demo_data/digits_images.npy")


def test_tf_serving_example_request_gets_the_right_digits(server, client) -> None:
    # the request as TF Serving's docs write it with curl: row format, single unnamed input
    body = '{"signature_name": "serving_default", "instances": %s}' % json.dumps(
        DIGITS.tolist())
    status, answer, headers = rest_call(server.url, "POST", "/v1/models/digits:predict",
                                        raw=body.encode())
    assert status == 200, answer
    assert [p["classes"] for p in answer["predictions"]] == list(range(10))
    soap = client.predict("digits", {"images": DIGITS})
    np.testing.assert_allclose([p["probabilities"] for p in answer["predictions"]],
                               soap["probabilities"], rtol=1e-6)
    assert headers["x-request-id"]


def test_columnar_format_named_and_unnamed_give_outputs(server) -> None:
    for inputs in ({"images": DIGITS[:3].tolist()}, DIGITS[:3].tolist()):
        status, answer, _ = rest_call(server.url, "POST", "/v1/models/digits:predict",
                                      {"inputs": inputs})
        assert status == 200, answer
        assert answer["outputs"]["classes"] == [0, 1, 2]
        assert np.asarray(answer["outputs"]["probabilities"]).shape == (3, 10)


def test_row_format_with_named_inputs(server) -> None:
    status, answer, _ = rest_call(server.url, "POST", "/v1/models/digits:predict",
                                  {"instances": [{"images": row} for row in DIGITS.tolist()]})
    assert status == 200, answer
    assert [p["classes"] for p in answer["predictions"]] == list(range(10))


def test_single_output_rows_are_plain_values(server) -> None:
    x = [[1, 2, 3, 4], [0, 0, 0, 1]]  # JSON integers, cast to the signature's DT_FLOAT
    status, answer, _ = rest_call(server.url, "POST", "/v1/models/affine/versions/2:predict",
                                  {"instances": x})
    assert status == 200, answer
    np.testing.assert_allclose(answer["predictions"],
                               affine_expected(np.asarray(x, np.float32), 2.0), rtol=1e-6)
    status, answer, _ = rest_call(server.url, "POST", "/v1/models/affine/versions/1:predict",
                                  {"inputs": x})
    np.testing.assert_allclose(answer["outputs"],
                               affine_expected(np.asarray(x, np.float32), 1.0), rtol=1e-6)


def test_model_status_follows_tf_serving(server) -> None:
    status, answer, _ = rest_call(server.url, "GET", "/v1/models/affine")
    assert status == 200
    assert answer == {"model_version_status": [
        {"version": v, "state": "AVAILABLE", "status": {"error_code": "OK", "error_message": ""}}
        for v in ("2", "1")]}
    status, answer, _ = rest_call(server.url, "GET", "/v1/models/affine/versions/1")
    assert [s["version"] for s in answer["model_version_status"]] == ["1"]


def test_metadata_has_a_serving_default_signature_def(server) -> None:
    status, answer, _ = rest_call(server.url, "GET", "/v1/models/digits/metadata")
    assert status == 200
    assert answer["model_spec"] == {"name": "digits", "signature_name": "", "version": "1"}
    sig = answer["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert sig["method_name"] == "tensorflow/serving/predict"
    assert sig["inputs"]["images"]["dtype"] == "DT_FLOAT"
    assert sig["inputs"]["images"]["tensor_shape"] == {
        "dim": [{"size": "-1", "name": ""}, {"size": "64", "name": ""}], "unknown_rank": False}
    assert sig["outputs"]["classes"]["dtype"] == "DT_INT64"
    assert set(sig["outputs"]) == {"probabilities", "classes"}


def test_strings_as_text_and_b64(server) -> None:
    raw = b"\xff\x00bytes"
    status, answer, _ = rest_call(server.url, "POST", "/v1/models/echo_string:predict", {
        "inputs": [["plain", {"b64": base64.b64encode(raw).decode()}]]})
    assert status == 200, answer
    # not UTF-8 -> back as {"b64": ...}; UTF-8 text -> text
    assert answer["outputs"]["y"] == [["plain", {"b64": base64.b64encode(raw).decode()}]]
    assert answer["outputs"]["z"] == 2


@pytest.mark.parametrize("model,value,ok", [
    ("echo_int32", [[1, 2]], True),
    ("echo_int32", [[1.5, 2]], False),          # a fraction is not an integer
    ("echo_uint8", [[300]], False),             # out of range
    ("echo_bool", [[True, False]], True),
    ("echo_bool", [[1, 0]], False),
    ("echo_float", [[True]], False),
    ("echo_double", [[1, 2.5]], True),
    ("echo_int64", [["7"]], False),             # text is not a number
])
def test_numbers_take_the_signature_dtype(server, model, value, ok) -> None:
    status, answer, _ = rest_call(server.url, "POST", f"/v1/models/{model}:predict",
                                  {"inputs": value})
    if ok:
        assert status == 200, answer
        assert answer["outputs"]["y"] == value
    else:
        assert status == 400 and set(answer) == {"error"}, answer
        assert "input 'x'" in answer["error"]


FAULTS = [
    ("POST", "/v1/models/nope:predict", {"instances": [[1.0]]}, 404, "not served here"),
    ("POST", "/v1/models/affine/versions/9:predict", {"instances": [[1.0]]}, 404,
     "has no version 9"),
    ("GET", "/v1/models/nope", None, 404, "not served here"),
    ("GET", "/v1/models/nope/metadata", None, 404, "not served here"),
    ("GET", "/v1/models/affine/labels/gold", None, 404, "no version label 'gold'"),
    ("POST", "/v1/models/affine:predict", {"instances": [[1.0, 2.0]]}, 400, "must have shape"),
    ("POST", "/v1/models/affine:predict", {"instances": [[1.0], [1.0, 2.0]]}, 400, "ragged"),
    ("POST", "/v1/models/affine:predict", {"instances": [[1, 2, 3, 4]], "signature_name": "x"},
     400, "Serving signature name"),
    ("POST", "/v1/models/affine:predict", {"instances": [[1] * 4], "inputs": [[1] * 4]}, 400,
     "either"),
    ("POST", "/v1/models/affine:predict", {}, 400, "either"),
    ("POST", "/v1/models/affine:predict", {"instances": []}, 400, "non-empty"),
    ("POST", "/v1/models/affine:predict", {"inputs": {"w": [[1] * 4]}}, 400, "unknown input"),
    ("POST", "/v1/models/affine:predict", [1, 2], 400, "JSON object"),
    ("POST", "/v1/models/affine:classify", {"instances": [[1] * 4]}, 400, ":classify"),
    ("GET", "/v1/models/affine:predict", None, 400, "Malformed request"),
    ("POST", "/v1/models/affine/metadata", {}, 400, "Malformed request"),
    ("GET", "/v1/models", None, 400, "Malformed request"),
    ("POST", "/v1/models/failing:predict", {"instances": [float("nan")]}, 500, ""),
]


@pytest.mark.parametrize("method,path,body,status,words", FAULTS,
                         ids=[f"{f[3]}-{f[0]}-{f[1]}" for f in FAULTS])
def test_fault_cases_get_tf_serving_statuses(server, method, path, body, status, words) -> None:
    got, answer, _ = rest_call(server.url, method, path, body)
    assert got == status, answer
    assert set(answer) == {"error"} and words in answer["error"]
    assert "Traceback" not in answer["error"] and ".py" not in answer["error"]


def test_bad_json_and_deep_nesting_get_400(server) -> None:
    for raw in (b"{not json", b"[" * 100_000 + b"]" * 100_000, b"\xff\xfe",
                b'{"instances": ' + b"[" * 70 + b"1" + b"]" * 70 + b"}"):
        status, answer, _ = rest_call(server.url, "POST", "/v1/models/affine:predict", raw=raw)
        assert status == 400 and set(answer) == {"error"}, answer


def test_body_over_the_limit_gets_413_as_json(server) -> None:
    limit = server.app.settings.max_body_bytes
    status, answer, headers = rest_call(server.url, "POST", "/v1/models/affine:predict",
                                        raw=b" " * (limit + 1))
    assert status == 413 and "over the limit" in answer["error"]
    assert headers.get("connection") == "close"


def test_soap_still_answers_beside_rest(server, client) -> None:
    out = client.predict("affine", {"x": np.ones((1, 4), np.float32)}, version=1)
    np.testing.assert_allclose(out["y"], affine_expected(np.ones((1, 4), np.float32), 1.0))


def test_chunked_body_over_the_limit_gets_413_as_json(server) -> None:
    limit = server.app.settings.max_body_bytes
    conn = http.client.HTTPConnection("127.0.0.1", urlsplit(server.url).port, timeout=60)
    try:
        chunks = (b" " * (1 << 20) for _ in range(limit // (1 << 20) + 2))
        conn.request("POST", "/v1/models/affine:predict", body=chunks, encode_chunked=True,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        answer = json.loads(resp.read())
    finally:
        conn.close()
    assert resp.status == 413 and resp.getheader("Content-Type") == "application/json"
    assert set(answer) == {"error"} and "over the limit" in answer["error"]
