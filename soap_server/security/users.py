"""The users file: user names, password hashes or digest secrets, and roles (TOML).

::

    [users.alice]                       # checked by salted scrypt (passwords.py)
    roles = ["scoring"]
    password_hash = "scrypt$16384$8$1$...$..."

    [users.batch-job]                   # may also use UsernameToken PasswordDigest
    roles = ["scoring", "ops"]
    digest_secret = "the password itself"

A ``PasswordDigest`` is ``Base64(SHA-1(nonce + created + password))``: the server can only check
it knowing the password itself, so such users are their own entry kind, ``digest_secret``, and
a file holding any of them must not be readable by group or others (checked at every load).
The trade-off: whoever reads that file can log in as those users, where a ``password_hash``
entry leaks nothing usable without a slow guess per password.
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
from .passwords import BadHashError, parse_hash

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@\-]{0,127}$")


class UsersFileError(SettingsError):
    """The users file cannot be read, is malformed, or is too open for the secrets it holds."""


@dataclass(frozen=True)
class User:
    """One entry of the users file: exactly one of ``password_hash`` and ``digest_secret``."""

    name: str
    roles: frozenset[str]
    password_hash: str = ""
    digest_secret: str = ""

    @property
    def kind(self) -> str:
        return "digest_secret" if self.digest_secret else "password_hash"


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
    if any(u.digest_secret for u in users.values()) and mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsersFileError(f"users file {path} holds digest secrets and is readable by group "
                             "or others; chmod 600 it")
    return users


def _user(path: str | os.PathLike[str], name: str, entry: object) -> User:
    where = f"users file {path}, user {name!r}"
    if not valid_name(name):
        raise UsersFileError(f"{where}: not a valid user name")
    if not isinstance(entry, dict) or set(entry) - {"roles", "password_hash", "digest_secret"}:
        raise UsersFileError(f"{where}: only roles, password_hash and digest_secret are allowed")
    roles = entry.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(r, str) and valid_name(r)
                                              for r in roles):
        raise UsersFileError(f"{where}: roles must be a list of names")
    hashed, secret = entry.get("password_hash", ""), entry.get("digest_secret", "")
    if not isinstance(hashed, str) or not isinstance(secret, str) or bool(hashed) == bool(secret):
        raise UsersFileError(f"{where}: needs exactly one of password_hash and digest_secret")
    if hashed:
        try:
            parse_hash(hashed)
        except BadHashError as exc:
            raise UsersFileError(f"{where}: {exc}") from None
    return User(name, frozenset(roles), hashed, secret)


def save_users(path: str | os.PathLike[str], users: dict[str, User]) -> None:
    """Write ``users`` to ``path`` atomically, readable by its owner only (mode 600)."""
    lines = ["# tfsoap users: written by `tfsoap users`. Keep it mode 600.", ""]
    for user in sorted(users.values(), key=lambda u: u.name):
        lines.append(f"[users.{json.dumps(user.name)}]")
        lines.append(f"roles = {json.dumps(sorted(user.roles))}")
        key = "digest_secret" if user.digest_secret else "password_hash"
        lines.append(f"{key} = {json.dumps(user.digest_secret or user.password_hash)}")
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
        self._lock = threading.Lock()
        self.generation = 0

    def reload(self) -> None:
        """Re-read the file; ``UsersFileError`` (and no change) if it is broken."""
        users = load_users(self.path)
        with self._lock:
            self._users = users
            self.generation += 1

    def get(self, name: str) -> User | None:
        return self._users.get(name)

    def __len__(self) -> int:
        return len(self._users)
