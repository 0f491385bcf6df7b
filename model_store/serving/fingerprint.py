"""What a version's files hold, cheaply: a stat fingerprint decides when to hash again.

Every poll stats ``model.pb`` and ``model.json`` (size and modification time in nanoseconds);
only when that changed are the files hashed again (sha256, streamed), and only when the hash
changed is the version reloaded. A ``touch`` costs one hash, not a reload.
"""

from __future__ import annotations

import hashlib
import os

from ..store import StoredVersion

#: (size, mtime_ns) of model.pb, then of model.json; None when a file is missing
Fingerprint = tuple[int, int, int, int] | None


def stat_fingerprint(stored: StoredVersion) -> Fingerprint:
    try:
        g = os.stat(stored.graph_path)
        s = os.stat(stored.signature_path)
    except OSError:
        return None
    return (g.st_size, g.st_mtime_ns, s.st_size, s.st_mtime_ns)


def content_hash(graph: bytes | bytearray, signature_text: bytes) -> str:
    """The version's content hash, from the bytes that were loaded."""
    h = hashlib.sha256(graph)
    h.update(b"\0")
    h.update(signature_text)
    return h.hexdigest()


def hash_files(stored: StoredVersion, chunk: int = 1 << 20) -> str | None:
    """``content_hash`` of the files on disk, read in chunks; None if one is unreadable."""
    h = hashlib.sha256()
    try:
        with open(stored.graph_path, "rb") as f:
            while block := f.read(chunk):
                h.update(block)
        h.update(b"\0")
        with open(stored.signature_path, "rb") as f:
            h.update(f.read())
    except OSError:
        return None
    return h.hexdigest()
