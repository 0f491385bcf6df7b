"""The models the benchmark serves, written into a temporary store.

- ``digits``: the bundled demo model (input ``images`` [-1, 64]), copied with its ``model.json``
  (batching: ``max_batch_size`` 32, ``batch_timeout_ms`` 2).
- ``cnn``: a small CNN for 28x28x1 images as in FACTS.md (conv 3x3x32, max-pool, conv 3x3x64,
  max-pool, dense 128, dense 10; about 421 k weights, 1.7 MB frozen), random weights with a fixed
  seed, built and frozen here; ``model.json`` turns dynamic batching on.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as ``python benchmarks/serve_bench.py``
    sys.path.insert(0, str(REPO))

from model_store import ModelRepository, ModelSignature, TensorSpec, bundled_store_path  # noqa: E402
from model_store.store.signature import BatchingConfig  # noqa: E402


@dataclass(frozen=True)
class BenchModel:
    """A served model: its name, input alias and the shape of one example."""

    name: str
    alias: str
    example_shape: tuple[int, ...]


DIGITS = BenchModel("digits", "images", (64,))
CNN = BenchModel("cnn", "images", (28, 28, 1))
MODELS = {m.name: m for m in (DIGITS, CNN)}
CNN_BATCHING = BatchingConfig(max_batch_size=32, batch_timeout_ms=2.0, max_enqueued_batches=64)


def cnn_graph() -> bytes:
    """Frozen GraphDef bytes of the CNN (outputs ``probabilities`` and ``classes``)."""
    from tests.models import freeze

    def build(tf: Any) -> list[str]:
        v1 = tf.compat.v1
        init = v1.glorot_uniform_initializer(seed=7)

        def weight(name: str, shape: list[int]) -> Any:
            return v1.get_variable(name, shape, initializer=init)

        def bias(name: str, n: int) -> Any:
            return v1.get_variable(name, [n], initializer=v1.zeros_initializer())

        x = v1.placeholder(tf.float32, [None, 28, 28, 1], name="images")
        h = tf.nn.relu(tf.nn.conv2d(x, weight("conv1/w", [3, 3, 1, 32]), 1, "SAME")
                       + bias("conv1/b", 32))
        h = tf.nn.max_pool2d(h, 2, 2, "VALID")
        h = tf.nn.relu(tf.nn.conv2d(h, weight("conv2/w", [3, 3, 32, 64]), 1, "SAME")
                       + bias("conv2/b", 64))
        h = tf.nn.max_pool2d(h, 2, 2, "VALID")
        h = tf.reshape(h, [-1, 7 * 7 * 64])
        h = tf.nn.relu(tf.matmul(h, weight("dense1/w", [7 * 7 * 64, 128]))
                       + bias("dense1/b", 128))
        logits = tf.matmul(h, weight("dense2/w", [128, 10])) + bias("dense2/b", 10)
        tf.nn.softmax(logits, name="probabilities")
        tf.argmax(logits, axis=1, name="classes")
        return ["probabilities", "classes"]

    return freeze(build)


def cnn_signature(batching: BatchingConfig | None = CNN_BATCHING) -> ModelSignature:
    return ModelSignature(
        inputs=(TensorSpec("images", "images:0", "DT_FLOAT", (-1, 28, 28, 1)),),
        outputs=(TensorSpec("probabilities", "probabilities:0", "DT_FLOAT", (-1, 10)),
                 TensorSpec("classes", "classes:0", "DT_INT64", (-1,))),
        labels=tuple(str(i) for i in range(10)),
        description="benchmark CNN for 28x28x1 images, random weights", batching=batching)


def build_store(root: Path, batching: BatchingConfig | None = CNN_BATCHING) -> ModelRepository:
    """Write ``digits`` and ``cnn`` into ``root``."""
    root.mkdir(parents=True, exist_ok=True)
    shutil.copytree(Path(bundled_store_path()) / "digits", root / "digits", dirs_exist_ok=True)
    repo = ModelRepository(root)
    repo.write_version("cnn", cnn_graph(), cnn_signature(batching), version=1)
    return repo
