"""Small real TensorFlow models for the model_store tests, trained briefly into temp folders.

TF1-style models are built in graph mode through ``tf.compat.v1`` and saved by
``tf.compat.v1.train.Saver``; Keras models by ``model.save``; the SavedModel by
``tf.saved_model.save``. ``build_inference`` is the ``--builder`` used by the tests: it rebuilds
``train_with_dropout``'s network without dropout.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import tensorflow as tf

v1 = tf.compat.v1
FEATURES, CLASSES = 16, 10


@dataclass
class Trained:
    """A saved model and what the original session computed on ``feeds``."""

    path: str
    feeds: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]
    extra: dict[str, Any] = field(default_factory=dict)


def _dense(x: Any, n_out: int, name: str, resource: bool = True) -> Any:
    w = v1.get_variable(f"{name}_w", [x.shape[-1], n_out], use_resource=resource,
                        initializer=v1.glorot_uniform_initializer(seed=1))
    b = v1.get_variable(f"{name}_b", [n_out], use_resource=resource,
                        initializer=v1.zeros_initializer())
    return tf.matmul(x, w) + b


def _batch(seed: int, n: int = 8, shape: tuple[int, ...] = (FEATURES,)) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, *shape)).astype(np.float32)


def _train_and_save(graph: Any, loss: Any, feeds: dict[str, np.ndarray], prefix: Path,
                    fetch: dict[str, Any], steps: int = 5, train_feeds: dict[Any, Any] | None
                    = None) -> dict[str, np.ndarray]:
    with graph.as_default():
        train = v1.train.AdamOptimizer(0.01).minimize(loss)
        saver = v1.train.Saver()
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            feed = {graph.get_tensor_by_name(k + ":0"): v for k, v in feeds.items()}
            for _ in range(steps):
                sess.run(train, {**feed, **(train_feeds or {})})
            expected = sess.run(fetch, feed)
            saver.save(sess, str(prefix))
    return expected


def train_classifier(folder: Path) -> Trained:
    """An MLP with dropout behind a PlaceholderWithDefault, Adam-trained; logits in a collection."""
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(0)
        images = v1.placeholder(tf.float32, [None, FEATURES], name="images")
        labels = v1.placeholder(tf.int64, [None], name="labels")
        rate = v1.placeholder_with_default(0.0, [], name="dropout_rate")
        with v1.variable_scope("mlp"):
            hidden = tf.nn.relu(_dense(images, 64, "hidden"))
            hidden = tf.nn.dropout(hidden, rate=rate)
            logits = tf.identity(_dense(hidden, CLASSES, "out"), name="logits")
        probs = tf.nn.softmax(logits, name="probabilities")
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=logits))
        v1.add_to_collection("logits", logits)
    feeds = {"images": _batch(1), "labels": np.arange(8) % CLASSES}
    expected = _train_and_save(graph, loss, feeds, folder / "model",
                               {"mlp/logits": logits, "probabilities": probs},
                               train_feeds={rate: 0.2})
    return Trained(str(folder / "model"), {"images": feeds["images"]}, expected)


def train_two_scopes(folder: Path) -> Trained:
    """Two models under scopes ``model_a`` and ``model_b`` sharing one input, one checkpoint."""
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(0)
        images = v1.placeholder(tf.float32, [None, FEATURES], name="images")
        with v1.variable_scope("model_a"):
            a = tf.identity(_dense(tf.nn.relu(_dense(images, 32, "h")), CLASSES, "o"),
                            name="logits")
        with v1.variable_scope("model_b"):  # reference (VariableV2) variables
            b = tf.identity(_dense(tf.tanh(_dense(images, 8, "h", False)), 3, "o", False),
                            name="logits")
        v1.add_to_collection("logits", a)
        v1.add_to_collection("logits", b)
        loss = tf.reduce_mean(a ** 2) + tf.reduce_mean((b - 1.0) ** 2)
    feeds = {"images": _batch(2)}
    expected = _train_and_save(graph, loss, feeds, folder / "model",
                               {"model_a/logits": a, "model_b/logits": b})
    return Trained(str(folder / "model"), feeds, expected)


def _net(x: Any, dropout: float | None) -> Any:
    with v1.variable_scope("net"):
        hidden = tf.nn.relu(_dense(x, 32, "hidden"))
        if dropout is not None:
            hidden = tf.nn.dropout(hidden, rate=dropout, seed=3)
        return tf.identity(_dense(hidden, 4, "out"), name="scores")


def train_with_dropout(folder: Path) -> Trained:
    """A training graph with always-on dropout; ``expected`` is the network without it."""
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(0)
        x = v1.placeholder(tf.float32, [None, FEATURES], name="x")
        scores = _net(x, dropout=0.5)
        loss = tf.reduce_mean((scores - 1.0) ** 2)
    feeds = {"x": _batch(3)}
    _train_and_save(graph, loss, feeds, folder / "model", {"scores": scores})
    reader = tf.train.load_checkpoint(str(folder / "model"))
    w = {k: reader.get_tensor(f"net/{k}") for k in ("hidden_w", "hidden_b", "out_w", "out_b")}
    hidden = np.maximum(feeds["x"] @ w["hidden_w"] + w["hidden_b"], 0)
    return Trained(str(folder / "model"), feeds, {"scores": hidden @ w["out_w"] + w["out_b"]})


def build_inference() -> dict[str, Any]:
    """``--builder`` for ``train_with_dropout``: the same variables, no dropout."""
    x = v1.placeholder(tf.float32, [None, FEATURES], name="features")
    return {"inputs": {"features": x}, "outputs": {"scores": _net(x, dropout=None)}}


def build_outputs_only() -> Any:
    """A builder that returns just the output tensor (inputs are found)."""
    x = v1.placeholder(tf.float32, [None, FEATURES], name="x")
    return _net(x, dropout=None)


def build_with_unknown_variable() -> Any:
    """A builder whose graph has a variable the checkpoint lacks (``net/extra``)."""
    x = v1.placeholder(tf.float32, [None, FEATURES], name="x")
    with v1.variable_scope("net"):
        extra = v1.get_variable("extra", [4])
    return _net(x, dropout=None) + extra


def build_with_wrong_shape() -> Any:
    """A builder whose ``net/hidden_w`` has another shape than in the checkpoint."""
    x = v1.placeholder(tf.float32, [None, FEATURES + 1], name="x")
    return _net(x, dropout=None)


def _conv_bn(x: Any, n_out: int, name: str) -> Any:
    w = v1.get_variable(f"{name}/w", [3, 3, x.shape[-1], n_out],
                        initializer=v1.glorot_uniform_initializer(seed=2))
    gamma = v1.get_variable(f"{name}/gamma", [n_out], initializer=v1.ones_initializer())
    beta = v1.get_variable(f"{name}/beta", [n_out], initializer=v1.zeros_initializer())
    mean = v1.get_variable(f"{name}/moving_mean", [n_out], trainable=False,
                           initializer=v1.random_normal_initializer(0.0, 0.1, seed=4))
    var = v1.get_variable(f"{name}/moving_variance", [n_out], trainable=False,
                          initializer=v1.random_uniform_initializer(0.5, 1.5, seed=5))
    y = tf.nn.conv2d(x, w, strides=1, padding="SAME")
    y, _, _ = v1.nn.fused_batch_norm(y, gamma, beta, mean, var, is_training=False)
    return tf.nn.relu(y)


def train_conv_bn(folder: Path, size: int = 16, width: int = 16, blocks: int = 2) -> Trained:
    """A small CNN with inference-mode fused batch norms (what ``--optimize`` folds)."""
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(0)
        images = v1.placeholder(tf.float32, [None, size, size, 3], name="images")
        y = images
        for i in range(blocks):
            y = _conv_bn(y, width * (i + 1), f"block{i}")
        logits = tf.identity(_dense(tf.reduce_mean(y, axis=[1, 2]), CLASSES, "head"),
                             name="logits")
        loss = tf.reduce_mean(logits ** 2)
    feeds = {"images": _batch(4, 4, (size, size, 3))}
    expected = _train_and_save(graph, loss, feeds, folder / "model", {"logits": logits}, steps=2)
    return Trained(str(folder / "model"), feeds, expected)


CUSTOM_LAYER_SOURCE = '''"""A custom Keras layer, deliberately not registered with Keras."""
import keras


class Scale(keras.layers.Layer):
    def __init__(self, factor=2.0, **kwargs):
        super().__init__(**kwargs)
        self.factor = factor

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],),
                                     initializer="ones")

    def call(self, x):
        return x * self.scale * self.factor

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}
'''


def write_custom_layers(folder: Path, name: str = "tfsoap_custom_layers") -> ModuleType:
    """Write the custom-layer module into ``folder`` and import it."""
    path = folder / f"{name}.py"
    path.write_text(CUSTOM_LAYER_SOURCE)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def save_keras_custom(folder: Path, layers: ModuleType) -> Trained:
    """A two-input, two-output functional model with the custom layer, as .keras and .h5."""
    import keras

    keras.utils.set_random_seed(0)
    feats = keras.Input((8,), name="feats")
    extra = keras.Input((3,), name="extra")
    h = keras.layers.Dense(16, activation="relu")(feats)
    h = keras.layers.BatchNormalization()(h)
    h = layers.Scale(3.0)(h)
    h = keras.layers.Concatenate()([h, extra])
    model = keras.Model([feats, extra], [keras.layers.Dense(4, activation="softmax",
                                                            name="probs")(h),
                                         keras.layers.Dense(1, name="score")(h)])
    model.compile("adam", "mse")
    x = [_batch(5, 16, (8,)), _batch(6, 16, (3,))]
    model.fit(x, [np.ones((16, 4)) / 4, np.zeros((16, 1))], epochs=1, verbose=0)
    model.save(folder / "custom.keras")
    model.save(folder / "custom.h5")
    expected = model.predict(x, verbose=0)
    return Trained(str(folder / "custom.keras"), {"feats": x[0], "extra": x[1]},
                   {"probs": expected[0], "score": expected[1]},
                   {"h5": str(folder / "custom.h5")})


def save_keras_cnn(folder: Path) -> Trained:
    """A Sequential CNN with batch norm, saved in the legacy .h5 format."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((12, 12, 3)),
                              keras.layers.Conv2D(8, 3, padding="same"),
                              keras.layers.BatchNormalization(),
                              keras.layers.ReLU(),
                              keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(5)])
    model.compile("adam", "mse")
    x = _batch(7, 8, (12, 12, 3))
    model.fit(x, np.zeros((8, 5)), epochs=2, verbose=0)
    model.save(folder / "cnn.h5")
    return Trained(str(folder / "cnn.h5"), {"input_0": x},
                   {"output_0": model.predict(x, verbose=0)})


class _Scorer(tf.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = tf.Variable(tf.random.stateless_normal([5, 3], seed=[1, 2]), name="w")
        self.b = tf.Variable(tf.constant([0.1, -0.2, 0.3]), name="b")

    @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.float32, name="features"),
                                  tf.TensorSpec([None], tf.int32, name="ids")])
    def serve(self, features: Any, ids: Any) -> dict[str, Any]:
        scores = tf.matmul(features, self.w) + self.b
        return {"scores": scores, "best": tf.argmax(scores, axis=1), "ids_twice": ids * 2}

    @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.float32, name="x")])
    def norm(self, x: Any) -> dict[str, Any]:
        return {"norm": tf.norm(tf.matmul(x, self.w), axis=1)}


def save_savedmodel(folder: Path) -> Trained:
    """A ``tf.Module`` SavedModel with two signatures; ``expected`` from the loaded signature."""
    module = _Scorer()
    path = folder / "savedmodel"
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve,
                                                       "norm": module.norm})
    feeds = {"features": _batch(8, 6, (5,)), "ids": np.arange(6, dtype=np.int32)}
    loaded = tf.saved_model.load(str(path)).signatures["serving_default"]
    expected = {k: v.numpy() for k, v in loaded(features=tf.constant(feeds["features"]),
                                                ids=tf.constant(feeds["ids"])).items()}
    return Trained(str(path), feeds, expected)
