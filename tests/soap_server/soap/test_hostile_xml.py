"""Hostile and unusual XML through the real server: SOAP 1.1 envelope rules, WS-Addressing
headers on the fast path, bounds on attributes and shapes, and fault texts in contract words."""

from __future__ import annotations

import base64
import logging
import re

import numpy as np
import pytest

from soap_server.soap import PredictCall
from tests.models import affine_expected

from ..raw import SOAP_ENV, TNS, envelope, parse_fault, post, predict_xml

WSA = "http://www.w3.org/2005/08/addressing"
#: What a client must never read in a fault: Python's and libxml2's words, file paths.
LEAKS = re.compile(r"StopIteration|AttributeError|UnicodeDecodeError|LookupError|KeyError|"
                   r"ValueError|TypeError|Exception|Traceback|XML_PARSE_HUGE|xmlCtxt|"
                   r"libxml|lxml|spyne|\.py\b|/usr/|/work/|/tmp/|site-packages")
GOOD_OP = ("<t:Predict><t:model_name>affine</t:model_name><t:inputs><t:Tensor><t:name>x"
           "</t:name><t:dtype>DT_FLOAT</t:dtype><t:shape><t:long>1</t:long><t:long>4</t:long>"
           "</t:shape><t:float_val><t:float>1</t:float><t:float>2</t:float><t:float>3</t:float>"
           "<t:float>4</t:float></t:float_val></t:Tensor></t:inputs></t:Predict>")


@pytest.fixture(scope="module")
def big_body_server(test_store):
    """A second real server whose body limit (40 MiB) is over libxml2's text limit."""
    from soap_server.app import start_server
    from soap_server.settings import Settings

    srv = start_server(Settings(model_store=str(test_store), port=0, host="127.0.0.1",
                                max_body_bytes=40 * 1024 * 1024))
    assert srv.wait_ready(120)
    yield srv
    srv.stop()


def raw_envelope(inner: str, ns: str = SOAP_ENV) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{ns}" '
            f'xmlns:t="{TNS}" xmlns:wsa="{WSA}">{inner}</soapenv:Envelope>').encode()


def fault_of(server, body: bytes, content_type: str = "text/xml; charset=utf-8"):
    answer = post(server.url, body, content_type)
    f = parse_fault(answer)
    assert answer.status == 500
    assert not LEAKS.search(f.faultstring) and not LEAKS.search(f.message), f
    return f


def wsa_header(must_understand: bool = False) -> str:
    mu = ' soapenv:mustUnderstand="1"' if must_understand else ""
    return ("<soapenv:Header>"
            f"<wsa:Action{mu}>urn:tfsoap:predict:v1/PredictService/PredictRequest</wsa:Action>"
            "<wsa:MessageID>urn:uuid:4d1f9a4e-1c55-4f0c-9a49-2d1a8e2f7c10</wsa:MessageID>"
            f"<wsa:To{mu}>http://127.0.0.1/</wsa:To><wsa:ReplyTo><wsa:Address>"
            "http://www.w3.org/2005/08/addressing/anonymous</wsa:Address></wsa:ReplyTo>"
            "</soapenv:Header>")


def test_ws_addressing_headers_are_understood_and_answered(server) -> None:
    for must in (False, True):
        answer = post(server.url, raw_envelope(wsa_header(must) + f"<soapenv:Body>{GOOD_OP}"
                                                                 "</soapenv:Body>"))
        assert answer.status == 200, answer.body[:300]
        plain = post(server.url, predict_xml("affine"))
        assert answer.body == plain.body


def test_ws_addressing_headers_keep_predict_on_the_fast_path(server) -> None:
    fast = server.app.wsgi.fast_predict
    for header in (wsa_header(), wsa_header(True), "<soapenv:Header/>"):
        call = fast.decode(raw_envelope(header + f"<soapenv:Body>{GOOD_OP}</soapenv:Body>"),
                           "text/xml; charset=utf-8", "rid")
        assert isinstance(call, PredictCall) and call.model_name == "affine"


def test_unknown_must_understand_header_gets_must_understand_fault(server) -> None:
    header = ('<soapenv:Header><s:Security xmlns:s="urn:example:sec" '
              'soapenv:mustUnderstand="1"/></soapenv:Header>')
    for op in (GOOD_OP, "<t:ListModels/>"):
        f = fault_of(server, raw_envelope(header + f"<soapenv:Body>{op}</soapenv:Body>"))
        assert f.faultcode == f.code == "MustUnderstand" and "Security" in f.message
    # the same entry without mustUnderstand is ignored
    ok = post(server.url, raw_envelope(header.replace(' soapenv:mustUnderstand="1"', "")
                                       + f"<soapenv:Body>{GOOD_OP}</soapenv:Body>"))
    assert ok.status == 200


def test_soap12_envelope_gets_version_mismatch(server) -> None:
    body = raw_envelope(f"<soapenv:Body>{GOOD_OP}</soapenv:Body>",
                        ns="http://www.w3.org/2003/05/soap-envelope")
    for ctype in ("text/xml; charset=utf-8", "application/soap+xml; charset=utf-8"):
        f = fault_of(server, body, ctype)
        assert f.faultcode == f.code == "VersionMismatch" and "1.2" in f.message


@pytest.mark.parametrize("inner", [
    f"<soapenv:Body>{GOOD_OP}{GOOD_OP}</soapenv:Body>",
    f"<soapenv:Body>{GOOD_OP}<t:ListModels/></soapenv:Body>",
    f"<soapenv:Body>{GOOD_OP}</soapenv:Body><t:trailing/>",
    f"<soapenv:Body>{GOOD_OP}</soapenv:Body><soapenv:Body>{GOOD_OP}</soapenv:Body>",
    f"<soapenv:Body>{GOOD_OP}</soapenv:Body><soapenv:Header/>",
    f"<soapenv:Header/><soapenv:Header/><soapenv:Body>{GOOD_OP}</soapenv:Body>",
    "<soapenv:Body/>",
], ids=["two-predicts", "two-operations", "trailing", "two-bodies", "body-before-header",
        "two-headers", "empty-body"])
def test_envelope_structure_violations_are_malformed_on_both_paths(server, inner) -> None:
    body = raw_envelope(inner)
    for ctype in ("text/xml; charset=utf-8", "text/xml; charset=iso-8859-1"):  # fast, Spyne
        f = fault_of(server, body, ctype)
        assert f.code == "Client.MalformedRequest", f


def test_many_attribute_names_are_refused_before_parsing(server) -> None:
    attrs = " ".join(f'a{i}="1"' for i in range(5000))
    body = predict_xml("affine").replace(b"<t:model_name>",
                                         f"<t:model_name {attrs}>".encode())
    for ctype in ("text/xml; charset=utf-8", "text/xml; charset=iso-8859-1"):
        f = fault_of(server, body, ctype)
        assert f.code == "Client.MalformedRequest" and "attribute" in f.message


@pytest.mark.parametrize("shape", [[0, 2**62], [0, 10**30], [2**40, 0, 2**40]])
def test_empty_shape_with_overflowing_dims_is_invalid_input(server, shape, caplog) -> None:
    dims = "".join(f"<t:long>{d}</t:long>" for d in shape)
    tensor = (f"<t:Tensor><t:name>x</t:name><t:dtype>DT_FLOAT</t:dtype><t:shape>{dims}"
              "</t:shape></t:Tensor>")
    with caplog.at_level(logging.ERROR):
        f = fault_of(server, predict_xml("echo_float", tensor))
    assert f.code == "Client.InvalidInput" and "shape" in f.message
    assert "Traceback" not in caplog.text


@pytest.mark.parametrize("body,ctype", [
    (b"", "text/xml; charset=iso-8859-1"),                                  # StopIteration
    (envelope(""), "text/xml; charset=iso-8859-1"),                         # AttributeError
    (predict_xml("affine"), "text/xml; charset=x-no-such-charset"),         # LookupError
    (predict_xml("affine").replace(b"affine", b"\xff\xfe"),
     "text/xml; charset=utf-16"),                                           # UnicodeDecodeError
    (predict_xml("affine", "<t:Tensor><t:name>x</t:name><t:dtype>DT_FLOAT</t:dtype><t:shape>"
                 "<t:long>1</t:long></t:shape><t:tensor_content>" + "A" * 10_000_004
                 + "</t:tensor_content></t:Tensor>"),
     "text/xml; charset=iso-8859-1"),                                       # XML_PARSE_HUGE
    (b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;'
     b'&a;&a;&a;&a;&a;">]><r>&b;</r>', "text/xml"),                          # amplification
    (b"<soapenv:Envelope xmlns:soapenv='" + SOAP_ENV.encode() + b"'><soapenv:Body>",
     "text/xml"),                                                           # not well-formed
], ids=["empty", "empty-body", "unknown-charset", "bad-bytes", "long-text-spyne", "dtd",
        "truncated"])
def test_faults_use_contract_words_only(server, big_body_server, body, ctype) -> None:
    srv = server if len(body) <= server.app.settings.max_body_bytes else big_body_server
    f = fault_of(srv, body, ctype)
    assert f.code == "Client.MalformedRequest", f


def test_model_name_with_newline_cannot_forge_a_log_line(server, caplog) -> None:
    forged = "ghost\nrequest_id=forged op=Predict model=affine outcome=ok"
    body = predict_xml(forged.replace("\n", "&#10;"))
    with caplog.at_level(logging.INFO, logger="soap_server.dataplane"):
        f = fault_of(server, body)
    assert f.code == "Client.ModelNotFound"
    lines = [r.getMessage() for r in caplog.records if f.request_id in r.getMessage()]
    assert len(lines) == 1 and "\n" not in lines[0] and "ghost\\x0arequest_id\\x3dforged" \
        in lines[0], lines


@pytest.mark.parametrize("body,ctype,method", [
    (b"<not-soap/>", "text/xml", "POST"),
    (raw_envelope("<soapenv:Body><t:NoSuchOp/></soapenv:Body>"), "text/xml", "POST"),
    (b"", "text/xml", "PUT"),
])
def test_requests_refused_before_the_operation_leave_one_log_line(server, caplog, body, ctype,
                                                                  method) -> None:
    with caplog.at_level(logging.INFO, logger="soap_server"):
        answer = post(server.url, body, ctype, method=method,
                      headers={"X-Request-ID": f"early-{method}-{len(body)}"})
    f = parse_fault(answer)
    lines = [r.getMessage() for r in caplog.records
             if f"request_id={f.request_id} " in r.getMessage()]
    assert len(lines) == 1 and f"outcome={f.code}" in lines[0], lines


def test_affine_still_answers_after_hostile_requests(client) -> None:
    x = np.ones((2, 4), np.float32)
    np.testing.assert_allclose(client.predict("affine", {"x": x})["y"], affine_expected(x, 2.0))


def test_big_tensor_content_over_libxml2_text_limit_is_accepted(big_body_server) -> None:
    n = 2_600_000  # 10.4 MB raw, 13.9 million base64 characters in one text node
    x = np.arange(n, dtype=np.float32).reshape(1, n)
    content = base64.b64encode(x.tobytes()).decode()
    assert len(content) > 10_000_000
    tensor = (f"<t:Tensor><t:name>x</t:name><t:dtype>DT_FLOAT</t:dtype><t:shape><t:long>1"
              f"</t:long><t:long>{n}</t:long></t:shape><t:tensor_content>{content}"
              "</t:tensor_content></t:Tensor>")
    body = predict_xml("echo_float", tensor).replace(
        b"</t:inputs>", b"</t:inputs><t:output_filter><t:string>z</t:string></t:output_filter>")
    answer = post(big_body_server.url, body, timeout=120)
    assert answer.status == 200, answer.body[:300]
    assert b"<int_val><int>" + str(n).encode() + b"</int></int_val>" in answer.body \
        or base64.b64encode(np.int32(n).tobytes()) in answer.body
