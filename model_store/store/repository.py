"""The store on disk: ``<root>/<name>/<version>/model.pb`` and ``model.json``.

Reading lists models and versions; writing puts a whole version in place with one ``rename``,
so a reader never sees half a model and a failed write leaves the store as it was.

Symbolic links: a model folder, version folder or model file that is a link is followed only
when ``follow_symlinks`` is ``inside`` (the default) and it resolves to a path inside the store
(aliases, a version shared by two models); one that leads out of the store, is broken or loops,
or any link under ``never``, is skipped with one WARNING naming it relative to the store, so a
link planted in the store cannot make the server read (and serve) a file from elsewhere.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidModelNameError, ModelNotFoundError, StoreError
from .signature import ModelSignature

log = logging.getLogger(__name__)

GRAPH_FILE = "model.pb"
SIGNATURE_FILE = "model.json"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_VERSION = re.compile(r"^[1-9][0-9]{0,8}$")


def validate_name(name: str) -> str:
    """Return ``name`` if it is a plain model name; raise ``InvalidModelNameError`` before any
    path is built from something that could walk the file system (``..``, ``/``, ``\\``)."""
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidModelNameError(
            f"invalid model name {name!r}: use letters, digits, '_' and '-' (at most 64)")
    return name


def validate_version(version: int) -> int:
    """Return ``version`` if it is a positive integer."""
    if isinstance(version, bool) or not isinstance(version, int) or not 0 < version < 10**9:
        raise ModelNotFoundError(f"invalid model version {version!r}: versions are positive")
    return version


@dataclass(frozen=True)
class StoredVersion:
    """One version of one model as found on disk."""

    name: str
    version: int
    path: Path

    @property
    def graph_path(self) -> Path:
        return self.path / GRAPH_FILE

    @property
    def signature_path(self) -> Path:
        return self.path / SIGNATURE_FILE

    def read_signature(self) -> ModelSignature:
        try:
            text = self.signature_path.read_text(encoding="utf-8")
        except OSError as exc:
            raise StoreError(f"cannot read {self.signature_path}: {exc.strerror}") from None
        return ModelSignature.loads(text)

    def read_graph_bytes(self) -> bytes:
        try:
            return self.graph_path.read_bytes()
        except OSError as exc:
            raise StoreError(f"cannot read {self.graph_path}: {exc.strerror}") from None


FOLLOW_SYMLINKS = ("never", "inside")


class ModelRepository:
    """A model store folder: list, find and atomically add model versions."""

    def __init__(self, root: str | os.PathLike[str], follow_symlinks: str = "inside") -> None:
        if follow_symlinks not in FOLLOW_SYMLINKS:
            raise ValueError(f"follow_symlinks must be one of {', '.join(FOLLOW_SYMLINKS)}, "
                             f"got {follow_symlinks!r}")
        self.root = Path(root)
        self.follow_symlinks = follow_symlinks
        self._warned: set[Path] = set()

    def _admit(self, path: Path) -> bool:
        """Whether ``path`` (in the store) may be read: not a link, or a link followed by the
        ``follow_symlinks`` policy."""
        if not path.is_symlink():
            return True
        why = "is a symbolic link and follow_symlinks is 'never'"
        if self.follow_symlinks == "inside":
            try:
                target = path.resolve(strict=True)
                inside = target.is_relative_to(self.root.resolve(strict=True))
            except (OSError, RuntimeError):  # broken, a loop, or unreadable
                inside, why = False, "is a symbolic link that is broken or loops"
            else:
                why = "is a symbolic link that leads out of the store"
            if inside:
                return True
        if path not in self._warned:  # once per path: the store is polled every few seconds
            self._warned.add(path)
            log.warning("model store: skipping %s: it %s", path.relative_to(self.root), why)
        return False

    def __repr__(self) -> str:
        return f"ModelRepository({str(self.root)!r})"

    def model_names(self) -> list[str]:
        """Names of the models that have at least one complete version, sorted."""
        if not self.root.is_dir():
            raise StoreError(f"model store {self.root} is not a folder")
        return sorted(p.name for p in self.root.iterdir()
                      if _NAME.match(p.name) and p.is_dir() and self.versions(p.name))

    def versions(self, name: str) -> list[StoredVersion]:
        """The complete versions of ``name`` (both files present, and no link the
        ``follow_symlinks`` policy refuses), lowest first."""
        folder = self.root / validate_name(name)
        if not folder.is_dir() or not self._admit(folder):
            return []
        found = []
        for p in folder.iterdir():
            if p.is_dir() and _VERSION.match(p.name) and (p / GRAPH_FILE).is_file() \
                    and (p / SIGNATURE_FILE).is_file() and self._admit(p) \
                    and self._admit(p / GRAPH_FILE) and self._admit(p / SIGNATURE_FILE):
                found.append(StoredVersion(name, int(p.name), p))
        return sorted(found, key=lambda v: v.version)

    def all_versions(self) -> list[StoredVersion]:
        return [v for name in self.model_names() for v in self.versions(name)]

    def get(self, name: str, version: int | None = None) -> StoredVersion:
        """One version of ``name``: the given one, or the highest when ``version`` is None."""
        versions = self.versions(name)
        if not versions:
            raise ModelNotFoundError(f"model {name!r} is not in the store")
        if version is None:
            return versions[-1]
        validate_version(version)
        for v in versions:
            if v.version == version:
                return v
        raise ModelNotFoundError(
            f"model {name!r} has no version {version}; it has {[v.version for v in versions]}")

    def next_version(self, name: str) -> int:
        """One more than the highest version folder of ``name``, complete or not."""
        folder = self.root / validate_name(name)
        taken = [int(p.name) for p in folder.iterdir() if _VERSION.match(p.name)] \
            if folder.is_dir() else []
        return max(taken, default=0) + 1

    def write_version(self, name: str, graph_bytes: bytes, signature: ModelSignature,
                      version: int | None = None) -> StoredVersion:
        """Add a version of ``name`` atomically; the version defaults to the next free number.

        The files are written into a hidden temporary folder beside the target and renamed
        into place; on any failure the temporary folder is removed and the store is unchanged.
        An existing version is never overwritten.
        """
        validate_name(name)
        if version is not None:
            validate_version(version)
        folder = self.root / name
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".incoming-", dir=folder))
        except OSError as exc:
            raise StoreError(f"cannot write into {folder}: {exc.strerror}") from None
        created_folder = not any(p for p in folder.iterdir() if p != tmp)
        try:
            for fname, payload in ((GRAPH_FILE, graph_bytes),
                                   (SIGNATURE_FILE, signature.dumps().encode("utf-8"))):
                with open(tmp / fname, "wb") as fh:
                    fh.write(payload)
                    fh.flush()
                    os.fsync(fh.fileno())
            os.chmod(tmp, 0o755)
            target_version = version if version is not None else self.next_version(name)
            target = folder / str(target_version)
            if target.exists():
                raise StoreError(f"model {name!r} already has version {target_version}")
            os.rename(tmp, target)
        except OSError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            if created_folder:
                shutil.rmtree(folder, ignore_errors=True)
            raise StoreError(f"cannot write model {name!r}: {exc}") from None
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            if created_folder:
                shutil.rmtree(folder, ignore_errors=True)
            raise
        log.info("wrote model %s version %d to %s", name, target_version, target)
        return StoredVersion(name, target_version, target)
