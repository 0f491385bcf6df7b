"""Small real TensorFlow models for the tests, frozen into a store.

Every model is built in its own ``tf.Graph`` in graph mode, frozen with
``convert_variables_to_constants`` and written with ``ModelRepository.write_version``.

- ``echo_<dtype>`` (for every supported dtype): ``y = identity(x)`` with x of shape [-1, -1]
  (DT_STRING too), and ``z`` = x reduced to a scalar count of elements (DT_INT32).
- ``affine`` versions 1 and 2: ``y = x @ W + b`` with W = v * ones(4, 3), b = v, on x [-1, 4];
  version 2 answers differently from version 1, so tests can tell which one ran.
- ``scalar``: ``y = x * 2`` for a scalar float input, shape [].
- ``failing``: ``y = check_numerics(x)`` that fails at run time on NaN input (InferenceError).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from model_store import ModelRepository, ModelSignature, TensorSpec
from model_store.store.signature import BatchingConfig

ECHO_DTYPES = ("DT_FLOAT", "DT_DOUBLE", "DT_INT32", "DT_INT64", "DT_UINT8", "DT_BOOL",
               "DT_STRING", "DT_INT8", "DT_INT16", "DT_HALF", "DT_UINT16")


def _tf() -> Any:
    import tensorflow as tf

    return tf


def freeze(build: Callable[[Any], list[str]]) -> bytes:
    """Run ``build(tf)`` in a fresh graph; freeze the named outputs; return GraphDef bytes."""
    tf = _tf()
    graph = tf.Graph()
    with graph.as_default():
        outputs = build(tf)
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            frozen = tf.compat.v1.graph_util.convert_variables_to_constants(
                sess, graph.as_graph_def(), outputs)
    return frozen.SerializeToString()


def _tf_dtype(tf: Any, dtype: str) -> Any:
    return {"DT_FLOAT": tf.float32, "DT_DOUBLE": tf.float64, "DT_INT32": tf.int32,
            "DT_INT64": tf.int64, "DT_UINT8": tf.uint8, "DT_BOOL": tf.bool,
            "DT_STRING": tf.string, "DT_INT8": tf.int8, "DT_INT16": tf.int16,
            "DT_HALF": tf.float16, "DT_UINT16": tf.uint16}[dtype]


def echo_model(dtype: str) -> tuple[bytes, ModelSignature]:
    def build(tf: Any) -> list[str]:
        x = tf.compat.v1.placeholder(_tf_dtype(tf, dtype), [None, None], name="x")
        tf.identity(x, name="y")
        tf.size(x, out_type=tf.int32, name="z")
        return ["y", "z"]

    sig = ModelSignature(
        inputs=(TensorSpec("x", "x:0", dtype, (-1, -1)),),
        outputs=(TensorSpec("y", "y:0", dtype, (-1, -1)), TensorSpec("z", "z:0", "DT_INT32", ())),
        description=f"identity of a {dtype} matrix")
    return freeze(build), sig


def affine_model(v: float, batching: BatchingConfig | None = None) -> tuple[bytes, ModelSignature]:
    def build(tf: Any) -> list[str]:
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        w = tf.compat.v1.get_variable("w", initializer=tf.constant(v, tf.float32, [4, 3]))
        b = tf.compat.v1.get_variable("b", initializer=tf.constant(v, tf.float32, [3]))
        tf.add(tf.matmul(x, w), b, name="y")
        return ["y"]

    sig = ModelSignature(inputs=(TensorSpec("x", "x:0", "DT_FLOAT", (-1, 4)),),
                         outputs=(TensorSpec("y", "y:0", "DT_FLOAT", (-1, 3)),),
                         labels=("a", "b", "c"), description=f"x @ {v} + {v}",
                         batching=batching)
    return freeze(build), sig


def affine_expected(x: np.ndarray, v: float) -> np.ndarray:
    return (x.astype(np.float32) @ np.full((4, 3), v, np.float32) + np.float32(v)).astype(
        np.float32)


def scalar_model() -> tuple[bytes, ModelSignature]:
    def build(tf: Any) -> list[str]:
        x = tf.compat.v1.placeholder(tf.float32, [], name="x")
        tf.multiply(x, 2.0, name="y")
        return ["y"]

    sig = ModelSignature(inputs=(TensorSpec("x", "x:0", "DT_FLOAT", ()),),
                         outputs=(TensorSpec("y", "y:0", "DT_FLOAT", ()),),
                         description="2 * x for a scalar")
    return freeze(build), sig


def failing_model() -> tuple[bytes, ModelSignature]:
    def build(tf: Any) -> list[str]:
        x = tf.compat.v1.placeholder(tf.float32, [None], name="x")
        tf.debugging.check_numerics(x, "input has NaN or Inf", name="y")
        return ["y"]

    sig = ModelSignature(inputs=(TensorSpec("x", "x:0", "DT_FLOAT", (-1,)),),
                         outputs=(TensorSpec("y", "y:0", "DT_FLOAT", (-1,)),),
                         description="fails at run time on NaN")
    return freeze(build), sig


def build_test_store(repo: ModelRepository) -> None:
    """Write every test model into ``repo``."""
    for dtype in ECHO_DTYPES:
        graph, sig = echo_model(dtype)
        repo.write_version(f"echo_{dtype[3:].lower()}", graph, sig, version=1)
    for version, v in ((1, 1.0), (2, 2.0)):
        graph, sig = affine_model(v)
        repo.write_version("affine", graph, sig, version=version)
    graph, sig = affine_model(3.0, BatchingConfig(max_batch_size=16, batch_timeout_ms=5,
                                                  max_enqueued_batches=64))
    repo.write_version("affine_batched", graph, sig, version=1)
    graph, sig = scalar_model()
    repo.write_version("scalar", graph, sig, version=1)
    graph, sig = failing_model()
    repo.write_version("failing", graph, sig, version=1)


def slow_model(size: int = 600, steps: int = 12) -> tuple[bytes, ModelSignature]:
    """``y = x @ W @ W ...`` with W made at run time (``tf.fill``): slow to run, tiny on disk."""

    def build(tf: Any) -> list[str]:
        x = tf.compat.v1.placeholder(tf.float32, [None, size], name="x")
        w = tf.fill(tf.stack([size, size]), tf.constant(1.0 / size))
        y = x
        for _ in range(steps):
            y = tf.matmul(y, w)
        tf.identity(y, name="y")
        return ["y"]

    sig = ModelSignature(inputs=(TensorSpec("x", "x:0", "DT_FLOAT", (-1, size)),),
                         outputs=(TensorSpec("y", "y:0", "DT_FLOAT", (-1, size)),),
                         description="a deliberately slow model")
    return freeze(build), sig
