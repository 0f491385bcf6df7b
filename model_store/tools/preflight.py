"""Check a tool's arguments before TensorFlow is imported.

Importing TensorFlow takes seconds; a wrong model name, an existing version, a missing file or a
weights-only ``.h5`` should fail at once, in one line. Nothing here imports TensorFlow or Keras
(``tests/model_store/tools/test_preflight.py`` runs the CLI in a subprocess to check).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import ConversionError
from .checkpoint import locate_checkpoint
from .publish import StoreLike, check_target, read_labels

KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")


def check_keras_file(path: Path) -> None:
    """``ConversionError`` unless ``path`` is a Keras model file holding an architecture."""
    if path.suffix.lower() not in KERAS_SUFFIXES:
        raise ConversionError(f"{path} is not a Keras file (expected "
                              f"{', '.join(KERAS_SUFFIXES)})")
    if not path.is_file():
        raise ConversionError(f"no such Keras file: {path}")
    if path.suffix.lower() in (".h5", ".hdf5") and holds_only_weights(path):
        raise ConversionError(
            f"{path} holds only weights (model.save_weights): converting needs the model's "
            "architecture too; save the whole model (model.save('model.keras') or a full .h5) "
            "and convert that file")


def holds_only_weights(path: Path) -> bool:
    """True for an HDF5 file written by ``save_weights`` (no ``model_config`` attribute)."""
    try:
        import h5py
    except ImportError:  # Keras will say what is wrong when it loads the file
        return False
    try:
        with h5py.File(path, "r") as f:
            return "model_config" not in f.attrs
    except OSError:
        return False  # not HDF5 at all: Keras's own error names the problem


def check_arguments(store: StoreLike, name: str, version: int | None, *,
                    checkpoint: str | os.PathLike[str] | None = None,
                    keras_file: str | os.PathLike[str] | None = None,
                    saved_model: str | os.PathLike[str] | None = None,
                    labels_file: str | os.PathLike[str] | None = None) -> None:
    """Everything about a freeze or conversion that can be checked without TensorFlow:
    the name and version (free in the store), the source's files, the labels file."""
    check_target(store, name, version)
    if checkpoint is not None:
        locate_checkpoint(checkpoint)
    if keras_file is not None:
        check_keras_file(Path(keras_file))
    if saved_model is not None and not (Path(saved_model) / "saved_model.pb").is_file():
        raise ConversionError(f"{saved_model} is not a SavedModel folder (no saved_model.pb)")
    if labels_file is not None:
        read_labels(labels_file)
