"""Test TLS material made with the ``cryptography`` package: a CA, a server certificate for
127.0.0.1/localhost and client certificates, keys written as PKCS#8 PEM (unencrypted), which
granian's rustls reads. For the TLS and mutual-TLS tests::

    material = make_tls_material(tmp_path)
    Settings(tls_cert=str(material.server_cert), tls_key=str(material.server_key),
             tls_client_ca=str(material.ca_cert), tls_client_auth="required", ...)
    PredictClient(url, verify=str(material.ca_cert),
                  cert=(str(material.client_cert), str(material.client_key)))

``unknown_client_cert``/``unknown_client_key`` are signed by another CA (a client the server
must refuse).
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class TlsMaterial:
    ca_cert: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    unknown_client_cert: Path
    unknown_client_key: Path
    client_cn: str
    others: dict[str, tuple[Path, Path]] = field(default_factory=dict)
    """More client certificates from the same CA: CN -> (certificate, key)."""


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "tfsoap tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return path


def _write_cert(cert: x509.Certificate, path: Path) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


def _ca(cn: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                         False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    return cert, key


def _leaf(cn: str, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey,
          server: bool) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(
                   [ExtendedKeyUsageOID.SERVER_AUTH if server
                    else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   ca_key.public_key()), critical=False))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def make_tls_material(folder: Path, client_cn: str = "alice",
                      other_cns: tuple[str, ...] = ()) -> TlsMaterial:
    """Write a CA, a server certificate (localhost, 127.0.0.1), a client certificate with CN
    ``client_cn``, one more for each of ``other_cns`` and one from an unknown CA into
    ``folder``. Client subjects are ``CN=<cn>,O=tfsoap tests`` (RFC 4514 order)."""
    folder.mkdir(parents=True, exist_ok=True)
    ca, ca_key = _ca("tfsoap test CA")
    server, server_key = _leaf("localhost", ca, ca_key, server=True)
    client, client_key = _leaf(client_cn, ca, ca_key, server=False)
    other_ca, other_key = _ca("unknown CA")
    stranger, stranger_key = _leaf(client_cn, other_ca, other_key, server=False)
    others = {}
    for i, cn in enumerate(other_cns):
        cert, key = _leaf(cn, ca, ca_key, server=False)
        others[cn] = (_write_cert(cert, folder / f"client{i}.pem"),
                      _write_key(key, folder / f"client{i}.key"))
    return TlsMaterial(
        ca_cert=_write_cert(ca, folder / "ca.pem"),
        server_cert=_write_cert(server, folder / "server.pem"),
        server_key=_write_key(server_key, folder / "server.key"),
        client_cert=_write_cert(client, folder / "client.pem"),
        client_key=_write_key(client_key, folder / "client.key"),
        unknown_client_cert=_write_cert(stranger, folder / "unknown-client.pem"),
        unknown_client_key=_write_key(stranger_key, folder / "unknown-client.key"),
        client_cn=client_cn, others=others)
