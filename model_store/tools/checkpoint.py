"""Find a TF1-style checkpoint on disk and read what it holds, without building any graph.

``tf.compat.v1.train.Saver`` writes a checkpoint as a *prefix* ``P``: ``P.index`` (the table of
tensors), ``P.data-00000-of-00001`` (the values) and ``P.meta`` (the meta graph: ops,
collections, the saver). ``locate_checkpoint`` accepts the prefix, any of those files, a
folder holding a ``checkpoint`` state file (the latest checkpoint is used), or the prefix without
the ``-STEP`` suffix that ``Saver.save(..., global_step=)`` adds (the latest such is used).
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConversionError
from .tf_failures import converting

_SUFFIX = re.compile(r"^(?P<prefix>.+)\.(index|meta|data-\d{5}-of-\d{5})$")


@dataclass(frozen=True)
class CheckpointTensor:
    """One tensor saved in a checkpoint, as ``inspect_checkpoint`` lists it."""

    name: str
    dtype: str
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        """Bytes of the values (strings and other variable-size types count as 0)."""
        import numpy as np

        try:
            itemsize = np.dtype(self.dtype).itemsize
        except TypeError:
            return 0
        count = 1
        for d in self.shape:
            count *= max(d, 0)
        return count * itemsize

    def describe(self) -> str:
        """``tensor: NAME (DTYPE) [SHAPE]``, the line format of ``inspect_checkpoint``."""
        return f"tensor: {self.name} ({self.dtype}) {list(self.shape)}"


@dataclass(frozen=True)
class Checkpoint:
    """The files of one checkpoint prefix."""

    prefix: str
    index: Path
    data: tuple[Path, ...]
    meta: Path | None
    #: The path the user gave, when it named this checkpoint indirectly (a folder, or a prefix
    #: without the step training added).
    given: str | None = None

    @property
    def size_bytes(self) -> int:
        """Bytes of the weights on disk: the index and data files (not the meta graph)."""
        return self.index.stat().st_size + sum(p.stat().st_size for p in self.data)

    @property
    def meta_bytes(self) -> int:
        return self.meta.stat().st_size if self.meta is not None else 0

    def require_meta(self) -> Path:
        """The ``.meta`` file; ``ConversionError`` when the checkpoint has none."""
        if self.meta is None:
            raise ConversionError(
                f"{self.prefix}.meta is missing: freezing from the meta graph needs the file "
                "tf.compat.v1.train.Saver writes beside the checkpoint (or use --builder)")
        return self.meta

    def tensors(self) -> dict[str, CheckpointTensor]:
        """Every tensor in the checkpoint by name, with its dtype name and shape."""
        import tensorflow as tf

        with converting(f"cannot read checkpoint {self.prefix}"):
            reader = tf.train.load_checkpoint(self.prefix)
            shapes = reader.get_variable_to_shape_map()
            dtypes = reader.get_variable_to_dtype_map()
        return {name: CheckpointTensor(name, dtypes[name].name, tuple(shapes[name]))
                for name in sorted(shapes)}

    def value(self, name: str) -> Any:
        """The value of one checkpoint tensor as a numpy array."""
        import tensorflow as tf

        if name not in self.tensors():
            raise ConversionError(f"tensor {name!r} is not in checkpoint {self.prefix}")
        with converting(f"cannot read tensor {name!r} of {self.prefix}"):
            return tf.train.load_checkpoint(self.prefix).get_tensor(name)

    def parameter_count(self) -> int:
        """How many numbers the checkpoint holds (as ``inspect_checkpoint`` counts them)."""
        total = 0
        for t in self.tensors().values():
            count = 1
            for d in t.shape:
                count *= d
            total += count
        return total

    def looks_object_based(self) -> bool:
        """True for a TF2 object-based checkpoint (``tf.train.Checkpoint``, SavedModel)."""
        return any(".ATTRIBUTES/" in name for name in self.tensors())


def state_file_prefixes(folder: str) -> list[str]:
    """The checkpoint prefixes a folder's ``checkpoint`` state file lists, oldest first and the
    latest (``model_checkpoint_path``) last; relative paths are taken from ``folder``.

    The file is the small text proto ``tf.compat.v1.train.Saver`` and ``CheckpointManager``
    keep; it is read here without TensorFlow so a wrong path fails at once."""
    state = Path(folder) / "checkpoint"
    try:
        text = state.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    latest, every = None, []
    for line in text.splitlines():
        key, _, value = line.partition(":")
        value = value.strip().strip('"')
        if not value:
            continue
        path = value if os.path.isabs(value) else os.path.join(folder, value)
        if key.strip() == "model_checkpoint_path":
            latest = path
        elif key.strip() == "all_model_checkpoint_paths":
            every.append(path)
    ordered = [p for p in every if p != latest] + ([latest] if latest else [])
    return [p for p in ordered if os.path.isfile(p + ".index")]


def _prefixes_in(folder: str) -> list[str]:
    """Every checkpoint prefix in ``folder``: the state file's, then any other ``*.index``."""
    listed = state_file_prefixes(folder)
    found = sorted(p[: -len(".index")] for p in glob.glob(os.path.join(glob.escape(folder),
                                                                         "*.index")))
    return listed + [p for p in found if p not in listed]


def _latest_with_prefix(text: str) -> str:
    """The latest checkpoint whose prefix starts with ``text`` (``run/model.ckpt`` ->
    ``run/model.ckpt-200``, the usual ``global_step`` naming); ``ConversionError`` naming the
    real prefixes when there is none."""
    folder = os.path.dirname(text) or "."
    base = os.path.basename(text)
    listed = state_file_prefixes(folder)
    stepped = [p for p in listed if os.path.basename(p).startswith(base + "-")]
    if stepped:
        return stepped[-1]
    others = _prefixes_in(folder) if os.path.isdir(folder) else []
    if not others:
        raise ConversionError(f"no checkpoint at {text}: {text}.index is missing and "
                              f"{folder} holds no checkpoint")
    shown = ", ".join(others[-5:]) + (f" (and {len(others) - 5} more)" if len(others) > 5
                                      else "")
    raise ConversionError(f"no checkpoint at {text}: {text}.index is missing; {folder} has "
                          f"checkpoint(s) {shown}: give one of these prefixes")


def locate_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """The checkpoint at ``path``; ``ConversionError`` with what is missing if there is none.

    ``path`` is a prefix, one of its files, a folder (its latest checkpoint), or a prefix that
    training extended with a step (``model.ckpt`` for ``model.ckpt-200``: the latest such in the
    folder's ``checkpoint`` file). No TensorFlow is imported."""
    given = text = os.fspath(path)
    if os.path.isdir(text):
        prefixes = _prefixes_in(text)
        listed = state_file_prefixes(text)
        if listed:
            text = listed[-1]
        elif len(prefixes) == 1:
            text = prefixes[0]
        else:
            raise ConversionError(
                f"no checkpoint in folder {text}: give the checkpoint prefix "
                f"({len(prefixes)} .index files, no 'checkpoint' state file)")
    match = _SUFFIX.match(text)
    if match and not os.path.exists(text + ".index"):
        text = match.group("prefix")
    if not os.path.isfile(text + ".index"):
        text = _latest_with_prefix(text)
    index = Path(text + ".index")
    data = tuple(Path(p) for p in sorted(glob.glob(glob.escape(text) + ".data-*-of-*")))
    if not data:
        raise ConversionError(f"checkpoint {text} has no .data-* file beside its .index")
    meta = Path(text + ".meta")
    return Checkpoint(text, index, data, meta if meta.is_file() else None,
                      given if text != given else None)
