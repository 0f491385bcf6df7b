"""Mutual TLS terminated by a real nginx (``deploy/nginx/tfsoap-mtls.conf.template``, the file
docs/security.md quotes) in front of a real tfsoap server on loopback that trusts nginx's
address (``trusted_proxies``): client certificates made by the test, the Python client with
``cert=`` and ``verify=`` through nginx. A mapped subject is its user with its roles; an
unmapped one, a forged header through nginx and the same headers sent straight to tfsoap from
an address it does not trust all fail to authenticate."""

from __future__ import annotations

import http.client
import logging
import re
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import requests

import tfsoap_client as tc
from soap_server.security import User, hash_password
from tests.soap_server.security.certs import TlsMaterial, make_tls_material

from .load import predict_body
from .mtls_stack import TEMPLATE, mtls_stack
from .processes import REPO, Nginx

X = np.array([[1, 2, 3, 4]], np.float32)
BATCH_DN = "CN=scoring-batch,O=tfsoap tests"  # what nginx's $ssl_client_s_dn says
ALICE_PW = "alice-Pw-5521"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(tmp_path_factory.mktemp("mtls"), "alice",
                             other_cns=("scoring-batch", "stranger"))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, test_store: Path,
          tls: TlsMaterial) -> Iterator[tuple[Any, Nginx]]:
    """tfsoap on 127.0.0.1 trusting 127.0.0.1, and nginx terminating mutual TLS before it."""
    users = {
        # certificate only: the subject in the order nginx writes it, most specific first
        "scoring-batch": User("scoring-batch", frozenset({"scoring"}),
                              cert_subjects=(BATCH_DN,)),
        # a password and a certificate (attribute types in lower case: the same subject)
        "alice": User("alice", frozenset({"scoring"}), hash_password(ALICE_PW),
                      cert_subjects=("cn=alice,o=tfsoap tests",)),
        "olga": User("olga", frozenset({"ops"}), hash_password("olga-Pw-1188")),
    }
    with mtls_stack(tmp_path_factory.mktemp("mtls-stack"), test_store, tls, users, threads=8,
                    model_roles="affine=scoring;scalar=ops", status_role="ops",
                    allow_password_text_over_http=True) as running:
        yield running


def _client(nginx: Nginx, tls: TlsMaterial, cn: str | None, **kw: Any) -> tc.PredictClient:
    cert = None
    if cn == "alice":
        cert = (str(tls.client_cert), str(tls.client_key))
    elif cn is not None:
        cert = tuple(str(p) for p in tls.others[cn])
    return tc.PredictClient(f"https://127.0.0.1:{nginx.port}/", timeout=30,
                            verify=str(tls.ca_cert), cert=cert, **kw)


def test_mapped_certificate_is_its_user_with_its_roles(
        stack: Any, tls: TlsMaterial, caplog: pytest.LogCaptureFixture) -> None:
    _, nginx = stack
    batch = _client(nginx, tls, "scoring-batch")
    with caplog.at_level(logging.INFO, logger="soap_server.dataplane"):
        out = batch.predict("affine", {"x": X})
    assert out["y"].shape == (1, 3)
    assert any("op=Predict" in r.getMessage() and "user=scoring-batch" in r.getMessage()
               for r in caplog.records)
    with pytest.raises(tc.NotAuthorizedError):
        batch.predict("scalar", {"x": np.float32(2.0)})
    names = {m.name for m in batch.list_models()}
    assert "affine" in names and "scalar" not in names
    with pytest.raises(tc.NotAuthorizedError):
        batch.status()  # status_role = ops
    # alice's certificate (subject written with lower-case types in the users file) is alice
    assert _client(nginx, tls, "alice").predict("affine", {"x": X})["y"].shape == (1, 3)


def test_unmapped_subject_fails_to_authenticate(stack: Any, tls: TlsMaterial) -> None:
    _, nginx = stack
    with pytest.raises(tc.AuthenticationFailedError):
        _client(nginx, tls, "stranger").predict("affine", {"x": X})
    # ... even with a good password beside it: a certificate that names nobody is a failure
    with pytest.raises(tc.AuthenticationFailedError):
        _client(nginx, tls, "stranger", username="alice",
                password=ALICE_PW).predict("affine", {"x": X})


def test_certificate_and_password_must_name_the_same_user(stack: Any, tls: TlsMaterial) -> None:
    _, nginx = stack
    same = _client(nginx, tls, "alice", username="alice", password=ALICE_PW)
    assert same.predict("affine", {"x": X})["y"].shape == (1, 3)
    with pytest.raises(tc.AuthenticationFailedError):  # alice's certificate, olga's password
        _client(nginx, tls, "alice", username="olga",
                password="olga-Pw-1188").predict("affine", {"x": X})
    with pytest.raises(tc.AuthenticationFailedError):  # the right certificate, a wrong password
        _client(nginx, tls, "alice", username="alice",
                password="wrong-Pw-1").predict("affine", {"x": X})
    # without a certificate, the password alone works through the same nginx (optional)
    olga = _client(nginx, tls, None, username="olga", password="olga-Pw-1188")
    assert olga.status() is not None


def test_forged_headers_through_nginx_are_replaced(stack: Any, tls: TlsMaterial) -> None:
    _, nginx = stack
    forged = {"X-SSL-Client-Verify": "SUCCESS", "X-SSL-Client-S-DN": BATCH_DN,
              "Content-Type": "text/xml; charset=utf-8"}
    resp = requests.post(f"https://127.0.0.1:{nginx.port}/", data=predict_body("affine", "x", X),
                         headers=forged, verify=str(tls.ca_cert), timeout=30)
    assert resp.status_code == 401 and b"Client.AuthenticationFailed" in resp.content
    assert resp.headers["WWW-Authenticate"].startswith("Basic")


def test_certificate_from_another_ca_is_refused_by_nginx(stack: Any, tls: TlsMaterial) -> None:
    _, nginx = stack
    resp = requests.post(f"https://127.0.0.1:{nginx.port}/", data=predict_body("affine", "x", X),
                         cert=(str(tls.unknown_client_cert), str(tls.unknown_client_key)),
                         verify=str(tls.ca_cert), timeout=30)
    assert resp.status_code == 400  # nginx: "The SSL certificate error"
    assert b"ServiceFault" not in resp.content


def _direct(port: int, source: str, headers: dict[str, str]) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30, source_address=(source, 0))
    try:
        conn.request("POST", "/", predict_body("affine", "x", X),
                     {"Content-Type": "text/xml; charset=utf-8", **headers})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_headers_from_a_peer_not_trusted_are_ignored_and_logged_once(
        stack: Any, caplog: pytest.LogCaptureFixture) -> None:
    srv, _ = stack
    headers = {"X-SSL-Client-Verify": "SUCCESS", "X-SSL-Client-S-DN": BATCH_DN}
    # 127.0.0.1 is trusted: the headers name scoring-batch (this is what nginx does)
    status, body = _direct(srv.port, "127.0.0.1", headers)
    assert status == 200 and b"ServiceFault" not in body
    # 127.0.0.2 (loopback too, not in trusted_proxies): the same headers count for nothing
    with caplog.at_level(logging.WARNING, logger="soap_server.security.client_certs"):
        for _ in range(3):
            status, body = _direct(srv.port, "127.0.0.2", headers)
            assert status == 401 and b"Client.AuthenticationFailed" in body
    warnings = [r for r in caplog.records if "not in trusted_proxies" in r.getMessage()
                and "127.0.0.2" in r.getMessage()]
    assert len(warnings) == 1


def test_docs_quote_the_template_the_test_runs() -> None:
    doc = (REPO / "docs" / "security.md").read_text()
    blocks = re.findall(r"```nginx\n(.*?)```", doc, re.S)
    assert TEMPLATE.read_text() in blocks
