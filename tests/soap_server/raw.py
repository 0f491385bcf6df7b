"""Raw HTTP/SOAP helpers for tests that send what no well-behaved client would."""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from urllib.parse import urlsplit

from lxml import etree

TNS = "urn:tfsoap:predict:v1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str]


@dataclass
class ParsedFault:
    faultcode: str
    faultstring: str
    code: str
    message: str
    request_id: str


def post(url: str, body: bytes, content_type: str = "text/xml; charset=utf-8",
         headers: dict[str, str] | None = None, method: str = "POST",
         timeout: float = 30) -> Answer:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    try:
        h = {"Content-Type": content_type, "SOAPAction": '""'}
        h.update(headers or {})
        conn.request(method, parts.path or "/", body=body, headers=h)
        resp = conn.getresponse()
        data = resp.read()
        return Answer(resp.status, resp.getheader("Content-Type", ""), data,
                      {k.lower(): v for k, v in resp.getheaders()})
    finally:
        conn.close()


def envelope(body_xml: str) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"'
            f' xmlns:t="{TNS}"><soapenv:Body>{body_xml}</soapenv:Body></soapenv:Envelope>'
            ).encode()


def predict_xml(model: str = "affine", tensor: str | None = None) -> bytes:
    tensor = tensor if tensor is not None else (
        "<t:Tensor><t:name>x</t:name><t:dtype>DT_FLOAT</t:dtype>"
        "<t:shape><t:long>1</t:long><t:long>4</t:long></t:shape>"
        "<t:float_val><t:float>1</t:float><t:float>2</t:float><t:float>3</t:float>"
        "<t:float>4</t:float></t:float_val></t:Tensor>")
    return envelope(f"<t:Predict><t:model_name>{model}</t:model_name>"
                    f"<t:inputs>{tensor}</t:inputs></t:Predict>")


def parse_fault(answer: Answer) -> ParsedFault:
    """The fault in ``answer``; fails the test if it is not a SOAP fault with our detail."""
    assert "xml" in answer.content_type, (answer.status, answer.content_type, answer.body[:300])
    root = etree.fromstring(answer.body)
    fault = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None, answer.body[:500]
    detail = fault.find(f"detail/{{{TNS}}}ServiceFault")
    assert detail is not None, answer.body[:500]
    return ParsedFault(
        faultcode=(fault.findtext("faultcode") or "").split(":", 1)[-1],
        faultstring=fault.findtext("faultstring") or "",
        code=detail.findtext(f"{{{TNS}}}code") or "",
        message=detail.findtext(f"{{{TNS}}}message") or "",
        request_id=detail.findtext(f"{{{TNS}}}request_id") or "")
