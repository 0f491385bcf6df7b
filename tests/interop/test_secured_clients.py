"""Secured calls from the generated Java client: a server with TLS (the test CA) and a users
file; the JAX-WS stubs call it over https with a truststore made by ``keytool`` from the CA,
authenticated by HTTP Basic (``BindingProvider.USERNAME_PROPERTY``) and by WS-Security
UsernameToken (``clients/java/src/UsernameTokenHandler.java``, text and digest), and a wrong
password comes back as the typed ``ServiceFault`` with ``Client.AuthenticationFailed``."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from ..soap_server.security.certs import TlsMaterial, make_tls_material
from .toolchains import (
    COMMITTED_WSDL,
    JAVA,
    DemoRun,
    assert_same_predictions,
    build_java,
    java_command,
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
    """A PKCS#12 truststore holding the test CA, made by ``keytool`` as the README says."""
    JAVA.require()
    path = tmp_path_factory.mktemp("truststore") / "truststore.p12"
    subprocess.run(["keytool", "-importcert", "-noprompt", "-alias", "tfsoap-test-ca",
                    "-file", str(tls_material.ca_cert), "-keystore", str(path),
                    "-storetype", "PKCS12", "-storepass", STORE_PASSWORD],
                   check=True, capture_output=True, timeout=60)
    return path


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
