"""Password hashes: salted scrypt from the standard library (``hashlib.scrypt``, OpenSSL's).

Why scrypt and not argon2: it is in the standard library (no new dependency for the server,
nothing to build on the callers' machines), memory-hard like argon2id, and its cost
parameters travel in each stored hash, so they can be raised later without breaking old
entries. The parameters (N=2**14, r=8, p=1: 16 MiB and, on the 2-core CI machine, a few
hundred milliseconds per check; see ``benchmarks/auth_bench.py``) are at the low end of
OWASP's advice because HTTP Basic sends the password with every request: ``guard`` caches a
verified password briefly instead of paying this on every call.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

SCHEME = "scrypt"
N, R, P = 2 ** 14, 8, 1
_DKLEN = 32
_MAXMEM = 64 * 1024 * 1024
#: The largest cost a stored hash may ask for (a hand-edited file must not stall the server).
_MAX_N = 2 ** 18


class BadHashError(ValueError):
    """A stored password hash that is not ``scrypt$N$r$p$salt$hash``."""


def hash_password(password: str, n: int = N, r: int = R, p: int = P) -> str:
    """``scrypt$N$r$p$salt$hash`` (salt and hash in base64) for ``password``."""
    salt = os.urandom(16)
    key = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM,
                         dklen=_DKLEN)
    return "$".join((SCHEME, str(n), str(r), str(p), _b64(salt), _b64(key)))


def parse_hash(stored: str) -> tuple[int, int, int, bytes, bytes]:
    """The parts of a stored hash; ``BadHashError`` if it is not one of ours."""
    parts = stored.split("$")
    try:
        if len(parts) != 6 or parts[0] != SCHEME:
            raise ValueError(stored)
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, key = base64.b64decode(parts[4], validate=True), \
            base64.b64decode(parts[5], validate=True)
    except ValueError:
        raise BadHashError("a password hash is not scrypt$N$r$p$salt$hash") from None
    if not (2 <= n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 4
            and len(salt) >= 8 and len(key) >= 16):
        raise BadHashError("a password hash has scrypt parameters out of range")
    return n, r, p, salt, key


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``, compared in constant time."""
    n, r, p, salt, key = parse_hash(stored)
    got = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM,
                         dklen=len(key))
    return hmac.compare_digest(got, key)


#: Checked against unknown user names so that they cost as much time as known ones.
DUMMY_HASH = "$".join((SCHEME, str(N), str(R), str(P), "AAAAAAAAAAAAAAAAAAAAAA==",
                       "A" * 43 + "="))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
