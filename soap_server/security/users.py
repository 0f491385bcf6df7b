"""The users file: user names, password hashes or digest secrets, and roles (TOML).

::

    [users.alice]                       # checked by salted scrypt (passwords.py)
    roles = ["scoring"]
    password_hash = "scrypt$16384$8$1$...$..."

    [users.batch-job]                   # may also use UsernameToken PasswordDigest
    roles = ["scoring", "ops"]
    digest_secret = "the password itself"

    [users.scoring-batch]               # a client certificate with this subject, verified
    roles = ["scoring"]                 # by a trusted proxy (client_certs.py), is this user
    cert_subjects = ["CN=scoring-batch,O=Bank"]

A ``PasswordDigest`` is ``Base64(SHA-1(nonce + created + password))``: the server can only check
it knowing the password itself, so such users are their own entry kind, ``digest_secret``, and
a file holding any of them must not be readable by group or others (checked at every load).
The trade-off: whoever reads that file can log in as those users, where a ``password_hash``
entry leaks nothing usable without a slow guess per password.

``cert_subjects`` (full subject DNs, RFC 4514 text, most specific RDN first) may stand beside a
password or alone (a user that only a certificate authenticates). A subject names at most one
user in the file; files without the key read as before.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path

from ..settings import SettingsError
from .client_certs import BadSubjectError, SubjectKey, subject_key
from .passwords import BadHashError, parse_hash

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@\-]{0,127}$")


class UsersFileError(SettingsError):
    """The users file cannot be read, is malformed, or is too open for the secrets it holds."""


@dataclass(frozen=True)
class User:
    """One entry of the users file: at most one of ``password_hash`` and ``digest_secret``,
    and the certificate subjects that authenticate as it (at least one of the three)."""

    name: str
    roles: frozenset[str]
    password_hash: str = ""
    digest_secret: str = ""
    cert_subjects: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        if self.digest_secret:
            return "digest_secret"
        return "password_hash" if self.password_hash else "cert_subjects"


def valid_name(name: str) -> bool:
    """User and role names: letters, digits, ``._@-``, at most 128 characters."""
    return bool(_NAME.match(name))


def load_users(path: str | os.PathLike[str]) -> dict[str, User]:
    """The users in ``path``; ``UsersFileError`` for anything malformed or too open."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        mode = os.stat(path).st_mode
    except (OSError, UnicodeDecodeError) as exc:
        raise UsersFileError(f"cannot read users file {path}: {exc.__class__.__name__}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsersFileError(f"users file {path} is not valid TOML: {exc}") from None
    table = data.get("users", {})
    if not isinstance(table, dict) or set(data) - {"users"}:
        raise UsersFileError(f"users file {path} must hold only [users.<name>] tables")
    users = {}
    for name, entry in table.items():
        users[name] = _user(path, name, entry)
    subject_index(users, path)
    if any(u.digest_secret for u in users.values()) and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsersFileError(f"users file {path} holds digest secrets and is readable by group "
                             "or others; chmod 600 it")
    return users


def _user(path: str | os.PathLike[str], name: str, entry: object) -> User:
    where = f"users file {path}, user {name!r}"
    if not valid_name(name):
        raise UsersFileError(f"{where}: not a valid user name")
    if not isinstance(entry, dict) or set(entry) - {"roles", "password_hash", "digest_secret",
                                                    "cert_subjects"}:
        raise UsersFileError(f"{where}: only roles, password_hash, digest_secret and "
                             "cert_subjects are allowed")
    roles = entry.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) and valid_name(r)
                                              for r in roles):
        raise UsersFileError(f"{where}: roles must be a list of names")
    subjects = entry.get("cert_subjects", [])
    if not isinstance(subjects, list) or not all(isinstance(s, str) for s in subjects):
        raise UsersFileError(f"{where}: cert_subjects must be a list of subject DNs")
    for subject in subjects:
        try:
            subject_key(subject)
        except BadSubjectError:
            raise UsersFileError(f"{where}: cert_subjects entry {subject[:200]!r} is not an "
                                 "RFC 4514 subject DN (like \"CN=batch,O=Bank\")") from None
    hashed, secret = entry.get("password_hash", ""), entry.get("digest_secret", "")
    if not isinstance(hashed, str) or not isinstance(secret, str) or (hashed and secret) or \
            not (hashed or secret or subjects):
        raise UsersFileError(f"{where}: needs one of password_hash and digest_secret, or "
                             "cert_subjects (or both)")
    if hashed:
        try:
            parse_hash(hashed)
        except BadHashError as exc:
            raise UsersFileError(f"{where}: {exc}") from None
    return User(name, frozenset(roles), hashed, secret, tuple(subjects))


def subject_index(users: dict[str, User],
                  path: str | os.PathLike[str] = "-") -> dict[SubjectKey, User]:
    """Each certificate subject of ``users`` to its user; ``UsersFileError`` when one subject
    names two users (a certificate must not be two people)."""
    index: dict[SubjectKey, User] = {}
    for user in users.values():
        for subject in user.cert_subjects:
            key = subject_key(subject)
            other = index.setdefault(key, user)
            if other is not user:
                raise UsersFileError(f"users file {path}: subject {subject[:200]!r} names both "
                                     f"{other.name!r} and {user.name!r}")
    return index


def save_users(path: str | os.PathLike[str], users: dict[str, User]) -> None:
    """Write ``users`` to ``path`` atomically, readable by its owner only (mode 600)."""
    lines = ["# tfsoap users: written by `tfsoap users`. Keep it mode 600.", ""]
    for user in sorted(users.values(), key=lambda u: u.name):
        lines.append(f"[users.{json.dumps(user.name)}]")
        lines.append(f"roles = {json.dumps(sorted(user.roles))}")
        if user.digest_secret or user.password_hash:
            key = "digest_secret" if user.digest_secret else "password_hash"
            lines.append(f"{key} = {json.dumps(user.digest_secret or user.password_hash)}")
        if user.cert_subjects:
            subjects = json.dumps(list(user.cert_subjects), ensure_ascii=False)
            lines.append(f"cert_subjects = {subjects}")
        lines.append("")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".users-", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:  # mkstemp makes it mode 600
            out.write("\n".join(lines))
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


class UserStore:
    """The users file as the server sees it; ``reload()`` re-reads it (a broken file on reload
    keeps the users already loaded, and says why)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        self._users = load_users(self.path)
        self._subjects = subject_index(self._users)
        self._lock = threading.Lock()
        self.generation = 0

    def reload(self) -> None:
        """Re-read the file; ``UsersFileError`` (and no change) if it is broken."""
        users = load_users(self.path)
        subjects = subject_index(users)
        with self._lock:
            self._users, self._subjects = users, subjects
            self.generation += 1

    def get(self, name: str) -> User | None:
        return self._users.get(name)

    def by_subject(self, key: SubjectKey) -> User | None:
        """The user a certificate with this subject authenticates as, or None."""
        return self._subjects.get(key)

    def __len__(self) -> int:
        return len(self._users)
