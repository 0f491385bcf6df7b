"""Mutual TLS from the generated Java and C# clients, through a real nginx that verifies the
client certificate and passes its subject to tfsoap (``tests/deploy/mtls_stack.py``, the
stack ``tests/deploy/test_nginx_mtls.py`` runs with the Python client).

The certificate's subject maps to a user (``cert_subjects``) with role ``scoring``, which may
call ``digits`` and not ``affine`` (``model_roles``). Each client presents the certificate the
way docs/security.md tells its users to, with no password:

- Java (the JAX-WS stubs): a PKCS#12 keystore with the certificate and its key, and a truststore
  with the test CA, through the ``javax.net.ssl.keyStore``/``trustStore`` system properties;
- C# (the ASMX proxy from Mono's ``wsdl``): an ``X509Certificate2`` read from a PKCS#12 file in
  the proxy's ``ClientCertificates``, the CA trusted with ``--ca`` (``TlsTrust``).

The mapped certificate lists and predicts ``digits`` like the Python client, and Predict on
``affine`` is the typed ``Client.NotAuthorized`` fault; a certificate from the same CA whose
subject maps to nobody is the typed ``Client.AuthenticationFailed`` fault.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12

from ..deploy.mtls_stack import mtls_stack, require_nginx
from ..deploy.processes import Nginx
from ..soap_server.security.certs import TlsMaterial, make_tls_material
from .toolchains import (
    COMMITTED_WSDL,
    JAVA,
    MONO,
    DemoRun,
    assert_same_predictions,
    build_csharp,
    build_java,
    by_name,
    csharp_command,
    java_command,
    java_truststore,
    run_program,
)

MAPPED_CN = "scoring-batch"
UNMAPPED_CN = "stranger"
OTHER_CA = "other-ca"
_NO_CREDENTIALS = "reason=no credentials"
#: Protects the PKCS#12 files (keystores, truststore); not a tfsoap credential.
STORE_PASSWORD = "tfsoap-mtls-test"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsMaterial:
    return make_tls_material(tmp_path_factory.mktemp("interop-mtls"), MAPPED_CN,
                             other_cns=(UNMAPPED_CN,))


@pytest.fixture(scope="module")
def mtls(server: Any, test_store: Path, tls: TlsMaterial,
         tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Nginx]]:
    """``server`` first: it puts the demo model ``digits`` into the store."""
    require_nginx()
    from soap_server.security import User

    users = {MAPPED_CN: User(MAPPED_CN, frozenset({"scoring"}),
                             cert_subjects=(f"CN={MAPPED_CN},O=tfsoap tests",))}
    with mtls_stack(tmp_path_factory.mktemp("interop-mtls-stack"), test_store, tls, users,
                    threads=16, max_body_bytes=4 * 1024 * 1024, request_timeout_s=20.0,
                    model_roles="digits=scoring;affine=ops") as running:
        yield running


def client_pkcs12(cert_path: Path, key_path: Path, name: str, path: Path,
                  legacy: bool = True) -> Path:
    """A client certificate and its key as a password-protected PKCS#12 file. ``legacy``:
    PBES1 with 3DES and a SHA-1 MAC (as ``openssl pkcs12 -export -legacy``), which both the JDK
    and Mono 6.8 read; else the ``cryptography`` package's best (PBES2 with AES, as openssl 3's
    default), which Mono 6.8 cannot read (``test_csharp_cannot_read_a_pbes2_pkcs12``)."""
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)  # what certs.py makes
    encryption: serialization.KeySerializationEncryption = (
        serialization.PrivateFormat.PKCS12.encryption_builder()
        .kdf_rounds(2048)
        .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
        .hmac_hash(hashes.SHA1())
        .build(STORE_PASSWORD.encode())) if legacy else (
        serialization.BestAvailableEncryption(STORE_PASSWORD.encode()))
    path.write_bytes(pkcs12.serialize_key_and_certificates(
        name.encode(), key, cert, None, encryption))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def keystores(tls: TlsMaterial, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """PKCS#12 files by CN, and ``OTHER_CA``: the mapped CN's name from another CA."""
    folder = tmp_path_factory.mktemp("interop-keystores")
    pairs = {MAPPED_CN: (tls.client_cert, tls.client_key), UNMAPPED_CN: tls.others[UNMAPPED_CN],
             OTHER_CA: (tls.unknown_client_cert, tls.unknown_client_key)}
    return {name: client_pkcs12(cert, key, name, folder / f"{name}.p12")
            for name, (cert, key) in pairs.items()}


def assert_mapped_run(run: DemoRun, python_answers: Any, caplog: pytest.LogCaptureFixture,
                      ) -> None:
    """What the mapped certificate's demo run shows: only ``digits`` listed, the Python
    client's predictions, Predict on ``affine`` refused as the typed fault, and the server's
    request lines naming the certificate's user."""
    assert run.returncode == 0, run.explain()
    assert "DONE" in run.lines
    models = (run.first("MODELS") or "").split()
    assert "digits" in models and "affine" not in models, run.explain()
    assert_same_predictions(run, python_answers)
    assert run.fault()[0] == "Client.NotAuthorized", run.explain()
    predicts = [r.getMessage() for r in caplog.records if "op=Predict" in r.getMessage()]
    assert predicts and all(f"user={MAPPED_CN}" in m for m in predicts), predicts


def last_status(nginx: Nginx) -> int:
    """The HTTP status of the last request in nginx's access log (combined format)."""
    last = nginx.access_log.read_text().splitlines()[-1]
    return int(last.split('"')[2].split()[0])


def assert_refused_without_certificate(run: DemoRun, nginx: Nginx, status: int,
                                       caplog: pytest.LogCaptureFixture) -> None:
    """A clean transport error, and what refused the call: tfsoap's 401 challenge for a
    request without credentials (nginx let the handshake through without a certificate:
    ``ssl_verify_client optional``), or nginx's own 400 for a certificate it could not
    verify (tfsoap never saw that request)."""
    assert run.returncode == 3, run.explain()
    assert (run.first("ERROR") or "").startswith("transport "), run.explain()
    assert "MODELS" not in run.lines
    assert last_status(nginx) == status
    assert (_NO_CREDENTIALS in caplog.text) == (status == 401), caplog.text


# --- Java --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def java_classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    JAVA.require()
    return build_java(str(COMMITTED_WSDL), tmp_path_factory.mktemp("java-mtls"))


@pytest.fixture(scope="module")
def truststore(tls: TlsMaterial, tmp_path_factory: pytest.TempPathFactory) -> Path:
    JAVA.require()
    return java_truststore(tls.ca_cert, tmp_path_factory.mktemp("mtls-truststore"),
                           STORE_PASSWORD)


def run_java(classes: Path, nginx: Nginx, images: Path, truststore: Path,
             keystore: Path | None, *extra: str) -> DemoRun:
    """The Java demo through nginx, with ``keystore`` as its client certificate."""
    command = java_command(classes, f"https://127.0.0.1:{nginx.port}/", str(COMMITTED_WSDL),
                           images, *extra)
    props = [f"-Djavax.net.ssl.trustStore={truststore}",
             f"-Djavax.net.ssl.trustStorePassword={STORE_PASSWORD}"]
    if keystore is not None:
        props += [f"-Djavax.net.ssl.keyStore={keystore}", "-Djavax.net.ssl.keyStoreType=PKCS12",
                  f"-Djavax.net.ssl.keyStorePassword={STORE_PASSWORD}"]
    command[1:1] = props
    return run_program(command)


def test_java_mapped_certificate_is_its_user(java_classes: Path, mtls: Any, truststore: Path,
                                             keystores: dict[str, Path], images_file: Path,
                                             python_answers: Any,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="soap_server.dataplane")
    run = run_java(java_classes, mtls[1], images_file, truststore, keystores[MAPPED_CN],
                   "--fault-model", "affine")
    assert_mapped_run(run, python_answers, caplog)


def test_java_unmapped_certificate_fails_to_authenticate(java_classes: Path, mtls: Any,
                                                         truststore: Path,
                                                         keystores: dict[str, Path],
                                                         images_file: Path) -> None:
    run = run_java(java_classes, mtls[1], images_file, truststore, keystores[UNMAPPED_CN])
    assert run.returncode == 4, run.explain()
    assert (run.first("ERROR") or "").startswith("fault Client.AuthenticationFailed "), \
        run.explain()
    assert "MODELS" not in run.lines  # refused at the first call


# --- C# (Mono, ASMX proxy) ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def csharp_demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    MONO.require()
    return build_csharp(str(COMMITTED_WSDL), tmp_path_factory.mktemp("csharp-mtls"))


def run_csharp(build_dir: Path, nginx: Nginx, images: Path, tls: TlsMaterial,
               keystore: Path | None, *extra: str) -> DemoRun:
    """The ASMX demo through nginx (by host name: ``by_name``), trusting the test CA."""
    cert = ([] if keystore is None
            else ["--client-cert", str(keystore), "--client-cert-password", STORE_PASSWORD])
    return run_program(csharp_command(
        build_dir, "Asmx", by_name(f"https://127.0.0.1:{nginx.port}/"), images,
        "--timeout-ms", "30000", "--ca", str(tls.ca_cert), *cert, *extra))


def test_csharp_mapped_certificate_is_its_user(csharp_demos: Path, mtls: Any, tls: TlsMaterial,
                                               keystores: dict[str, Path], images_file: Path,
                                               python_answers: Any,
                                               caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="soap_server.dataplane")
    run = run_csharp(csharp_demos, mtls[1], images_file, tls, keystores[MAPPED_CN],
                     "--fault-model", "affine")
    assert_mapped_run(run, python_answers, caplog)
    assert run.first("FAULTCODE") == "Client.NotAuthorized", run.explain()


def test_csharp_unmapped_certificate_fails_to_authenticate(csharp_demos: Path, mtls: Any,
                                                           tls: TlsMaterial,
                                                           keystores: dict[str, Path],
                                                           images_file: Path) -> None:
    run = run_csharp(csharp_demos, mtls[1], images_file, tls, keystores[UNMAPPED_CN])
    assert run.returncode == 4, run.explain()
    assert (run.first("ERROR") or "").startswith("fault Client.AuthenticationFailed "), \
        run.explain()
    assert "MODELS" not in run.lines



@pytest.mark.parametrize("keystore", [None, OTHER_CA], ids=["no-certificate", "other-ca"])
def test_java_without_a_usable_certificate_is_challenged(
        java_classes: Path, mtls: Any, truststore: Path, keystores: dict[str, Path],
        images_file: Path, caplog: pytest.LogCaptureFixture, keystore: str | None) -> None:
    """No keystore, or one whose certificate another CA signed: the JDK's key manager offers
    only a certificate from a CA that nginx's CertificateRequest names, so neither run sends
    one, and both get tfsoap's 401 challenge, reported as a transport error."""
    caplog.set_level(logging.INFO, logger="soap_server.security")
    run = run_java(java_classes, mtls[1], images_file, truststore,
                   None if keystore is None else keystores[keystore])
    assert_refused_without_certificate(run, mtls[1], 401, caplog)
    assert "HTTP status code 401" in (run.first("ERROR") or ""), run.explain()


@pytest.mark.parametrize("keystore,status", [(None, 401), (OTHER_CA, 400)],
                         ids=["no-certificate", "other-ca"])
def test_csharp_without_a_usable_certificate_is_refused(
        csharp_demos: Path, mtls: Any, tls: TlsMaterial, keystores: dict[str, Path],
        images_file: Path, caplog: pytest.LogCaptureFixture, keystore: str | None,
        status: int) -> None:
    """No certificate: tfsoap's 401 challenge. Unlike the JDK, Mono (btls) sends the
    certificate from another CA although nginx did not ask for that CA, and nginx refuses it
    with its 400 ("The SSL certificate error"). The ASMX proxy reports both as a
    ``WebException`` (with Mono's unformatted "The request failed with HTTP status {0}: {1}.",
    hence the status read from nginx's access log)."""
    caplog.set_level(logging.INFO, logger="soap_server.security")
    run = run_csharp(csharp_demos, mtls[1], images_file, tls,
                     None if keystore is None else keystores[keystore])
    assert_refused_without_certificate(run, mtls[1], status, caplog)
    assert "WebException" in (run.first("ERROR") or ""), run.explain()


def test_csharp_cannot_read_a_pbes2_pkcs12(csharp_demos: Path, mtls: Any, tls: TlsMaterial,
                                          images_file: Path, tmp_path: Path) -> None:
    """The mapped certificate in a PKCS#12 file in the modern form (PBES2 with AES, openssl
    3's default without ``-legacy``): Mono 6.8's ``X509Certificate2`` refuses to read it, before
    any call. Pinned, so that a Mono that can makes this test fail and the docs get updated."""
    modern = client_pkcs12(tls.client_cert, tls.client_key, MAPPED_CN, tmp_path / "aes.p12",
                           legacy=False)
    run = run_csharp(csharp_demos, mtls[1], images_file, tls, modern)
    assert run.returncode == 2, run.explain()
    assert run.first("ERROR") == "input Unable to decode certificate.", run.explain()
