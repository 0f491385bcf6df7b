"""Large constants held once as variables: outputs bit for bit those of the frozen graph.

The models are small, so the threshold (``min_bytes``) is set low enough to move their weights;
each is compared with the same frozen ``GraphDef`` imported and run by a plain ``Session``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from model_store import ModelRepository, ModelSignature, TensorSpec
from model_store.serving import ModelRegistry, RegistrySettings, WeightsOptions
from model_store.serving.loader import LoadedModel
from model_store.store.signature import BatchingConfig
from tests.models import freeze

MOVE_ALL = WeightsOptions(as_variables=True, min_bytes=64)

#: (contract dtype, numpy dtype) of the weighted models below
DTYPES = [("DT_FLOAT", np.float32), ("DT_DOUBLE", np.float64), ("DT_HALF", np.float16),
          ("DT_INT32", np.int32), ("DT_INT64", np.int64)]


def weighted_model(dtype: str, np_dtype: Any) -> tuple[bytes, ModelSignature]:
    """``y = relu(x @ W1 + b1) @ W2 + 3`` (ints: without relu), ``k`` = a constant output,
    ``splat`` = x @ a constant stored as one repeated value, and a small string constant."""
    rng = np.random.default_rng(5)
    kind = np.dtype(np_dtype).kind

    def values(shape: tuple[int, ...]) -> np.ndarray:
        if kind == "f":
            return rng.standard_normal(shape).astype(np_dtype)
        return rng.integers(-50, 50, shape).astype(np_dtype)

    def build(tf: Any) -> list[str]:
        dt = tf.as_dtype(np_dtype)
        x = tf.compat.v1.placeholder(dt, [None, 16], name="x")
        h = tf.matmul(x, tf.constant(values((16, 32)), name="w1")) + tf.constant(
            values((32,)), name="b1")
        if kind == "f":
            h = tf.nn.relu(h)
        tf.add(tf.matmul(h, tf.constant(values((32, 8)), name="w2")), tf.constant(3, dt),
               name="y")
        tf.identity(tf.constant(values((4, 8)), name="k_value"), name="k")
        tf.matmul(x, tf.constant(2, dt, shape=[16, 16], name="splat_value"), name="splat")
        tf.strings.join([tf.constant(["label"] * 40, name="names")], name="labels")
        return ["y", "k", "splat", "labels"]

    sig = ModelSignature(
        inputs=(TensorSpec("x", "x:0", dtype, (-1, 16)),),
        outputs=(TensorSpec("y", "y:0", dtype, (-1, 8)), TensorSpec("k", "k:0", dtype, (4, 8)),
                 TensorSpec("splat", "splat:0", dtype, (-1, 16)),
                 TensorSpec("labels", "labels:0", "DT_STRING", (40,))))
    return freeze(build), sig


def frozen_outputs(graph_bytes: bytes, feeds: dict[str, np.ndarray],
                   names: list[str]) -> list[np.ndarray]:
    """The frozen graph run directly: imported as it is into a plain ``Session``."""
    import tensorflow as tf

    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph_bytes)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        return list(sess.run(names, feed_dict=feeds))


def store_version(tmp_path: Path, graph_bytes: bytes, sig: ModelSignature,
                  name: str = "weighted") -> Any:
    return ModelRepository(tmp_path).write_version(name, graph_bytes, sig, 1)


def example(np_dtype: Any, rows: int = 5) -> np.ndarray:
    rng = np.random.default_rng(11)
    if np.dtype(np_dtype).kind == "f":
        return rng.standard_normal((rows, 16)).astype(np_dtype)
    return rng.integers(-9, 9, (rows, 16)).astype(np_dtype)


@pytest.mark.parametrize("dtype,np_dtype", DTYPES)
def test_outputs_are_bit_equal_to_the_frozen_graph(tmp_path: Path, dtype: str,
                                                   np_dtype: Any) -> None:
    graph_bytes, sig = weighted_model(dtype, np_dtype)
    stored = store_version(tmp_path, graph_bytes, sig)
    x = example(np_dtype)
    expected = frozen_outputs(graph_bytes, {"x:0": x}, ["y:0", "k:0", "splat:0", "labels:0"])
    model = LoadedModel(stored, sig, weights=MOVE_ALL)
    try:
        got = model.run({"x": x})
        assert model.weights_bytes > 0
        for alias, want in zip(("y", "k", "splat"), expected):
            assert got[alias].dtype == want.dtype
            assert np.array_equal(got[alias], want), alias
        assert list(got["labels"]) == list(expected[3])
    finally:
        model.close()


def test_large_constants_become_variables_and_small_ones_stay(tmp_path: Path) -> None:
    graph_bytes, sig = weighted_model("DT_FLOAT", np.float32)
    model = LoadedModel(store_version(tmp_path, graph_bytes, sig), sig,
                        weights=WeightsOptions(as_variables=True, min_bytes=1024))
    try:
        ops = {op.name: op.type for op in model.graph.get_operations()}
        # w1 (2 KiB), w2 (1 KiB) and the splat (1 KiB) moved; b1, k_value and 3 are smaller
        assert ops["w1"] == ops["w2"] == "ReadVariableOp"
        assert ops["b1"] == ops["k_value"] == ops["names"] == "Const"
        assert model.weights_bytes == (16 * 32 + 32 * 8 + 16 * 16) * 4
    finally:
        model.close()


def test_the_setting_off_serves_the_frozen_graph_as_it_is(tmp_path: Path) -> None:
    graph_bytes, sig = weighted_model("DT_FLOAT", np.float32)
    model = LoadedModel(store_version(tmp_path, graph_bytes, sig), sig,
                        weights=WeightsOptions(as_variables=False, min_bytes=64))
    try:
        assert {op.type for op in model.graph.get_operations()}.isdisjoint(
            {"ReadVariableOp", "VarHandleOp"})
        assert model.weights_bytes == 0
        x = example(np.float32)
        assert np.array_equal(model.run({"x": x})["y"],
                              frozen_outputs(graph_bytes, {"x:0": x}, ["y:0"])[0])
    finally:
        model.close()


def test_instances_share_the_weights_and_answer_alike(tmp_path: Path) -> None:
    graph_bytes, sig = weighted_model("DT_DOUBLE", np.float64)
    model = LoadedModel(store_version(tmp_path, graph_bytes, sig), sig, instances=3,
                        weights=MOVE_ALL)
    try:
        x = example(np.float64)
        want = frozen_outputs(graph_bytes, {"x:0": x}, ["y:0"])[0]
        for _ in range(6):  # round robin over the three sessions, twice
            assert np.array_equal(model.run({"x": x})["y"], want)
    finally:
        model.close()


def test_a_batched_registry_with_variables_answers_every_caller_exactly(tmp_path: Path) -> None:
    # integers: a row's result does not depend on the batch it was merged into
    graph_bytes, sig = weighted_model("DT_INT32", np.int32)
    sig = ModelSignature(inputs=sig.inputs, outputs=sig.outputs[:1])
    store_version(tmp_path, graph_bytes, sig)
    settings = RegistrySettings(instances=2, weights=MOVE_ALL,
                                batching=BatchingConfig(max_batch_size=8, batch_timeout_ms=20.0))
    registry = ModelRegistry(ModelRepository(tmp_path), settings)
    registry.load_all()
    try:
        served = registry.get("weighted")
        assert served.batcher is not None
        entry = registry.latest_entry("weighted")
        assert entry.weights_bytes > 0 and entry.load_seconds > 0
        rows = [example(np.int32, rows=1) * (i + 1) for i in range(8)]
        want = [frozen_outputs(graph_bytes, {"x:0": r}, ["y:0"])[0] for r in rows]
        got: dict[int, np.ndarray] = {}

        def call(i: int) -> None:
            got[i] = served.predict({"x": rows[i]}, ["y"])["y"]

        threads = [threading.Thread(target=call, args=(i,)) for i in range(len(rows))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        assert sorted(got) == list(range(len(rows)))
        for i, w in enumerate(want):
            assert np.array_equal(got[i], w), i
    finally:
        registry.close()


def large_weight_model(width: int = 2896) -> tuple[bytes, ModelSignature]:
    """``y = x @ W`` with one ``width`` x ``width`` float32 weight (2896: 32 MiB)."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, width], name="x")
        w = np.random.default_rng(2).standard_normal((width, width), dtype=np.float32)
        tf.matmul(x, tf.constant(w, name="w"), name="y")
    graph_bytes = graph.as_graph_def().SerializeToString()
    sig = ModelSignature(inputs=(TensorSpec("x", "x:0", "DT_FLOAT", (-1, width)),),
                         outputs=(TensorSpec("y", "y:0", "DT_FLOAT", (-1, width)),))
    return graph_bytes, sig


def test_three_instances_hold_a_large_weight_about_once(tmp_path: Path) -> None:
    width = 2896
    graph_bytes, sig = large_weight_model(width)
    model = LoadedModel(store_version(tmp_path, graph_bytes, sig), sig, instances=3)
    try:
        model.warm_up()
        assert model.weights_bytes == width * width * 4
        # three sessions over constants would hold it about 15 times; shared variables once
        assert model.memory_bytes < 2 * model.weights_bytes, model.memory_bytes / 2**20
        x = np.ones((2, width), np.float32)
        want = frozen_outputs(graph_bytes, {"x:0": x}, ["y:0"])[0]
        for _ in range(3):
            np.testing.assert_array_equal(model.run({"x": x})["y"], want)
    finally:
        model.close()


def test_a_constant_whose_bytes_do_not_fit_its_shape_fails_to_load(tmp_path: Path) -> None:
    import tensorflow as tf

    from model_store import ModelLoadError

    graph_bytes, sig = weighted_model("DT_FLOAT", np.float32)
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(graph_bytes)
    w1 = next(n for n in graph_def.node if n.name == "w1")
    w1.attr["value"].tensor.tensor_shape.dim[0].size = 17  # 17x32 floats, 16x32 stored
    stored = store_version(tmp_path, graph_def.SerializeToString(), sig)
    with pytest.raises(ModelLoadError, match="malformed constant"):
        LoadedModel(stored, sig, weights=MOVE_ALL)


def test_bytes_handed_over_as_a_bytearray_are_emptied_once_parsed(tmp_path: Path) -> None:
    # the registry hashes the bytes it loads and hands them over as a bytearray: the load empties
    # it once parsed, so the registry's reference does not keep the file's bytes alive
    graph_bytes, sig = large_weight_model()
    stored = store_version(tmp_path, graph_bytes, sig)
    handed = bytearray(graph_bytes)
    model = LoadedModel(stored, sig, graph_bytes=handed)
    try:
        assert len(handed) == 0
        assert model.weights_bytes == 2896 * 2896 * 4
        x = np.ones((2, 2896), np.float32)
        np.testing.assert_array_equal(model.run({"x": x})["y"],
                                      frozen_outputs(graph_bytes, {"x:0": x}, ["y:0"])[0])
    finally:
        model.close()


#: In a fresh process (as in a server): in this one, the previous tests' sessions give memory
#: back while the load runs, which the RSS delta would count against it.
_REGISTRY_MEMORY = """
import json, sys
from pathlib import Path
from model_store import ModelRepository
from model_store.serving import ModelRegistry, RegistrySettings
from tests.model_store.serving.test_loader_memory import large_weight_model, store_version
graph_bytes, sig = large_weight_model()
store_version(Path(sys.argv[1]), graph_bytes, sig)
del graph_bytes
registry = ModelRegistry(ModelRepository(sys.argv[1]), RegistrySettings())
registry.load_all()
entry = registry.latest_entry("weighted")
print(json.dumps([entry.memory_bytes, entry.weights_bytes, entry.load_seconds]))
registry.close()
"""


def test_the_registry_measures_a_loaded_versions_memory(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[3]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(root), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", _REGISTRY_MEMORY, str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    memory, weights, seconds = json.loads(done.stdout.strip().splitlines()[-1])
    assert weights == 2896 * 2896 * 4
    # the weights once (the file's bytes, read by the registry, count and are given back)
    assert 0.8 * weights < memory < 2 * weights, memory / 2**20
    assert seconds > 0
