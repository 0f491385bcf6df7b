"""Authentication: HTTP Basic (RFC 7617) and WS-Security UsernameToken (OASIS UsernameToken
Profile 1.0/1.1, ``PasswordText`` and ``PasswordDigest``) checked against the users file.

Every failure is the same ``AuthenticationFailedError`` to the caller (no credentials, wrong
password, unknown user, stale or replayed token, locked-out address); the reason goes to the
log with the user name and peer address, never the password or digest. Unknown users cost an
scrypt check too, so timing does not tell which names exist; secrets and digests are compared
with ``hmac.compare_digest``. scrypt runs at most one per core at a time (16 MiB each), and a
verified name and password are remembered for ``auth_cache_s`` as a keyed SHA-256, because
Basic sends the password with every request.

A client certificate verified by a trusted proxy (``client_certs``) is a third credential: its
subject names a user through ``cert_subjects``. Sent with a password, both are checked and must
name the same user (as with Basic and a UsernameToken together); a certificate the proxy did not
verify, or whose subject names no user, fails even when a password comes with it. Certificate
failures do not count towards the lockout (there is no secret to guess, and the peer is the
proxy, which carries every client), and a request with only a certificate is not held back by it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from ..outcomes import AuthenticationFailedError
from ..settings import Settings
from .access import Caller
from .client_certs import BadSubjectError, ClientCertificate, TrustedProxies, subject_key
from .passwords import DUMMY_HASH, verify_password
from .replay import Lockout, NonceCache
from .users import User, UserStore

log = logging.getLogger(__name__)
_MAX_FIELD = 1024
_CACHE_ENTRIES = 10_000


@dataclass(frozen=True)
class UsernameToken:
    """A ``wsse:UsernameToken`` as read from the SOAP header (``soap.wssecurity``).

    ``problem`` is set when the token is there but unusable (a nonce that is not base64, two
    tokens): it fails like a wrong password, with the reason in the log."""

    username: str
    password: str = ""
    digest: bool = False
    nonce: bytes | None = None
    created: str | None = None
    timestamp_created: str | None = None
    timestamp_expires: str | None = None
    problem: str = ""


class _Failed(Exception):
    def __init__(self, reason: str, user: str = "-") -> None:
        super().__init__(reason)
        self.reason = reason
        self.user = user


class Guard:
    """Checks the credentials of a request and answers its ``Caller``."""

    def __init__(self, users: UserStore, settings: Settings,
                 clock: Callable[[], float] = time.time) -> None:
        self.users = users
        self.allow_text_over_http = settings.allow_password_text_over_http
        self.max_age_s = settings.token_max_age_s
        self.skew_s = settings.clock_skew_s
        self.cache_s = settings.auth_cache_s
        self.clock = clock
        self.nonces = NonceCache(settings.nonce_cache_size,
                                 settings.token_max_age_s + settings.clock_skew_s)
        self.lockout = Lockout(settings.lockout_failures, settings.lockout_window_s)
        #: who may vouch for a client certificate (``trusted_proxies``), or None when off
        self.proxies = TrustedProxies(settings) if settings.trusted_proxies else None
        self._scrypt_slots = threading.BoundedSemaphore(max(1, os.cpu_count() or 1))
        self._cache_key = os.urandom(32)
        self._verified: dict[bytes, float] = {}
        self._lock = threading.Lock()

    def reload(self) -> None:
        """Re-read the users file (``UsersFileError`` keeps the old users); forget cached
        verifications, so a changed or removed password stops working at once."""
        self.users.reload()
        with self._lock:
            self._verified.clear()

    def authenticate(self, authorization: str | None, token: UsernameToken | None, peer: str,
                     secure: bool, request_id: str = "-",
                     certificate: ClientCertificate | None = None) -> Caller:
        """The caller of a request with this ``Authorization`` header, UsernameToken and client
        certificate from a trusted proxy (any of them); ``AuthenticationFailedError``
        otherwise. ``secure``: it came over TLS."""
        basic = authorization is not None and authorization[:6].lower() == "basic "
        if not basic and token is None and certificate is None:
            log.info("request_id=%s authentication failed: user=- peer=%s reason=no credentials",
                     request_id, peer)
            raise AuthenticationFailedError(missing=True)
        if (basic or token is not None) and self.lockout.locked(peer):
            log.warning("request_id=%s authentication refused: peer=%s reason=locked out",
                        request_id, peer)
            raise AuthenticationFailedError()
        method, user = "", "-"
        try:
            caller = None
            if certificate is not None:
                method, user = "certificate", certificate.subject
                caller = self._certificate_login(certificate)
            if basic:
                assert authorization is not None
                method = "basic"
                name, password = _basic(authorization)
                user = name
                by_password = self._password_login(name, password, secure, "basic")
                if caller is not None and caller.name != by_password.name:
                    raise _Failed("the certificate and the password name different users", user)
                caller = by_password
            if token is not None:
                method, user = ("wsse-digest" if token.digest else "wsse-text"), token.username
                by_token = self._token_login(token, secure)
                if caller is not None and caller.name != by_token.name:
                    raise _Failed("Basic or the certificate and the UsernameToken name "
                                  "different users", user)
                caller = by_token
            assert caller is not None
            return caller
        except _Failed as failed:
            if method != "certificate":
                self.lockout.failed(peer)
            log.warning("request_id=%s authentication failed: user=%s peer=%s method=%s "
                        "reason=%s", request_id, _printable(failed.user or user), peer, method,
                        failed.reason)
            raise AuthenticationFailedError() from None

    # -- the checks --------------------------------------------------------------------------
    def _certificate_login(self, certificate: ClientCertificate) -> Caller:
        if certificate.verify != "SUCCESS":
            raise _Failed(f"the proxy did not verify the client certificate "
                          f"({_printable(certificate.verify)})", certificate.subject)
        try:
            key = subject_key(certificate.subject)
        except BadSubjectError:
            raise _Failed("the certificate subject is not an RFC 4514 DN",
                          certificate.subject) from None
        user = self.users.by_subject(key)
        if user is None:
            raise _Failed("no user has this certificate subject", certificate.subject)
        return Caller(user.name, user.roles, "certificate")

    def _password_login(self, name: str, password: str, secure: bool, method: str) -> Caller:
        if not secure and not self.allow_text_over_http:
            raise _Failed("password sent over plain HTTP (allow_password_text_over_http is "
                          "off)", name)
        user = self.users.get(name)
        if user is None:
            self._slow_verify(password, DUMMY_HASH)
            raise _Failed("unknown user", name)
        if not (user.digest_secret or user.password_hash):  # certificate-only user
            self._slow_verify(password, DUMMY_HASH)
            raise _Failed("password for a user that only a certificate authenticates", name)
        if user.digest_secret:
            ok = hmac.compare_digest(password.encode("utf-8"), user.digest_secret.encode("utf-8"))
        else:
            ok = self._cached(name, password, user)
        if not ok:
            raise _Failed("wrong password", name)
        return Caller(user.name, user.roles, method)

    def _token_login(self, token: UsernameToken, secure: bool) -> Caller:
        name = token.username
        if token.problem:
            raise _Failed(token.problem, name)
        self._fresh(token)
        if not token.digest:
            caller = self._password_login(name, token.password, secure, "wsse-text")
            if token.nonce is not None:
                self._not_replayed(token)
            return caller
        if token.nonce is None or token.created is None:
            raise _Failed("PasswordDigest without Nonce and Created", name)
        user = self.users.get(name)
        if user is None or not user.digest_secret:
            raise _Failed("unknown user" if user is None else
                          "PasswordDigest for a user without a digest_secret", name)
        expected = base64.b64encode(hashlib.sha1(
            token.nonce + token.created.encode("utf-8") + user.digest_secret.encode("utf-8"),
            usedforsecurity=True).digest())
        if not hmac.compare_digest(expected, token.password.strip().encode("utf-8")):
            raise _Failed("wrong password digest", name)
        self._not_replayed(token)
        return Caller(user.name, user.roles, "wsse-digest")

    def _not_replayed(self, token: UsernameToken) -> None:
        assert token.nonce is not None
        if not self.nonces.add(hashlib.sha256(token.username.encode() + b"\0" +
                                              token.nonce).digest()):
            raise _Failed("nonce replayed (or the nonce cache is full)", token.username)

    def _fresh(self, token: UsernameToken) -> None:
        now = self.clock()
        for label, stamp in (("Created", token.created),
                             ("Timestamp Created", token.timestamp_created)):
            if stamp is None:
                continue
            when = _instant(stamp)
            if when is None:
                raise _Failed(f"{label} is not an xsd:dateTime with a time zone", token.username)
            if when < now - self.max_age_s or when > now + self.skew_s:
                raise _Failed(f"{label} is outside the freshness window", token.username)
        if token.timestamp_expires is not None:
            expires = _instant(token.timestamp_expires)
            if expires is None or expires < now - self.skew_s:
                raise _Failed("Timestamp Expires has passed", token.username)

    def _cached(self, name: str, password: str, user: User) -> bool:
        key = hmac.new(self._cache_key, f"{name}\0{password}\0{user.password_hash}".encode(),
                       hashlib.sha256).digest()
        now = time.monotonic()
        with self._lock:
            expiry = self._verified.get(key)
        if expiry is not None and expiry > now:
            return True
        if not self._slow_verify(password, user.password_hash):
            return False
        if self.cache_s > 0:
            with self._lock:
                if len(self._verified) >= _CACHE_ENTRIES:
                    self._verified = {k: t for k, t in self._verified.items() if t > now}
                if len(self._verified) < _CACHE_ENTRIES:
                    self._verified[key] = now + self.cache_s
        return True

    def _slow_verify(self, password: str, stored: str) -> bool:
        with self._scrypt_slots:
            return verify_password(password[:_MAX_FIELD], stored)


def _basic(header: str) -> tuple[str, str]:
    """User name and password of ``Authorization: Basic ...`` (RFC 7617, UTF-8)."""
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        raise _Failed("Authorization: Basic is not base64 of UTF-8") from None
    name, sep, password = decoded.partition(":")
    if not sep or len(name) > _MAX_FIELD or len(password) > _MAX_FIELD:
        raise _Failed("Authorization: Basic is not user:password", name[:64])
    return name, password


def _instant(stamp: str) -> float | None:
    """An ``xsd:dateTime`` with a time zone as a Unix time (None if it is not one)."""
    text = stamp.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when.timestamp() if when.tzinfo is not None else None


def _printable(name: str) -> str:
    """A user name fit for one log line: quoted, escaped, at most 64 characters."""
    return json.dumps(name[:64])
