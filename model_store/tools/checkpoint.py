"""Find a TF1-style checkpoint on disk and read what it holds, without building any graph.

``tf.compat.v1.train.Saver`` writes a checkpoint as a *prefix* ``P``: ``P.index`` (the table of
tensors), ``P.data-00000-of-00001`` (the values) and ``P.meta`` (the meta graph: ops,
collections, the saver). ``locate_checkpoint`` accepts the prefix, any of those files, or a
folder holding a ``checkpoint`` state file (the latest checkpoint is used).
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


def locate_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """The checkpoint at ``path``; ``ConversionError`` with what is missing if there is none."""
    text = os.fspath(path)
    if os.path.isdir(text):
        import tensorflow as tf

        latest = tf.train.latest_checkpoint(text)
        if latest is None:
            indexes = sorted(glob.glob(os.path.join(glob.escape(text), "*.index")))
            if len(indexes) != 1:
                raise ConversionError(
                    f"no checkpoint in folder {text}: give the checkpoint prefix "
                    f"({len(indexes)} .index files, no 'checkpoint' state file)")
            latest = indexes[0][: -len(".index")]
        text = latest
    match = _SUFFIX.match(text)
    if match and not os.path.exists(text + ".index"):
        text = match.group("prefix")
    index = Path(text + ".index")
    if not index.is_file():
        raise ConversionError(f"no checkpoint at {text}: {index} is missing")
    data = tuple(Path(p) for p in sorted(glob.glob(glob.escape(text) + ".data-*-of-*")))
    if not data:
        raise ConversionError(f"checkpoint {text} has no .data-* file beside its .index")
    meta = Path(text + ".meta")
    return Checkpoint(text, index, data, meta if meta.is_file() else None)
