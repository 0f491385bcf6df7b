"""Every fault of the contract, through the real server; each is followed by a good request.

Bad input must get a SOAP fault whose faultcode starts with ``Client.`` or ``Server.`` and whose
detail carries the same stable code, a message and a request id; never an HTML page, a hang or a
traceback; and the server keeps serving.
"""

from __future__ import annotations

import numpy as np
import pytest

import tfsoap_client as tc
from tests.models import affine_expected

from ..raw import envelope, parse_fault, post, predict_xml


@pytest.fixture(autouse=True)
def still_serving_afterwards(client):
    """After each test here, a good request still works."""
    yield
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(client.predict("affine", {"x": x})["y"], affine_expected(x, 2.0))


def assert_fault(answer, code: str) -> None:
    f = parse_fault(answer)
    assert answer.status == 500
    assert f.faultcode == code and f.code == code, (f, answer.body[:400])
    assert f.message and f.request_id
    assert answer.headers.get("x-request-id") == f.request_id
    assert "Traceback" not in f.message and "File \"" not in f.message


# -- Client.ModelNotFound ------------------------------------------------------------------------
def test_unknown_model_gets_client_fault(client) -> None:
    with pytest.raises(tc.ModelNotFoundError) as err:
        client.predict("no_such_model", {"x": np.ones((1, 4), np.float32)})
    assert err.value.code == "Client.ModelNotFound" and err.value.request_id
    assert "no_such_model" in err.value.message


def test_missing_version_gets_model_not_found(client) -> None:
    with pytest.raises(tc.ModelNotFoundError, match="no version 7"):
        client.predict("affine", {"x": np.ones((1, 4), np.float32)}, version=7)


@pytest.mark.parametrize("name", ["../etc/passwd", "..", "a/b", "a\\b", "", " ", "x" * 100])
def test_path_like_model_names_are_refused_before_any_path(server, name: str) -> None:
    from xml.sax.saxutils import escape

    assert_fault(post(server.url, predict_xml(escape(name))), "Client.ModelNotFound")


def test_unknown_model_metadata_gets_client_fault(client) -> None:
    with pytest.raises(tc.ModelNotFoundError):
        client.metadata("nothing_here")


# -- Client.InvalidInput -------------------------------------------------------------------------
@pytest.mark.parametrize("inputs,match", [
    ({"x": np.ones((1, 4), np.float64)}, "dtype DT_FLOAT"),
    ({"x": np.ones((4,), np.float32)}, "rank 2"),
    ({"x": np.ones((1, 5), np.float32)}, "dimension 1 is 5"),
    ({"x": np.ones((1, 4), np.float32), "extra": np.ones(1, np.float32)}, "unknown input"),
    ({}, "missing required input"),
])
def test_inputs_that_do_not_fit_the_signature_get_invalid_input(server, inputs, match) -> None:
    raw = tc.PredictClient(server.url, cast_inputs=False)  # the server's check, not the client's
    with pytest.raises(tc.InvalidInputError, match=match) as caught:
        raw.predict("affine", inputs)
    assert caught.value.request_id


def test_unknown_output_filter_gets_invalid_input(client) -> None:
    with pytest.raises(tc.InvalidInputError, match="unknown output"):
        client.predict("affine", {"x": np.ones((1, 4), np.float32)}, outputs=["nope"])


@pytest.mark.parametrize("tensor,match", [
    # 3 values for shape [1, 4]
    ("<t:Tensor><t:name>x</t:name><t:dtype>DT_FLOAT</t:dtype><t:shape><t:long>1</t:long>"
     "<t:long>4</t:long></t:shape><t:float_val><t:float>1</t:float><t:float>2</t:float>"
     "<t:float>3</t:float></t:float_val></t:Tensor>", "3 values"),
    # 12 bytes of tensor_content for 16 needed
    ("<t:Tensor><t:name>x</t:name><t:dtype>DT_FLOAT</t:dtype><t:shape><t:long>1</t:long>"
     "<t:long>4</t:long></t:shape><t:tensor_content>AAAAAAAAAAAAAAAA</t:tensor_content>"
     "</t:Tensor>", "12 bytes"),
    # not a number
    ("<t:Tensor><t:name>x</t:name><t:dtype>DT_FLOAT</t:dtype><t:shape><t:long>1</t:long>"
     "<t:long>1</t:long></t:shape><t:float_val><t:float>abc</t:float></t:float_val></t:Tensor>",
     "not a valid DT_FLOAT"),
    # dtype and value list disagree
    ("<t:Tensor><t:name>x</t:name><t:dtype>DT_FLOAT</t:dtype><t:shape><t:long>1</t:long>"
     "</t:shape><t:int_val><t:int>1</t:int></t:int_val></t:Tensor>", "carries int_val"),
    # unknown dtype
    ("<t:Tensor><t:name>x</t:name><t:dtype>DT_COMPLEX</t:dtype><t:shape/></t:Tensor>",
     "unsupported dtype"),
    # negative dimension
    ("<t:Tensor><t:name>x</t:name><t:dtype>DT_FLOAT</t:dtype><t:shape><t:long>-1</t:long>"
     "</t:shape></t:Tensor>", "negative dimension"),
    # both encodings at once
    ("<t:Tensor><t:name>x</t:name><t:dtype>DT_FLOAT</t:dtype><t:shape><t:long>1</t:long>"
     "</t:shape><t:float_val><t:float>1</t:float></t:float_val>"
     "<t:tensor_content>AACAPw==</t:tensor_content></t:Tensor>", "both"),
    # int out of range
    ("<t:Tensor><t:name>x</t:name><t:dtype>DT_UINT8</t:dtype><t:shape><t:long>1</t:long>"
     "</t:shape><t:int_val><t:int>300</t:int></t:int_val></t:Tensor>", "out of range"),
])
def test_values_that_do_not_fit_their_shape_or_dtype_get_invalid_input(server, tensor,
                                                                        match) -> None:
    answer = post(server.url, predict_xml("affine", tensor))
    assert_fault(answer, "Client.InvalidInput")
    assert match in parse_fault(answer).message


def test_duplicate_input_gets_invalid_input(server) -> None:
    t = ("<t:Tensor><t:name>x</t:name><t:dtype>DT_FLOAT</t:dtype><t:shape><t:long>1</t:long>"
         "<t:long>4</t:long></t:shape><t:tensor_content>AAAAAAAAAAAAAAAAAAAAAA==</t:tensor_content>"
         "</t:Tensor>")
    assert_fault(post(server.url, predict_xml("affine", t + t)), "Client.InvalidInput")


# -- Client.MalformedRequest ---------------------------------------------------------------------
BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
<!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:t="urn:tfsoap:predict:v1"><soapenv:Body><t:Predict><t:model_name>&lol4;</t:model_name>
<t:inputs/></t:Predict></soapenv:Body></soapenv:Envelope>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"
 xmlns:t="urn:tfsoap:predict:v1"><soapenv:Body><t:Predict><t:model_name>&xxe;</t:model_name>
<t:inputs/></t:Predict></soapenv:Body></soapenv:Envelope>"""


@pytest.mark.parametrize("body", [
    b"<not xml",
    b"",
    b"\x00\x01\x02binary",
    b"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'>"
    b"<soapenv:Body><t:Predict xmlns:t='urn:tfsoap:predict:v1'>",
    BILLION_LAUGHS,
    XXE,
    b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "http://127.0.0.1:1/x.dtd">'
    b"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'>"
    b"<soapenv:Body/></soapenv:Envelope>",
], ids=["truncated", "empty", "binary", "unclosed", "billion-laughs", "xxe", "external-dtd"])
def test_malformed_xml_doctype_and_entities_get_malformed_request(server, body: bytes) -> None:
    answer = post(server.url, body)
    assert_fault(answer, "Client.MalformedRequest")
    assert b"root:" not in answer.body  # nothing of /etc/passwd leaks


def test_wrong_namespace_gets_malformed_request(server) -> None:
    body = predict_xml().replace(b"urn:tfsoap:predict:v1", b"urn:somebody:else")
    assert_fault(post(server.url, body), "Client.MalformedRequest")


def test_unknown_operation_gets_malformed_request(server) -> None:
    assert_fault(post(server.url, envelope("<t:Train><t:model_name>x</t:model_name></t:Train>")),
                 "Client.MalformedRequest")


@pytest.mark.parametrize("body_xml", [
    "<t:Predict><t:inputs/></t:Predict>",
    "<t:Predict><t:model_name>affine</t:model_name></t:Predict>",
    "<t:Predict><t:model_name>affine</t:model_name><t:inputs><t:Tensor><t:name>x</t:name>"
    "<t:dtype>DT_FLOAT</t:dtype></t:Tensor></t:inputs></t:Predict>",
    "<t:Predict><t:model_name>affine</t:model_name><t:inputs><t:Tensor><t:name>x</t:name>"
    "<t:dtype>DT_FLOAT</t:dtype><t:shape/><t:colour>red</t:colour></t:Tensor></t:inputs>"
    "</t:Predict>",
    "<t:Predict><t:model_name>affine</t:model_name><t:version>one</t:version><t:inputs/>"
    "</t:Predict>",
    "<t:GetModelMetadata><t:version>1</t:version></t:GetModelMetadata>",
], ids=["no-model", "no-inputs", "no-shape", "unknown-field", "bad-version", "metadata-no-name"])
def test_missing_or_unknown_fields_get_malformed_request(server, body_xml: str) -> None:
    assert_fault(post(server.url, envelope(body_xml)), "Client.MalformedRequest")


def test_not_a_soap_envelope_gets_malformed_request(server) -> None:
    assert_fault(post(server.url, b"<hello/>"), "Client.MalformedRequest")


@pytest.mark.parametrize("body", [
    b"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'>"
    b"<soapenv:Body/></soapenv:Envelope>",
    b"<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'/>",
], ids=["empty-body", "no-body"])
def test_an_envelope_without_a_body_gets_malformed_request(server, body: bytes) -> None:
    assert_fault(post(server.url, body), "Client.MalformedRequest")


def test_wrong_http_method_gets_a_fault_not_a_page(server) -> None:
    answer = post(server.url, b"", method="PUT")
    assert parse_fault(answer).code == "Client.MalformedRequest"


# -- Client.RequestTooLarge ----------------------------------------------------------------------
def test_body_over_the_limit_gets_request_too_large(server, client) -> None:
    limit = server.app.settings.max_body_bytes
    answer = post(server.url, predict_xml() + b" " * limit)
    assert_fault(answer, "Client.RequestTooLarge")
    with pytest.raises(tc.RequestTooLargeError):
        client.predict("affine", {"x": np.ones((limit // 16 + 1, 4), np.float32)})


def test_chunked_body_over_the_limit_gets_request_too_large(server) -> None:
    import http.client
    from urllib.parse import urlsplit

    limit = server.app.settings.max_body_bytes
    parts = urlsplit(server.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
    chunks = iter([predict_xml()] + [b" " * 65536] * (limit // 65536 + 2))
    conn.request("POST", "/", body=chunks, encode_chunked=True,
                 headers={"Content-Type": "text/xml", "Transfer-Encoding": "chunked"})
    resp = conn.getresponse()
    from ..raw import Answer

    answer = Answer(resp.status, resp.getheader("Content-Type", ""), resp.read(),
                    {k.lower(): v for k, v in resp.getheaders()})
    conn.close()
    assert_fault(answer, "Client.RequestTooLarge")


def test_a_few_224x224x3_float_images_fit_under_the_default_limit() -> None:
    from soap_server.settings import Settings

    image = 224 * 224 * 3 * 4 * 4 / 3  # base64 of one float32 image
    assert Settings().max_body_bytes > 4 * image
    typed = 224 * 224 * 3 * len("<float>-0.123456789</float>")
    assert Settings().max_body_bytes > 2 * typed


# -- Server.InferenceError -----------------------------------------------------------------------
def test_tensorflow_failure_gets_inference_error(client) -> None:
    with pytest.raises(tc.InferenceError, match="NaN or Inf") as err:
        client.predict("failing", {"x": np.array([1.0, np.nan], np.float32)})
    assert err.value.code == "Server.InferenceError"
    out = client.predict("failing", {"x": np.array([1.0, 2.0], np.float32)})
    np.testing.assert_array_equal(out["y"], [1.0, 2.0])
