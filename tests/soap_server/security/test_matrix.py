"""The authentication and authorization matrix against a real server over plain HTTP, each
failure followed by a good call: no credentials, wrong password, unknown user, Basic,
UsernameToken text and digest, a replayed nonce, a stale Created, a nonce that is not base64,
a model the user may not call, the lockout; and nothing secret in any log line or fault."""

from __future__ import annotations

import base64
import datetime
import hashlib
import logging
import os
import time
from typing import Any

import numpy as np
import pytest
from zeep.wsse.username import UsernameToken

import tfsoap_client as tc

from ..raw import TNS, parse_fault, post, predict_xml
from .conftest import PASSWORDS

X = np.array([[1, 2, 3, 4]], np.float32)
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DIGEST = ("http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0"
          "#PasswordDigest")


def connect(srv: Any, user: str | None = None, auth: str = "basic",
            password: str | None = None) -> tc.PredictClient:
    if user is None:
        return tc.PredictClient(srv.url, timeout=30)
    return tc.PredictClient(srv.url, timeout=30, username=user, auth=auth,
                            password=PASSWORDS.get(user, "x") if password is None else password)


def good_call(srv: Any) -> None:
    """Every failure is followed by this: the server still serves the right user."""
    out = connect(srv, "alice").predict("affine", {"x": X})
    assert out["y"].shape == (1, 3)


def test_no_credentials_get_401_with_a_basic_challenge_and_a_fault(secured: Any) -> None:
    answer = post(secured.url, predict_xml("affine"))
    assert answer.status == 401
    assert answer.headers["www-authenticate"].startswith('Basic realm="tfsoap"')
    fault = parse_fault(answer)
    assert fault.code == "Client.AuthenticationFailed" and fault.request_id
    with pytest.raises(tc.AuthenticationFailedError):
        connect(secured).predict("affine", {"x": X})
    good_call(secured)


def test_health_probes_and_wsdl_stay_open(secured: Any) -> None:
    import requests

    assert requests.get(secured.url + "healthz", timeout=10).status_code == 200
    assert requests.get(secured.url + "readyz", timeout=10).status_code == 200
    wsdl = requests.get(secured.url + "?wsdl", timeout=10)
    assert wsdl.status_code == 200 and b"PredictService" in wsdl.content


@pytest.mark.parametrize("auth", ["basic", "wsse"])
def test_wrong_password_and_unknown_user_get_the_same_fault(secured: Any, auth: str) -> None:
    with pytest.raises(tc.AuthenticationFailedError) as wrong:
        connect(secured, "alice", auth, password="not-the-password").predict("affine", {"x": X})
    with pytest.raises(tc.AuthenticationFailedError) as unknown:
        connect(secured, "mallory", auth, password="whatever").predict("affine", {"x": X})
    assert wrong.value.message == unknown.value.message == "authentication failed"
    assert wrong.value.request_id and unknown.value.request_id
    good_call(secured)


@pytest.mark.parametrize("user,auth", [("alice", "basic"), ("alice", "wsse"),
                                       ("dora", "basic"), ("dora", "wsse"),
                                       ("dora", "wsse-digest")])
def test_right_password_predicts(secured: Any, user: str, auth: str) -> None:
    client = connect(secured, user, auth)
    for _ in range(2):  # the second call takes the verified-password cache (basic, wsse)
        out = client.predict("affine", {"x": X})
        assert out["y"].shape == (1, 3)
    assert "scalar" not in {m.name for m in client.list_models()}  # role ops only


def test_digest_needs_a_user_with_a_digest_secret(secured: Any) -> None:
    with pytest.raises(tc.AuthenticationFailedError):
        connect(secured, "alice", "wsse-digest").predict("affine", {"x": X})
    good_call(secured)


def test_replayed_nonce_is_refused(secured: Any) -> None:
    client = connect(secured)
    client.cast_inputs = False  # one SOAP call per predict: no GetModelMetadata first
    nonce = os.urandom(16).hex()  # zeep takes the nonce as text and sends its base64
    created = datetime.datetime.now(datetime.UTC)
    for attempt in range(2):
        client.zeep_client.wsse = UsernameToken("dora", PASSWORDS["dora"], use_digest=True,
                                                nonce=nonce, created=created,
                                                zulu_timestamp=True)
        if attempt == 0:
            assert client.predict("affine", {"x": X})["y"].shape == (1, 3)
        else:
            with pytest.raises(tc.AuthenticationFailedError):
                client.predict("affine", {"x": X})
    good_call(secured)


@pytest.mark.parametrize("age_s", [3600, -600])
def test_stale_or_future_created_is_refused(secured: Any, age_s: int) -> None:
    client = connect(secured)
    client.zeep_client.wsse = UsernameToken(
        "dora", PASSWORDS["dora"], use_digest=True, zulu_timestamp=True,
        created=datetime.datetime.now(datetime.UTC) - datetime.timedelta(seconds=age_s))
    with pytest.raises(tc.AuthenticationFailedError):
        client.predict("affine", {"x": X})
    good_call(secured)


def _digest_envelope(nonce_text: str, nonce_bytes: bytes, created: str, password: str,
                     must_understand: bool = False) -> bytes:
    digest = base64.b64encode(hashlib.sha1(nonce_bytes + created.encode() +
                                           password.encode()).digest()).decode()
    mu = ' soapenv:mustUnderstand="1"' if must_understand else ""
    body = predict_xml("affine").decode()
    header = (f'<soapenv:Header><wsse:Security xmlns:wsse="{WSSE}" xmlns:wsu="{WSU}"{mu}>'
              f"<wsse:UsernameToken><wsse:Username>dora</wsse:Username>"
              f'<wsse:Password Type="{DIGEST}">{digest}</wsse:Password>'
              f"<wsse:Nonce>{nonce_text}</wsse:Nonce><wsu:Created>{created}</wsu:Created>"
              "</wsse:UsernameToken></wsse:Security></soapenv:Header>")
    return body.replace("<soapenv:Body>", header + "<soapenv:Body>", 1).encode()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def test_digest_with_a_nonce_not_in_base64_is_refused(secured: Any) -> None:
    raw_nonce = "not base64 at all!"
    body = _digest_envelope(raw_nonce, raw_nonce.encode(), _now(), PASSWORDS["dora"])
    answer = post(secured.url, body)
    assert answer.status == 500
    assert parse_fault(answer).code == "Client.AuthenticationFailed"
    good_call(secured)


def test_must_understand_security_header_is_honoured(secured: Any) -> None:
    nonce = os.urandom(16)
    body = _digest_envelope(base64.b64encode(nonce).decode(), nonce, _now(),
                            PASSWORDS["dora"], must_understand=True)
    answer = post(secured.url, body)
    assert answer.status == 200, answer.body[:400]
    assert f"<PredictResponse xmlns=\"{TNS}\">".encode() in answer.body


def test_model_the_user_may_not_call_is_not_authorized(secured: Any) -> None:
    alice = connect(secured, "alice")
    with pytest.raises(tc.NotAuthorizedError) as denied:
        alice.predict("scalar", {"x": np.float32(1)})
    assert denied.value.code == "Client.NotAuthorized" and denied.value.request_id
    with pytest.raises(tc.NotAuthorizedError):
        alice.metadata("scalar")
    names = {m.name for m in alice.list_models()}
    assert "affine" in names and "scalar" not in names and "affine_batched" in names
    with pytest.raises(tc.NotAuthorizedError):
        alice.status()
    olga = connect(secured, "olga")
    assert olga.status().ready
    assert "affine" not in {m.name for m in olga.list_models()}
    good_call(secured)


def test_lockout_after_failures_from_one_address(start_secured: Any) -> None:
    srv = start_secured(lockout_failures=3, lockout_window_s=2.0)
    for _ in range(3):
        with pytest.raises(tc.AuthenticationFailedError):
            connect(srv, "alice", password="guess").predict("affine", {"x": X})
    with pytest.raises(tc.AuthenticationFailedError):  # locked: the right password fails too
        connect(srv, "alice").predict("affine", {"x": X})
    deadline = time.monotonic() + 10
    while True:  # the window passes; bounded wait
        time.sleep(0.5)
        try:
            good_call(srv)
            break
        except tc.AuthenticationFailedError:
            assert time.monotonic() < deadline, "the lockout did not end"


def test_nothing_secret_in_logs_or_faults(secured: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="soap_server")  # the server's log, all of it
    faults = []
    for user, auth, password in [("alice", "basic", "wrong-Secret-1"),
                                 ("alice", "wsse", "wrong-Secret-2"),
                                 ("dora", "wsse-digest", "wrong-Secret-3"),
                                 ("alice-Pw-7341", "basic", "x")]:  # a password as user name
        with pytest.raises(tc.AuthenticationFailedError) as exc:
            connect(secured, user, auth, password=password).predict("affine", {"x": X})
        faults.append(str(exc.value))
    for user, auth in [("alice", "basic"), ("alice", "wsse"), ("dora", "wsse-digest")]:
        connect(secured, user, auth).predict("affine", {"x": X})
    text = caplog.text + "\n".join(faults)
    assert "authentication failed: user=\"alice\" peer=127.0.0.1" in caplog.text
    secrets = [*PASSWORDS.values(), "wrong-Secret-1", "wrong-Secret-2", "wrong-Secret-3"]
    leaked = [s for s in secrets if s in text and s != "alice-Pw-7341"]
    assert not leaked
    # the one secret that was typed as a user name is logged as such (it was sent as one)
    assert all("alice-Pw-7341" not in f for f in faults)


def test_metrics_behind_a_role_and_probes_open(start_secured: Any) -> None:
    import requests

    srv = start_secured(metrics_role="ops")
    assert requests.get(srv.url + "healthz", timeout=10).status_code == 200
    anonymous = requests.get(srv.url + "metrics", timeout=10)
    assert anonymous.status_code == 401 and "Basic" in anonymous.headers["WWW-Authenticate"]
    alice = requests.get(srv.url + "metrics", timeout=10, auth=("alice", PASSWORDS["alice"]))
    assert alice.status_code == 403 and b"Client.NotAuthorized" in alice.content
    olga = requests.get(srv.url + "metrics", timeout=10, auth=("olga", PASSWORDS["olga"]))
    assert olga.status_code == 200 and b"tfsoap_" in olga.content


def test_admin_reload_rereads_the_users_file(start_secured: Any, users_file: Any,
                                             tmp_path: Any) -> None:
    import requests

    from soap_server.security import User, hash_password, load_users, save_users

    copy = tmp_path / "users.toml"
    copy.write_bytes(users_file.read_bytes())
    copy.chmod(0o600)
    srv = start_secured(users_file=str(copy))
    with pytest.raises(tc.AuthenticationFailedError):
        connect(srv, "newcomer", password="newcomer-Pw-1").predict("affine", {"x": X})
    users = load_users(copy)
    users["newcomer"] = User("newcomer", frozenset({"scoring"}), hash_password("newcomer-Pw-1"))
    save_users(copy, users)
    answer = requests.post(srv.url + "admin/reload", timeout=60)
    assert answer.status_code == 200 and answer.json()["reloaded"]
    out = connect(srv, "newcomer", password="newcomer-Pw-1").predict("affine", {"x": X})
    assert out["y"].shape == (1, 3)
    copy.write_text("not toml [")  # a broken file keeps the users already read
    assert requests.post(srv.url + "admin/reload", timeout=60).status_code == 200
    good_call(srv)
