"""Fixtures shared by the Java and C# interop tests: the inputs, and the Python client's answers
on them, which every generated client must reproduce."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest

from model_store.demo import load_samples

from .network import RecordingProxy
from .toolchains import write_images

#: Rows of the demo input: the ten digit samples and six noisy copies (fractional pixels, so
#: the floats that travel are not all multiples of 1/16).
NOISY_ROWS = 6


@pytest.fixture(scope="session")
def demo_images() -> np.ndarray:
    images, _ = load_samples()
    rng = np.random.default_rng(4)
    noisy = np.clip(images[:NOISY_ROWS] + rng.normal(0, 0.1, images[:NOISY_ROWS].shape), 0, 1)
    return np.concatenate([images, noisy]).astype(np.float32)


@pytest.fixture(scope="session")
def images_file(demo_images: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_images(tmp_path_factory.mktemp("interop") / "images.txt", demo_images)


@pytest.fixture(scope="session")
def python_answers(client: Any, demo_images: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
    """The Python (zeep) client's outputs on the same inputs, by input encoding."""
    return {mode: client.predict("digits", {"images": demo_images}, encoding=enc)
            for mode, enc in (("typed", "typed"), ("packed", "tensor_content"))}


@pytest.fixture
def recording_proxy(server: Any) -> Iterator[RecordingProxy]:
    """A forwarder in front of the server that records what one test's clients send."""
    with RecordingProxy(server.url) as proxy:
        yield proxy

