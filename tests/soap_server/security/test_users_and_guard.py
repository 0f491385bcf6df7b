"""The users file, ``tfsoap users``, reload, start-up refusals and warnings, and the guard's
rules that need no server (passwords over plain HTTP, the fast path with a Security header)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from soap_server.cli import main
from soap_server.security import (
    Guard,
    UsersFileError,
    UserStore,
    load_users,
    security_warnings,
    verify_password,
)
from soap_server.settings import Settings, SettingsError, from_file

from .conftest import PASSWORDS


def _add(users: Path, name: str, password: str, monkeypatch: pytest.MonkeyPatch,
         *extra: str) -> int:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO(password + "\n"))
    return main(["users", "add", name, "--users", str(users), "--password-stdin", *extra])


def test_users_cli_adds_lists_and_removes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    users = tmp_path / "users.toml"
    assert _add(users, "carol", "carol-Secret-1", monkeypatch, "--role", "scoring") == 0
    assert _add(users, "dan", "dan-Secret-2", monkeypatch, "--role", "ops", "--digest") == 0
    assert users.stat().st_mode & 0o777 == 0o600
    loaded = load_users(users)
    assert verify_password("carol-Secret-1", loaded["carol"].password_hash)
    assert "carol-Secret-1" not in users.read_text()
    assert loaded["dan"].digest_secret == "dan-Secret-2" and loaded["dan"].roles == {"ops"}
    with pytest.raises(SystemExit) as exists:
        _add(users, "carol", "again", monkeypatch)
    assert exists.value.code == 2
    capsys.readouterr()
    assert main(["users", "list", "--users", str(users)]) == 0
    listing = capsys.readouterr().out
    assert "carol\tpassword_hash\tscoring" in listing and "dan\tdigest_secret\tops" in listing
    assert "Secret" not in listing
    assert main(["users", "remove", "carol", "--users", str(users)]) == 0
    assert set(load_users(users)) == {"dan"}


def test_malformed_or_open_users_file_stops_the_server_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[users.eve]\nroles = 'admin'\npassword_hash = 'x'\n")
    run = subprocess.run([sys.executable, "-m", "soap_server.cli", "serve", "--port", "0",
                          "--users-file", str(bad)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].startswith("tfsoap: error: users file")
    secret = tmp_path / "open.toml"
    secret.write_text('[users.eve]\nroles = []\ndigest_secret = "eve-Secret"\n')
    secret.chmod(0o644)
    with pytest.raises(UsersFileError, match="chmod 600"):
        load_users(secret)
    with pytest.raises(UsersFileError):
        UserStore(tmp_path / "missing.toml")


def test_reload_picks_up_changes_and_keeps_users_on_a_broken_file(
        users_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "users.toml"
    copy.write_bytes(users_file.read_bytes())
    copy.chmod(0o600)
    guard = Guard(UserStore(copy), Settings(allow_password_text_over_http=True))
    basic = "Basic " + __import__("base64").b64encode(b"alice:" +
                                                       PASSWORDS["alice"].encode()).decode()
    assert guard.authenticate(basic, None, "10.0.0.1", False).name == "alice"
    assert main(["users", "remove", "alice", "--users", str(copy)]) == 0
    guard.reload()
    from soap_server.outcomes import AuthenticationFailedError

    with pytest.raises(AuthenticationFailedError):  # the cached verification is gone too
        guard.authenticate(basic, None, "10.0.0.1", False)
    copy.write_text("not toml [")
    with pytest.raises(UsersFileError):
        guard.reload()
    assert guard.users.get("olga") is not None


def test_passwords_over_plain_http_are_refused_unless_allowed(users_file: Path) -> None:
    import base64

    from soap_server.outcomes import AuthenticationFailedError

    basic = "Basic " + base64.b64encode(b"alice:" + PASSWORDS["alice"].encode()).decode()
    strict = Guard(UserStore(users_file), Settings())
    with pytest.raises(AuthenticationFailedError):
        strict.authenticate(basic, None, "10.0.0.2", secure=False)
    assert strict.authenticate(basic, None, "10.0.0.2", secure=True).roles == {"scoring"}


def test_model_roles_from_the_settings_file(tmp_path: Path) -> None:
    config = tmp_path / "tfsoap.toml"
    config.write_text('users_file = "u.toml"\n[models.digits]\nroles = ["scoring", "ops"]\n'
                      '[models.affine]\nroles = ["ops"]\n')
    values = from_file(config)
    assert values["model_roles"] == "digits=scoring|ops;affine=ops"
    from soap_server.security import parse_model_roles

    assert parse_model_roles(values["model_roles"])["digits"] == {"scoring", "ops"}
    config.write_text('[models.digits]\nroles = "ops"\n')
    with pytest.raises(SettingsError):
        from_file(config)


def test_security_warnings_say_what_is_open() -> None:
    assert any("anonymously" in w for w in security_warnings(Settings()))
    assert len(security_warnings(Settings())) == 1
    open_net = security_warnings(Settings(host="0.0.0.0"))
    assert any("without TLS" in w for w in open_net)
    assert security_warnings(Settings(users_file="u.toml")) == []


def test_fast_path_takes_a_predict_with_security_and_addressing_headers() -> None:
    from soap_server.soap import PredictCall, PredictFastPath

    body = (b'<e:Envelope xmlns:e="http://schemas.xmlsoap.org/soap/envelope/">'
            b'<e:Header><wsa:Action xmlns:wsa="http://www.w3.org/2005/08/addressing">a'
            b'</wsa:Action><s:Security e:mustUnderstand="1" xmlns:s="http://docs.oasis-open.org'
            b'/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"/></e:Header><e:Body>'
            b'<Predict xmlns="urn:tfsoap:predict:v1"><model_name>m</model_name><inputs>'
            b'<Tensor><name>x</name><dtype>DT_FLOAT</dtype><shape><long>1</long></shape>'
            b'<float_val><float>1</float></float_val></Tensor></inputs></Predict>'
            b'</e:Body></e:Envelope>')
    fast = PredictFastPath(None, {"resolve_entities": False})  # type: ignore[arg-type]
    assert isinstance(fast.decode(body, "text/xml", "r1"), PredictCall)
    other = body.replace(b"<e:Header>", b"<e:Header><o:Other xmlns:o='urn:o'/>")
    assert isinstance(fast.decode(other, "text/xml", "r2"), PredictCall)  # ignored, as SOAP says
    must = body.replace(b"<e:Header>", b"<e:Header><o:Other e:mustUnderstand='1' xmlns:o='urn:o'/>")
    fault = fast.decode(must, "text/xml", "r3")
    assert isinstance(fault, bytes) and b"MustUnderstand" in fault
