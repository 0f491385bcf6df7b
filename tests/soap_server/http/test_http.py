"""The HTTP surface: health probes, the WSDL at ?wsdl, request ids."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

from lxml import etree
from requests.structures import CaseInsensitiveDict

from soap_server.app import build_app
from soap_server.http.server import RunningServer
from soap_server.settings import Settings

from ..raw import post


def get(url: str) -> tuple[int, bytes, CaseInsensitiveDict[str]]:
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status, r.read(), CaseInsensitiveDict(dict(r.headers))
    except urllib.error.HTTPError as e:
        return e.code, e.read(), CaseInsensitiveDict(dict(e.headers))


def test_healthz_and_readyz_answer_200_when_loaded(server) -> None:
    assert get(server.url + "healthz")[:2] == (200, b'{"status": "ok"}\n')
    status, body, _ = get(server.url + "readyz")
    assert status == 200 and json.loads(body) == {"ready": True}


def test_readyz_is_503_until_the_models_are_loaded(test_store: Path) -> None:
    srv = RunningServer(build_app(Settings(model_store=str(test_store), port=0)))
    srv.start(load_models=False)
    try:
        assert get(srv.url + "healthz")[0] == 200
        assert get(srv.url + "readyz")[0] == 503
        srv.app.registry.start_loading()
        assert srv.wait_ready(60)
        assert get(srv.url + "readyz")[0] == 200
    finally:
        srv.stop()


def test_wsdl_is_served_with_the_address_the_client_used(server) -> None:
    for url in (server.url + "?wsdl", server.url + "?WSDL", server.url + "PredictService.wsdl"):
        status, body, headers = get(url)
        assert status == 200 and "xml" in headers["Content-Type"]
        root = etree.fromstring(body)
        loc = root.find(".//{http://schemas.xmlsoap.org/wsdl/soap/}address").get("location")
        assert loc == server.url
    host_url = server.url.replace("127.0.0.1", "localhost")
    body = get(host_url + "?wsdl")[1]
    assert f'location="{host_url}"'.encode() in body


def test_plain_get_is_a_short_text_answer_not_an_error_page(server) -> None:
    status, body, headers = get(server.url)
    assert status == 404 and headers["Content-Type"].startswith("text/plain")
    assert b"?wsdl" in body


def test_a_request_id_sent_by_the_caller_is_echoed(server) -> None:
    answer = post(server.url, b"<bad", headers={"X-Request-ID": "abc-123"})
    assert answer.headers["x-request-id"] == "abc-123"
    assert b"<request_id>abc-123</request_id>" in answer.body
