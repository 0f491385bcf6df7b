"""Secured calls from the generated Java and C# clients: a server with TLS (the test CA) and a
users file.

Java: the JAX-WS stubs call it over https with a truststore made by ``keytool`` from the CA,
authenticated by HTTP Basic (``BindingProvider.USERNAME_PROPERTY``) and by WS-Security
UsernameToken (``clients/java/src/UsernameTokenHandler.java``, text and digest), and a wrong
password comes back as the typed ``ServiceFault`` with ``Client.AuthenticationFailed``.

C# (Mono 6.8): the ASMX proxy (``wsdl``) with ``Credentials``, with ``PreAuthenticate`` and
through the server's 401 challenge, and the WCF proxy (``svcutil``) with ``BasicHttpBinding`` in
``Transport`` mode with Basic credentials, both trusting the CA given with ``--ca`` (a btls trust
anchor, see ``TlsTrust`` in ``clients/csharp/src/DemoSupport.cs``); a wrong password is the
typed fault. Mono's WCF has no message security, so ``TransportWithMessageCredential``
(UsernameToken) is pinned as the ``NotImplementedException`` it raises.
"""

from __future__ import annotations

import logging
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest

from ..soap_server.security.certs import TlsMaterial, make_tls_material
from .toolchains import (
    COMMITTED_WSDL,
    JAVA,
    MONO,
    DemoRun,
    assert_clean_failure,
    assert_same_predictions,
    build_csharp,
    build_java,
    by_name,
    csharp_command,
    java_command,
    java_truststore,
    run_program,
)

PASSWORDS = {"alice": "alice-Interop-Pw-1", "dora": "dora-Interop-Digest-2"}
STORE_PASSWORD = "tfsoap-test"


@pytest.fixture(scope="module")
def tls_material(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(tmp_path_factory.mktemp("interop-tls"))


@pytest.fixture(scope="module")
def secured_tls_server(server: Any, test_store: Path, tls_material: TlsMaterial,
                       tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """TLS on, a users file (alice: scrypt hash; dora: digest secret), passwords accepted only
    over TLS. ``server`` first: it puts the demo model into the store."""
    from soap_server.app import start_server
    from soap_server.security import User, hash_password, save_users
    from soap_server.settings import Settings

    users = tmp_path_factory.mktemp("interop-users") / "users.toml"
    save_users(users, {
        "alice": User("alice", frozenset({"scoring"}), hash_password(PASSWORDS["alice"])),
        "dora": User("dora", frozenset({"scoring"}), digest_secret=PASSWORDS["dora"]),
    })
    srv = start_server(Settings(
        model_store=str(test_store), port=0, host="127.0.0.1", threads=16,
        max_body_bytes=4 * 1024 * 1024, request_timeout_s=20.0, users_file=str(users),
        tls_cert=str(tls_material.server_cert), tls_key=str(tls_material.server_key),
        lockout_failures=0))
    assert srv.wait_ready(120)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def truststore(tls_material: TlsMaterial, tmp_path_factory: pytest.TempPathFactory) -> Path:
    JAVA.require()
    return java_truststore(tls_material.ca_cert, tmp_path_factory.mktemp("truststore"),
                           STORE_PASSWORD)


@pytest.fixture(scope="module")
def java_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    JAVA.require()
    return build_java(str(COMMITTED_WSDL), tmp_path_factory.mktemp("java-secured"))


def run_java(classes: Path, srv: Any, images: Path, truststore: Path | None,
             *auth: str) -> DemoRun:
    command = java_command(classes, srv.url, str(COMMITTED_WSDL), images, *auth)
    if truststore is not None:
        command[1:1] = [f"-Djavax.net.ssl.trustStore={truststore}",
                        f"-Djavax.net.ssl.trustStorePassword={STORE_PASSWORD}"]
    return run_program(command)


@pytest.mark.parametrize("user,auth", [("alice", "basic"), ("alice", "wsse"),
                                       ("dora", "wsse-digest")])
def test_java_predicts_over_tls_authenticated(java_classes: Path, secured_tls_server: Any,
                                              truststore: Path, images_file: Path,
                                              python_answers: Any, user: str,
                                              auth: str) -> None:
    assert secured_tls_server.url.startswith("https://")
    run = run_java(java_classes, secured_tls_server, images_file, truststore,
                   "--user", user, "--password", PASSWORDS[user], "--auth", auth)
    assert run.returncode == 0, run.explain()
    assert "DONE" in run.lines
    assert_same_predictions(run, python_answers)
    assert PASSWORDS[user] not in run.stdout + run.stderr


@pytest.mark.parametrize("auth", ["basic", "wsse"])
def test_java_wrong_password_is_the_typed_fault(java_classes: Path, secured_tls_server: Any,
                                                truststore: Path, images_file: Path,
                                                auth: str) -> None:
    run = run_java(java_classes, secured_tls_server, images_file, truststore,
                   "--user", "alice", "--password", "not-the-Pw-9", "--auth", auth)
    assert run.returncode == 4, run.explain()
    assert run.first("ERROR") is not None
    assert (run.first("ERROR") or "").startswith("fault Client.AuthenticationFailed "), \
        run.explain()


def test_java_without_the_truststore_fails_as_transport(java_classes: Path,
                                                        secured_tls_server: Any,
                                                        images_file: Path) -> None:
    run = run_java(java_classes, secured_tls_server, images_file, None,
                   "--user", "alice", "--password", PASSWORDS["alice"])
    assert run.returncode == 3, run.explain()
    assert (run.first("ERROR") or "").startswith("transport "), run.explain()


# --- C# (Mono) ---------------------------------------------------------------------------------

#: SOAP calls one demo run makes: ListModels, GetModelMetadata, Predict typed, packed, and the
#: unknown model.
DEMO_CALLS = 5
_NO_CREDENTIALS = "reason=no credentials"


@pytest.fixture(scope="module")
def csharp_demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    MONO.require()
    return build_csharp(str(COMMITTED_WSDL), tmp_path_factory.mktemp("csharp-secured"))


def run_csharp(build_dir: Path, flavour: str, url: str, images: Path, ca: Path | None,
               *extra: str) -> DemoRun:
    args = [*extra, *(["--ca", str(ca)] if ca is not None else [])]
    return run_program(csharp_command(build_dir, flavour, url, images, "--timeout-ms", "30000",
                                      *args))


@pytest.mark.parametrize("flavour,extra,challenged", [
    ("Asmx", (), False),                          # PreAuthenticate: Basic on every request
    ("Asmx", ("--no-preauthenticate",), True),    # each call: 401 challenge, then resent
    ("Wcf", (), None),                            # BasicHttpBinding, Transport + Basic
], ids=["asmx-preauthenticate", "asmx-challenge", "wcf-basic"])
def test_csharp_predicts_over_tls_with_basic(csharp_demos: Path, secured_tls_server: Any,
                                             tls_material: TlsMaterial, images_file: Path,
                                             python_answers: Any,
                                             caplog: pytest.LogCaptureFixture, flavour: str,
                                             extra: tuple[str, ...],
                                             challenged: bool | None) -> None:
    caplog.set_level(logging.INFO, logger="soap_server")
    assert secured_tls_server.url.startswith("https://")
    run = run_csharp(csharp_demos, flavour, by_name(secured_tls_server.url), images_file,
                     tls_material.ca_cert, "--user", "alice", "--password", PASSWORDS["alice"],
                     *extra)
    assert run.returncode == 0, run.explain()
    assert "DONE" in run.lines
    assert_same_predictions(run, python_answers)
    assert run.fault()[0] == "Client.ModelNotFound"  # faults still typed when authenticated
    assert PASSWORDS["alice"] not in run.stdout + run.stderr
    # The server logs one INFO line per request that came without credentials: with
    # PreAuthenticate none, waiting for the challenge one per call (each answered 401 with
    # WWW-Authenticate: Basic realm="tfsoap", and resent with the credentials).
    bare = caplog.text.count(_NO_CREDENTIALS)
    if challenged is True:
        assert bare == DEMO_CALLS, caplog.text
    elif challenged is False:
        assert bare == 0, caplog.text


@pytest.mark.parametrize("flavour,extra", [("Asmx", ()), ("Asmx", ("--no-preauthenticate",)),
                                           ("Wcf", ())],
                         ids=["asmx-preauthenticate", "asmx-challenge", "wcf-basic"])
def test_csharp_wrong_password_is_the_typed_fault(csharp_demos: Path, secured_tls_server: Any,
                                                  tls_material: TlsMaterial, images_file: Path,
                                                  flavour: str, extra: tuple[str, ...]) -> None:
    run = run_csharp(csharp_demos, flavour, by_name(secured_tls_server.url), images_file,
                     tls_material.ca_cert, "--user", "alice", "--password", "not-the-Pw-9",
                     *extra)
    assert run.returncode == 4, run.explain()
    assert (run.first("ERROR") or "").startswith("fault Client.AuthenticationFailed "), \
        run.explain()
    assert "MODELS" not in run.lines  # refused at the first call


@pytest.mark.parametrize("flavour", ["Asmx", "Wcf"])
def test_csharp_without_credentials_is_refused(csharp_demos: Path, secured_tls_server: Any,
                                               tls_material: TlsMaterial, images_file: Path,
                                               flavour: str) -> None:
    """No credentials: the server's 401 challenge, which neither proxy can answer; both
    report it as a transport error (HTTP 401), not as a fault."""
    run = run_csharp(csharp_demos, flavour, by_name(secured_tls_server.url), images_file,
                     tls_material.ca_cert)
    assert_clean_failure(run, "transport", within_s=60)
    assert "WebException" in (run.first("ERROR") or ""), run.explain()


def test_wcf_username_token_is_not_implemented_in_mono(csharp_demos: Path,
                                                       secured_tls_server: Any,
                                                       tls_material: TlsMaterial,
                                                       images_file: Path) -> None:
    """``BasicHttpSecurityMode.TransportWithMessageCredential`` with
    ``BasicHttpMessageCredentialType.UserName`` (a UsernameToken over https): Mono 6.8's WCF
    has no message security and fails before sending anything. Pinned, so that a Mono that
    can do it makes this test fail and the README gets updated."""
    run = run_csharp(csharp_demos, "Wcf", by_name(secured_tls_server.url), images_file,
                     tls_material.ca_cert, "--user", "dora", "--password", PASSWORDS["dora"],
                     "--auth", "wsse")
    assert run.returncode == 5, run.explain()
    assert run.first("ERROR") == (
        "unsupported NotImplementedException: The method or operation is not implemented. "
        "at System.ServiceModel.Channels.SecurityBindingElement.CanBuildChannelFactory"), \
        run.explain()


@pytest.mark.parametrize("flavour", ["Asmx", "Wcf"])
def test_csharp_without_the_ca_fails_as_transport(csharp_demos: Path, secured_tls_server: Any,
                                                  images_file: Path, flavour: str) -> None:
    run = run_csharp(csharp_demos, flavour, by_name(secured_tls_server.url), images_file, None,
                     "--user", "alice", "--password", PASSWORDS["alice"])
    assert_clean_failure(run, "transport", within_s=60)
    assert "TrustFailure" in (run.first("ERROR") or ""), run.explain()


def test_csharp_checks_the_host_name(csharp_demos: Path, secured_tls_server: Any,
                                     tls_material: TlsMaterial, images_file: Path) -> None:
    """The right CA, but the URL names 127.0.0.1: the certificate has that IP in its
    subjectAltName, yet Mono's btls compares the host as a DNS name and refuses. Proof that
    the name is checked; the reason the tests (and users) call Mono by host name."""
    run = run_csharp(csharp_demos, "Asmx", secured_tls_server.url, images_file,
                     tls_material.ca_cert, "--user", "alice", "--password", PASSWORDS["alice"])
    assert_clean_failure(run, "transport", within_s=60)
    assert "TrustFailure" in (run.first("ERROR") or ""), run.explain()


class _Impostor:
    """An https server whose certificate comes from another CA with the same name as the test
    CA ("tfsoap test CA"), for localhost: only a real signature check tells them apart. It
    answers every POST with a SOAP-looking 200, so a client that trusted it would not fail."""

    def __init__(self, material: TlsMaterial) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                body = b"<x/>"
                self.send_response(200)
                self.send_header("Content-Type", "text/xml")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(material.server_cert, material.server_key)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._server.timeout = 5
        self.url = f"https://localhost:{self._server.server_address[1]}/"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> _Impostor:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


@pytest.mark.parametrize("flavour", ["Asmx", "Wcf"])
def test_csharp_refuses_a_server_from_a_same_named_ca(csharp_demos: Path,
                                                      tls_material: TlsMaterial,
                                                      images_file: Path, flavour: str,
                                                      tmp_path: Path) -> None:
    impostor = make_tls_material(tmp_path / "impostor")
    assert impostor.ca_cert.read_bytes() != tls_material.ca_cert.read_bytes()
    with _Impostor(impostor) as server:
        run = run_csharp(csharp_demos, flavour, server.url, images_file, tls_material.ca_cert,
                         "--user", "alice", "--password", PASSWORDS["alice"])
        # the same program trusts the impostor when given the impostor's own CA
        control = run_csharp(csharp_demos, flavour, server.url, images_file, impostor.ca_cert,
                             "--user", "alice", "--password", PASSWORDS["alice"])
    assert_clean_failure(run, "transport", within_s=60)
    assert "TrustFailure" in (run.first("ERROR") or ""), run.explain()
    assert "TrustFailure" not in control.stdout, control.explain()
    assert control.returncode != 0, control.explain()  # <x/> is no SOAP answer
