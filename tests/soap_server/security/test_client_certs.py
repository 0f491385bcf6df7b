"""Certificate subjects as user names (``security.client_certs``, ``cert_subjects`` in the users
file, ``tfsoap users add --cert-subject``) and the guard's rules for a certificate that a trusted
proxy vouches for: parsing as nginx writes subjects, the trust check, precedence with passwords,
the lockout, and settings refused at start in one line. The end-to-end run through a real nginx
is ``tests/deploy/test_nginx_mtls.py``."""

from __future__ import annotations

import datetime
import io
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from soap_server.cli import main
from soap_server.outcomes import AuthenticationFailedError
from soap_server.security import (
    BadSubjectError,
    ClientCertificate,
    Guard,
    TrustedProxies,
    User,
    UsersFileError,
    UserStore,
    hash_password,
    load_users,
    save_users,
    subject_key,
)
from soap_server.settings import Settings, SettingsError

PW = "carol-Pw-4410"


def _openssl_subject(name: x509.Name, folder: Path) -> str:
    """The subject as nginx's ``$ssl_client_s_dn`` gives it (OpenSSL's RFC 2253 printer)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    path = folder / "c.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out = subprocess.run(["openssl", "x509", "-in", str(path), "-noout", "-subject", "-nameopt",
                          "RFC2253"], capture_output=True, text=True, check=True, timeout=30)
    return out.stdout.strip().split("=", 1)[1]


def test_subjects_as_openssl_prints_them_parse_and_compare(tmp_path: Path) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COUNTRY_NAME, "GB"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bank, plc"),
                      x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Risk+Ops"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "scoring-bätch"),
                      x509.NameAttribute(NameOID.EMAIL_ADDRESS, "batch@bank.example")])
    printed = _openssl_subject(name, tmp_path)
    assert printed.startswith("emailAddress=batch@bank.example,CN=scoring-b\\C3\\A4tch")
    written = "emailAddress=batch@bank.example,CN=Scoring-Bätch,OU=Risk\\+Ops,O=Bank\\, plc,C=GB"
    assert subject_key(printed) == subject_key(written)  # escapes, UTF-8 bytes, case
    assert subject_key("cn=a,o=b") == subject_key("CN=A,O=B")
    assert subject_key("CN=a,O=b") != subject_key("O=b,CN=a")  # the order of RDNs matters
    assert subject_key("CN=a,O=b") != subject_key("CN=a,O=b,C=GB")  # the whole DN, not the CN
    for bad in ("", "garbage", "CN=a, O=b", "CN=" + "x" * 5000):
        with pytest.raises(BadSubjectError):
            subject_key(bad)


def test_users_file_reads_cert_subjects_and_stays_compatible(tmp_path: Path) -> None:
    path = tmp_path / "users.toml"
    save_users(path, {
        "carol": User("carol", frozenset({"scoring"}), hash_password(PW)),
        "batch": User("batch", frozenset({"scoring"}), cert_subjects=("CN=batch,O=Bank",)),
    })
    loaded = load_users(path)
    assert loaded["batch"].cert_subjects == ("CN=batch,O=Bank",)
    assert loaded["batch"].kind == "cert_subjects" and loaded["carol"].cert_subjects == ()
    store = UserStore(path)
    assert store.by_subject(subject_key("cn=batch,o=bank")) == loaded["batch"]
    assert store.by_subject(subject_key("CN=carol,O=Bank")) is None
    path.write_text(path.read_text() + '\n[users.twin]\nroles = []\n'
                    'cert_subjects = ["CN=BATCH,O=bank"]\n')
    with pytest.raises(UsersFileError, match="names both"):
        load_users(path)
    path.write_text('[users.x]\nroles = []\ncert_subjects = ["not a dn"]\n')
    with pytest.raises(UsersFileError, match="not an RFC 4514 subject"):
        load_users(path)
    path.write_text('[users.x]\nroles = []\n')
    with pytest.raises(UsersFileError, match="or cert_subjects"):
        load_users(path)


def test_users_cli_sets_cert_subjects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    users = tmp_path / "users.toml"
    assert main(["users", "add", "batch", "--role", "scoring", "--no-password",
                 "--cert-subject", "cn=batch,o=Bank", "--users", str(users)]) == 0
    monkeypatch.setattr(sys, "stdin", io.StringIO(PW + "\n"))
    assert main(["users", "add", "carol", "--password-stdin", "--cert-subject",
                 "CN=carol,O=Bank", "--users", str(users)]) == 0
    loaded = load_users(users)
    assert loaded["batch"].cert_subjects == ("CN=batch,O=Bank",) and not loaded["batch"].kind \
        .startswith("password")
    assert loaded["carol"].password_hash and loaded["carol"].cert_subjects == ("CN=carol,O=Bank",)
    capsys.readouterr()
    assert main(["users", "list", "--users", str(users)]) == 0
    assert "batch\tcert_subjects\tscoring\tCN=batch,O=Bank" in capsys.readouterr().out
    for argv in (["twin", "--no-password", "--cert-subject", "CN=BATCH,O=bank"],
                 ["bad", "--no-password", "--cert-subject", "O=a, CN=b"],
                 ["nosubject", "--no-password"]):
        with pytest.raises(SystemExit) as refused:
            main(["users", "add", *argv, "--users", str(users)])
        assert refused.value.code == 2
    assert set(load_users(users)) == {"batch", "carol"}


def test_only_trusted_peers_vouch_for_a_certificate() -> None:
    proxies = TrustedProxies(Settings(trusted_proxies="10.0.0.5,192.168.8.0/24,fd00::/8",
                                      users_file="u.toml"))
    assert proxies.trusts("10.0.0.5") and proxies.trusts("192.168.8.77")
    assert proxies.trusts("::ffff:10.0.0.5") and proxies.trusts("fd00::1")
    assert not proxies.trusts("10.0.0.6") and not proxies.trusts("-")
    good = proxies.certificate("10.0.0.5", "SUCCESS", "CN=a,O=b")
    assert good == ClientCertificate("SUCCESS", "CN=a,O=b")
    assert proxies.certificate("10.0.0.6", "SUCCESS", "CN=a,O=b") is None
    assert proxies.certificate("10.0.0.5", "NONE", None) is None
    assert proxies.certificate("10.0.0.5", None, None) is None
    failed = proxies.certificate("10.0.0.5", "FAILED:certificate has expired", "CN=a,O=b")
    assert failed is not None and failed.verify.startswith("FAILED")


def _guard(tmp_path: Path, **more: object) -> Guard:
    path = tmp_path / "users.toml"
    save_users(path, {
        "carol": User("carol", frozenset({"scoring"}), hash_password(PW),
                      cert_subjects=("CN=carol,O=Bank",)),
        "batch": User("batch", frozenset({"ops"}), cert_subjects=("CN=batch,O=Bank",)),
    })
    return Guard(UserStore(path), Settings(users_file=str(path), trusted_proxies="127.0.0.1",
                                           allow_password_text_over_http=True, **more))


def _basic(name: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()


def test_guard_certificate_rules_and_precedence(tmp_path: Path) -> None:
    guard = _guard(tmp_path)
    ok = ClientCertificate("SUCCESS", "CN=batch,O=Bank")
    caller = guard.authenticate(None, None, "127.0.0.1", False, "r1", ok)
    assert (caller.name, caller.roles, caller.method) == ("batch", {"ops"}, "certificate")
    carol = ClientCertificate("SUCCESS", "CN=carol,O=Bank")
    assert guard.authenticate(_basic("carol", PW), None, "127.0.0.1", False, "r2",
                              carol).name == "carol"
    refused = [
        (None, ClientCertificate("FAILED:unable to verify", "CN=batch,O=Bank")),
        (None, ClientCertificate("SUCCESS", "CN=nobody,O=Bank")),
        (None, ClientCertificate("SUCCESS", "not a dn")),
        (_basic("carol", PW), ClientCertificate("SUCCESS", "CN=nobody,O=Bank")),
        (_basic("carol", PW), ok),  # the certificate is batch, the password carol
        (_basic("carol", "wrong-Pw-1"), carol),
        (_basic("batch", "anything-1"), None),  # a certificate-only user has no password
    ]
    for authorization, certificate in refused:
        with pytest.raises(AuthenticationFailedError) as failed:
            guard.authenticate(authorization, None, "127.0.0.1", False, "r3", certificate)
        assert not failed.value.missing


def test_certificate_failures_do_not_lock_the_proxy_out(tmp_path: Path) -> None:
    guard = _guard(tmp_path, lockout_failures=2)
    for _ in range(5):
        with pytest.raises(AuthenticationFailedError):
            guard.authenticate(None, None, "127.0.0.1", False, "r",
                               ClientCertificate("SUCCESS", "CN=nobody,O=Bank"))
    assert guard.authenticate(None, None, "127.0.0.1", False, "r", ClientCertificate(
        "SUCCESS", "CN=batch,O=Bank")).name == "batch"
    for _ in range(2):  # password failures do count, and lock out passwords, not certificates
        with pytest.raises(AuthenticationFailedError):
            guard.authenticate(_basic("carol", "wrong-Pw-1"), None, "127.0.0.1", False, "r")
    with pytest.raises(AuthenticationFailedError):
        guard.authenticate(_basic("carol", PW), None, "127.0.0.1", False, "r")
    assert guard.authenticate(None, None, "127.0.0.1", False, "r", ClientCertificate(
        "SUCCESS", "CN=batch,O=Bank")).name == "batch"


def test_proxy_settings_are_checked_at_start(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="'10.0.0.0/33' is not an IP address"):
        Settings(trusted_proxies="10.0.0.0/33", users_file="u.toml").checked()
    with pytest.raises(SettingsError, match="needs users_file"):
        Settings(trusted_proxies="10.0.0.5").checked()
    with pytest.raises(SettingsError, match="header name"):
        Settings(client_cert_subject_header="X SSL").checked()
    toml = tmp_path / "tfsoap.toml"
    toml.write_text('users_file = "u.toml"\ntrusted_proxies = ["10.0.0.5", "10.1.0.0/16"]\n')
    from soap_server.settings import load_settings

    assert load_settings(config_file=str(toml), environ={}).trusted_proxies == \
        "10.0.0.5,10.1.0.0/16"
    run = subprocess.run([sys.executable, "-m", "soap_server.cli", "serve", "--port", "0",
                          "--users-file", str(tmp_path / "u.toml"), "--trusted-proxies",
                          "10.0.0.300"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    lines = run.stderr.strip().splitlines()
    assert lines[-1].startswith("tfsoap: error: trusted_proxies: '10.0.0.300'")
    assert "Traceback" not in run.stderr
