#!/usr/bin/env python3
"""Build the bundled demo model ``digits`` (version 1) and its sample inputs.

Trains a small multilayer perceptron on scikit-learn's 8x8 handwritten digits (the data set ships
inside scikit-learn, nothing is downloaded) with ``tf.compat.v1`` in graph mode, freezes it into a
``GraphDef`` whose only outputs are ``probabilities`` and ``classes``, and writes it to
``<output>/digits/1/{model.pb,model.json}`` (an existing ``digits`` folder there is removed first,
so the script regenerates the model cleanly). Ten held-out images the model gets right, one per
digit, go to ``--samples`` for the README example and the tests.

The result is then checked the way the server will use it: the written version is loaded
with ``model_store.serving.loader.LoadedModel`` and run on the whole held-out split; the script
fails (exit status 1) unless it reproduces the in-session predictions and scores at least 95 %.

Training is deterministic for a given ``--seed`` (single-threaded training session, graph-level
and numpy seeds); the train/test split is fixed (``model_store.demo.SPLIT_SEED``) so that the
recorded accuracy always refers to the same held-out images.

Usage::

    TF_CPP_MIN_LOG_LEVEL=2 python scripts/build_demo_model.py [--output DIR] [--seed N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as ``python scripts/build_demo_model.py``
    sys.path.insert(0, str(REPO_ROOT))

from model_store.demo import (  # noqa: E402
    DEMO_MODEL_NAME,
    DEMO_MODEL_VERSION,
    LABELS,
    NUM_CLASSES,
    NUM_PIXELS,
    DigitsSplit,
    load_digits_split,
)
from model_store.store.repository import ModelRepository, StoredVersion  # noqa: E402
from model_store.store.signature import BatchingConfig, ModelSignature, TensorSpec  # noqa: E402

DEFAULT_OUTPUT = REPO_ROOT / "model_store" / "demo_store"
DEFAULT_SAMPLES = REPO_ROOT / "model_store" / "demo_data" / "digits_samples.npz"
DEFAULT_SEED = 1234
MIN_ACCURACY = 0.95

HIDDEN_UNITS = (64,)
EPOCHS = 60
BATCH_SIZE = 32
LEARNING_RATE = 2e-3
L2_WEIGHT = 1e-4
OUTPUT_OPS = ("probabilities", "classes")


def build_graph(tf: Any) -> dict[str, Any]:
    """Add the MLP, its loss and its Adam step to the default graph; return the handles."""
    v1 = tf.compat.v1
    images = v1.placeholder(tf.float32, shape=[None, NUM_PIXELS], name="images")
    labels = v1.placeholder(tf.int64, shape=[None], name="labels")
    init = v1.glorot_uniform_initializer()
    hidden = images
    weights = []
    width = NUM_PIXELS
    for i, units in enumerate(HIDDEN_UNITS, start=1):
        with v1.variable_scope(f"hidden{i}"):
            w = v1.get_variable("kernel", [width, units], tf.float32, init)
            b = v1.get_variable("bias", [units], tf.float32, v1.zeros_initializer())
        hidden = tf.nn.relu(tf.matmul(hidden, w) + b)
        weights.append(w)
        width = units
    with v1.variable_scope("output"):
        w = v1.get_variable("kernel", [width, NUM_CLASSES], tf.float32, init)
        b = v1.get_variable("bias", [NUM_CLASSES], tf.float32, v1.zeros_initializer())
    weights.append(w)
    logits = tf.add(tf.matmul(hidden, w), b, name="logits")
    probabilities = tf.nn.softmax(logits, name="probabilities")
    classes = tf.argmax(logits, axis=1, output_type=tf.int64, name="classes")
    loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=labels, logits=logits)) + L2_WEIGHT * tf.add_n([tf.nn.l2_loss(w) for w in weights])
    train_op = v1.train.AdamOptimizer(LEARNING_RATE).minimize(loss)
    return {"images": images, "labels": labels, "probabilities": probabilities,
            "classes": classes, "loss": loss, "train_op": train_op}


def train_and_freeze(data: DigitsSplit, seed: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """Train on the training split; return the frozen ``GraphDef`` bytes and the in-session
    ``(classes, probabilities)`` for the test split."""
    import tensorflow as tf

    v1 = tf.compat.v1
    rng = np.random.RandomState(seed)
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(seed)
        t = build_graph(tf)
        init = v1.global_variables_initializer()
    # One thread each way: the reductions then always run in the same order.
    config = v1.ConfigProto(intra_op_parallelism_threads=1, inter_op_parallelism_threads=1)
    with v1.Session(graph=graph, config=config) as sess:
        sess.run(init)
        step = sess.make_callable([t["train_op"], t["loss"]], feed_list=[t["images"], t["labels"]])
        n = len(data.train_labels)
        for epoch in range(EPOCHS):
            order = rng.permutation(n)
            losses = []
            for start in range(0, n, BATCH_SIZE):
                idx = order[start:start + BATCH_SIZE]
                _, loss = step(data.train_images[idx], data.train_labels[idx])
                losses.append(loss)
            if (epoch + 1) % 20 == 0:
                print(f"  epoch {epoch + 1:3d}: mean training loss {np.mean(losses):.4f}")
        classes, probabilities = sess.run(
            [t["classes"], t["probabilities"]], {t["images"]: data.test_images})
        frozen = v1.graph_util.convert_variables_to_constants(
            sess, graph.as_graph_def(), list(OUTPUT_OPS))
    frozen = v1.graph_util.extract_sub_graph(frozen, list(OUTPUT_OPS))
    # deterministic=True: attr maps in a fixed order, so the same weights give the same bytes.
    return frozen.SerializeToString(deterministic=True), classes, probabilities


def make_signature(accuracy: float, test_samples: int) -> ModelSignature:
    """The ``model.json`` of the demo model."""
    layers = "-".join(str(u) for u in (NUM_PIXELS, *HIDDEN_UNITS, NUM_CLASSES))
    description = (
        "Handwritten digit classifier (scikit-learn 8x8 digits): input 'images' is a batch of "
        "64 pixels per image, row-major, scaled to [0, 1] (0..16 divided by 16); outputs the "
        f"10 class probabilities and the predicted digit. A {layers} ReLU MLP trained with "
        f"Adam; held-out accuracy {accuracy:.2%} on {test_samples} test images.")
    return ModelSignature(
        inputs=(TensorSpec("images", "images:0", "DT_FLOAT", (-1, NUM_PIXELS)),),
        outputs=(TensorSpec("probabilities", "probabilities:0", "DT_FLOAT", (-1, NUM_CLASSES)),
                 TensorSpec("classes", "classes:0", "DT_INT64", (-1,))),
        labels=LABELS,
        description=description,
        batching=BatchingConfig(max_batch_size=32, batch_timeout_ms=2, max_enqueued_batches=64),
        extra={"metrics": {"test_accuracy": accuracy, "test_samples": test_samples}},
    )


def pick_samples(data: DigitsSplit, classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first correctly classified test image of each digit, in digit order."""
    picked = []
    for digit in range(NUM_CLASSES):
        hits = np.flatnonzero((data.test_labels == digit) & (classes == digit))
        if not len(hits):
            raise RuntimeError(f"no correctly classified test image of digit {digit}")
        picked.append(int(hits[0]))
    return (data.test_images[picked].astype(np.float32),
            data.test_labels[picked].astype(np.int64))


def verify(stored: StoredVersion, data: DigitsSplit, classes: np.ndarray,
           probabilities: np.ndarray) -> float:
    """Run the written version through ``LoadedModel`` on the test split; return its accuracy
    after checking it reproduces the in-session results."""
    from model_store.serving.loader import LoadedModel

    model = LoadedModel(stored)
    try:
        model.signature.check_inputs({"images": data.test_images})
        out = model.run({"images": data.test_images})
    finally:
        model.close()
    if not np.array_equal(out["classes"], classes):
        raise RuntimeError("the frozen model's classes differ from the in-session ones")
    if not np.allclose(out["probabilities"], probabilities, rtol=1e-5, atol=1e-6):
        raise RuntimeError("the frozen model's probabilities differ from the in-session ones")
    return float(np.mean(out["classes"] == data.test_labels))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="model store to write into (default: %(default)s)")
    parser.add_argument("--samples", type=Path, default=DEFAULT_SAMPLES,
                        help="where to write the held-out sample images (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help="seed of weight initialisation and batch order (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Build, write and verify the demo model; return the exit status."""
    args = parse_args(argv)
    np.random.seed(args.seed)
    data = load_digits_split()
    print(f"digits: {len(data.train_labels)} training / {len(data.test_labels)} test images")

    import tensorflow  # noqa: F401  (imported before the clock starts: time training only)

    started = time.perf_counter()
    graph_bytes, classes, probabilities = train_and_freeze(data, args.seed)
    train_seconds = time.perf_counter() - started
    test_samples = len(data.test_labels)
    accuracy = float(np.count_nonzero(classes == data.test_labels)) / test_samples
    print(f"trained in {train_seconds:.1f} s; in-session held-out accuracy {accuracy:.4f}")

    repo = ModelRepository(args.output)
    old = repo.root / DEMO_MODEL_NAME
    if old.exists():
        shutil.rmtree(old)
    stored = repo.write_version(DEMO_MODEL_NAME, graph_bytes,
                                make_signature(accuracy, test_samples),
                                version=DEMO_MODEL_VERSION)

    images, labels = pick_samples(data, classes)
    args.samples.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.samples, images=images, labels=labels)

    try:
        reloaded = verify(repo.get(DEMO_MODEL_NAME, DEMO_MODEL_VERSION), data, classes,
                          probabilities)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if reloaded != accuracy:
        print(f"error: reloaded accuracy {reloaded} != in-session {accuracy}", file=sys.stderr)
        return 1
    print(json.dumps({"model": str(stored.path), "graph_bytes": stored.graph_path.stat().st_size,
                      "samples": str(args.samples), "test_accuracy": reloaded,
                      "test_samples": test_samples, "train_seconds": round(train_seconds, 2)}))
    if reloaded < MIN_ACCURACY:
        print(f"error: held-out accuracy {reloaded:.4f} is below {MIN_ACCURACY}", file=sys.stderr)
        return 1
    print(f"held-out accuracy {reloaded:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
