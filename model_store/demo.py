"""The data behind the bundled demo model ``digits``: scikit-learn's 8x8 handwritten digits.

``scripts/build_demo_model.py`` trains and freezes the model from :func:`load_digits_split`, and
the tests score the bundled model on the very same held-out split. scikit-learn (which ships the
data set inside the package, so nothing is downloaded) is imported only when the data is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

DEMO_MODEL_NAME = "digits"
DEMO_MODEL_VERSION = 1
#: The split is fixed: the bundled model's recorded accuracy is measured on this test set.
SPLIT_SEED = 0
TEST_FRACTION = 0.25
NUM_PIXELS = 64
NUM_CLASSES = 10
LABELS: tuple[str, ...] = tuple(str(d) for d in range(NUM_CLASSES))


class DigitsSplit(NamedTuple):
    """A stratified train/test split; images are float32 [n, 64] in [0, 1], labels int64 [n]."""

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def load_digits_split(seed: int = SPLIT_SEED, test_fraction: float = TEST_FRACTION
                      ) -> DigitsSplit:
    """Load the 1,797 8x8 digit images, scale pixels 0..16 to [0, 1], split stratified."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = (np.asarray(digits.data, dtype=np.float32) / np.float32(16.0)).astype(np.float32)
    labels = np.asarray(digits.target, dtype=np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        images, labels, test_size=test_fraction, random_state=seed, stratify=labels)
    return DigitsSplit(np.ascontiguousarray(x_train), np.ascontiguousarray(y_train),
                       np.ascontiguousarray(x_test), np.ascontiguousarray(y_test))


def demo_data_dir() -> Path:
    """The folder of small data files that ship beside the demo store."""
    return Path(__file__).resolve().parent / "demo_data"


def bundled_samples_path() -> Path:
    """``digits_samples.npz``: ten held-out images (``images`` [10, 64] float32, ``labels``
    [10] int64, one per digit) that the bundled model classifies correctly."""
    return demo_data_dir() / "digits_samples.npz"


def load_samples(path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Read a samples file (the bundled one by default): ``(images, labels)``."""
    with np.load(bundled_samples_path() if path is None else Path(path)) as data:
        return (np.asarray(data["images"], dtype=np.float32),
                np.asarray(data["labels"], dtype=np.int64))
