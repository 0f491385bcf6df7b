"""TLS and mutual TLS on a real granian server on loopback, with material the tests make
(``certs.py``): the Python client over HTTPS with the test CA, the WSDL naming an https
endpoint, passwords accepted over TLS (``allow_password_text_over_http`` off), client
certificates good, unknown and missing with ``tls_client_auth`` required and optional, plain
HTTP to the TLS port, the TLS version floor; and TLS settings refused at start in one line."""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

import tfsoap_client as tc
from soap_server.settings import Settings, SettingsError

from .certs import TlsMaterial, make_tls_material
from .conftest import PASSWORDS

X = np.array([[1, 2, 3, 4]], np.float32)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(tmp_path_factory.mktemp("tls"))


def tls_settings(tls: TlsMaterial, auth: str = "none", **more: Any) -> dict[str, Any]:
    values: dict[str, Any] = dict(tls_cert=str(tls.server_cert), tls_key=str(tls.server_key),
                                  allow_password_text_over_http=False)
    if auth != "none":
        values.update(tls_client_ca=str(tls.ca_cert), tls_client_auth=auth)
    values.update(more)
    return values


@pytest.fixture(scope="module")
def https_server(start_secured: Any, tls: TlsMaterial) -> Any:
    return start_secured(**tls_settings(tls))


@pytest.fixture(scope="module")
def mtls_required(start_secured: Any, tls: TlsMaterial) -> Any:
    return start_secured(**tls_settings(tls, "required", tls_client_role="scoring"))


@pytest.fixture(scope="module")
def mtls_optional(start_secured: Any, tls: TlsMaterial) -> Any:
    return start_secured(**tls_settings(tls, "optional"))


def client(srv: Any, tls: TlsMaterial, user: str | None = "alice", cert: str = "none",
           **kw: Any) -> tc.PredictClient:
    pair = {"good": (str(tls.client_cert), str(tls.client_key)),
            "unknown": (str(tls.unknown_client_cert), str(tls.unknown_client_key))}.get(cert)
    creds: dict[str, Any] = {}
    if user is not None:
        creds = dict(username=user, password=kw.pop("password", PASSWORDS.get(user, "x")))
    return tc.PredictClient(srv.url, timeout=30, verify=str(tls.ca_cert), cert=pair,
                            **creds, **kw)


def test_tls_round_trip_with_basic_and_usernametoken(https_server: Any,
                                                     tls: TlsMaterial) -> None:
    assert https_server.url.startswith("https://127.0.0.1:")
    for user, auth in [("alice", "basic"), ("alice", "wsse"), ("dora", "wsse-digest")]:
        out = client(https_server, tls, user, auth=auth).predict("affine", {"x": X})
        assert out["y"].shape == (1, 3)
    with pytest.raises(tc.AuthenticationFailedError):
        client(https_server, tls, "alice", password="wrong-Pw-1").predict("affine", {"x": X})


def test_wsdl_over_https_names_an_https_endpoint(https_server: Any, tls: TlsMaterial) -> None:
    wsdl = requests.get(https_server.url + "?wsdl", verify=str(tls.ca_cert), timeout=10)
    assert wsdl.status_code == 200
    assert f'location="{https_server.url}"'.encode() in wsdl.content


def test_a_client_that_does_not_trust_the_ca_is_refused(https_server: Any) -> None:
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(https_server.url + "healthz", timeout=10)  # the system CAs only
    with pytest.raises(tc.TransportError):
        tc.PredictClient(https_server.url, timeout=10)


def test_plain_http_to_the_tls_port_fails_cleanly(https_server: Any, tls: TlsMaterial) -> None:
    plain = https_server.url.replace("https://", "http://")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.post(plain, data=b"<x/>", timeout=10)
    with socket.create_connection(("127.0.0.1", https_server.port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = s.recv(100)
    assert not answer.startswith(b"HTTP/")  # a TLS alert (or nothing), never a page
    out = client(https_server, tls).predict("affine", {"x": X})  # still serving
    assert out["y"].shape == (1, 3)


def _handshake(port: int, tls: TlsMaterial, version: ssl.TLSVersion) -> str:
    ctx = ssl.create_default_context(cafile=str(tls.ca_cert))
    ctx.minimum_version = ctx.maximum_version = version
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname="localhost") as conn:
        return str(conn.version())


def test_tls_1_2_is_the_floor(https_server: Any, start_secured: Any,
                              tls: TlsMaterial) -> None:
    assert _handshake(https_server.port, tls, ssl.TLSVersion.TLSv1_2) == "TLSv1.2"
    assert _handshake(https_server.port, tls, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"
    with pytest.raises(ssl.SSLError):
        _handshake(https_server.port, tls, ssl.TLSVersion.TLSv1_1)
    strict = start_secured(**tls_settings(tls, tls_min_version="1.3"))
    with pytest.raises(ssl.SSLError):
        _handshake(strict.port, tls, ssl.TLSVersion.TLSv1_2)
    assert _handshake(strict.port, tls, ssl.TLSVersion.TLSv1_3) == "TLSv1.3"


def test_mutual_tls_required(mtls_required: Any, tls: TlsMaterial) -> None:
    # a good certificate and no password: the caller has tls_client_role (scoring)
    out = client(mtls_required, tls, None, cert="good").predict("affine", {"x": X})
    assert out["y"].shape == (1, 3)
    certified = client(mtls_required, tls, None, cert="good")
    with pytest.raises(tc.NotAuthorizedError):  # scalar needs ops; the status needs ops
        certified.predict("scalar", {"x": np.float32(1)})
    with pytest.raises(tc.NotAuthorizedError):
        certified.status()
    # a password on top names the user, with that user's roles
    assert client(mtls_required, tls, "olga", cert="good").status().ready
    with pytest.raises(tc.AuthenticationFailedError):  # a wrong password is not excused
        client(mtls_required, tls, "olga", cert="good", password="bad-Pw-1").status()
    for cert in ("unknown", "none"):
        with pytest.raises(tc.TransportError):
            client(mtls_required, tls, "alice", cert=cert)
        with pytest.raises(requests.exceptions.SSLError):
            requests.get(mtls_required.url + "healthz", verify=str(tls.ca_cert), timeout=10,
                         cert=(str(tls.unknown_client_cert), str(tls.unknown_client_key))
                         if cert == "unknown" else None)
    assert client(mtls_required, tls, None, cert="good").predict("affine", {"x": X})["y"].size


def test_mutual_tls_optional(mtls_optional: Any, tls: TlsMaterial) -> None:
    assert client(mtls_optional, tls, "alice").predict("affine", {"x": X})["y"].size == 3
    assert client(mtls_optional, tls, "alice", cert="good").predict("affine", {"x": X})["y"].size
    with pytest.raises(tc.TransportError):
        client(mtls_optional, tls, "alice", cert="unknown")
    answer = requests.post(mtls_optional.url, data=b"<x/>", verify=str(tls.ca_cert), timeout=10,
                           cert=(str(tls.client_cert), str(tls.client_key)))
    assert answer.status_code == 401  # optional: a certificate gives no role, a password must
    assert client(mtls_optional, tls, "alice").predict("affine", {"x": X})["y"].size == 3


@pytest.mark.parametrize("values,words", [
    ({"tls_cert": "a.pem"}, "tls_cert and tls_key go together"),
    ({"tls_cert": "a.pem", "tls_key": "a.key", "tls_client_auth": "required"},
     "needs tls_cert, tls_key and tls_client_ca"),
    ({"tls_cert": "a.pem", "tls_key": "a.key", "tls_client_ca": "ca.pem"},
     "tls_client_auth is none"),
    ({"tls_min_version": "1.1"}, "tls_min_version must be one of 1.2, 1.3"),
    ({"tls_client_auth": "sometimes"}, "tls_client_auth must be one of"),
    ({"tls_cert": "a.pem", "tls_key": "a.key", "tls_client_ca": "ca.pem",
      "tls_client_auth": "optional", "tls_client_role": "ops"}, "tls_client_role needs"),
])
def test_tls_settings_that_do_not_fit_are_refused(values: dict[str, str], words: str) -> None:
    with pytest.raises(SettingsError, match=words):
        Settings(**values).checked()


def test_unusable_tls_files_stop_the_server_with_one_line(tls: TlsMaterial,
                                                          tmp_path: Path) -> None:
    from soap_server.security import check_tls_files

    swapped = Settings(tls_cert=str(tls.server_cert), tls_key=str(tls.client_key))
    with pytest.raises(SettingsError, match="matching unencrypted PEM key"):
        check_tls_files(swapped)
    not_ca = tmp_path / "empty.pem"
    not_ca.write_text("nothing\n")
    with pytest.raises(SettingsError, match="no PEM CA certificate"):
        check_tls_files(Settings(tls_cert=str(tls.server_cert), tls_key=str(tls.server_key),
                                 tls_client_ca=str(not_ca), tls_client_auth="required"))
    run = subprocess.run([sys.executable, "-m", "soap_server.cli", "serve", "--port", "0",
                          "--tls-cert", str(tmp_path / "missing.pem"), "--tls-key",
                          str(tls.server_key)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    last = run.stderr.strip().splitlines()[-1]
    assert last.startswith("tfsoap: error: TLS file not found:") and "missing.pem" in last
