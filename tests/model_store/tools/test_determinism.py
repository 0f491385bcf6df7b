"""Random ops on the output path: refused, allowed loudly, caught by the ``--optimize`` check;
defaults kept by ``PlaceholderWithDefault`` shown with their values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import tensorflow as tf

from model_store import ConversionError, ModelRepository
from model_store.serving.loader import LoadedModel
from model_store.tools.determinism import random_ops
from model_store.tools.freeze import freeze_checkpoint
from model_store.tools.optimize import verify_same_outputs

from . import builders

RunCli = Callable[..., tuple[int, str, str]]
Snapshotter = Callable[[Path], object]


def test_dropout_on_the_output_path_is_refused_in_one_line(
        dropout_model: builders.Trained, store: Path, run_cli: RunCli,
        store_snapshot: Snapshotter) -> None:
    before = store_snapshot(store)
    code, out, err = run_cli("freeze", "--checkpoint", dropout_model.path, "--output",
                             "net/scores", "--model-store", store, "--name", "drop", "-q")
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfsoap: error: the outputs depend on "
                                                   "random op(s)")
    assert "RandomUniform" in lines[0] and "--allow-random-ops" in lines[0]
    assert "differ by up to" in lines[0]
    assert store_snapshot(store) == before


def test_allowed_random_ops_are_stored_with_a_warning(dropout_model: builders.Trained,
                                                      store: Path, run_cli: RunCli) -> None:
    code, out, err = run_cli("freeze", "--checkpoint", dropout_model.path, "--output",
                             "net/scores", "--model-store", store, "--name", "drop",
                             "--allow-random-ops", "--optimize")
    assert code == 0, err
    assert "WARNING  random op(s)" in out and "WARNING  the optimized graph was not checked" in out
    assert "WARNING" in err  # the progress line says it as it happens
    stored = ModelRepository(store).get("drop")
    source = json.loads(stored.signature_path.read_text())["source"]
    assert any(name.endswith("RandomUniform") for name in source["random_ops"])
    model = LoadedModel(stored)
    first = model.run(dropout_model.feeds)["scores"]
    second = model.run(dropout_model.feeds)["scores"]
    assert not np.allclose(first, second)  # what the refusal protects users from


def test_optimize_check_runs_the_frozen_graph_twice(dropout_model: builders.Trained,
                                                    store: Path) -> None:
    report = freeze_checkpoint(dropout_model.path, store, "drop", outputs=["net/scores"],
                               allow_random_ops=True)
    graph_def = tf.compat.v1.GraphDef.FromString(report.stored.graph_path.read_bytes())
    assert random_ops(graph_def)
    # The same graph "before" and "after": two fresh sessions of a seeded dropout draw the
    # same values, so only a second run in one session shows the outputs are random.
    with pytest.raises(ConversionError, match="different outputs on two runs"):
        verify_same_outputs(graph_def, graph_def, report.signature.inputs,
                            report.signature.outputs)


def test_random_ops_that_change_nothing_are_kept_with_a_note(
        classifier: builders.Trained, store: Path) -> None:
    # dropout behind a placeholder_with_default of rate 0.0: the random op is there, but
    # repeated runs agree, so the model is stored and the report says why
    report = freeze_checkpoint(classifier.path, store, "clf", outputs=["probabilities"],
                               optimize=True)
    assert any("note     random op(s)" in line and "agreed" in line for line in report.lines())
    assert report.max_optimize_diff is not None


def test_a_kept_default_shows_its_value(classifier: builders.Trained, store: Path,
                                        run_cli: RunCli) -> None:
    code, out, err = run_cli("freeze", "--checkpoint", classifier.path, "--output",
                             "probabilities", "--model-store", store, "--name", "clf")
    assert code == 0, err
    assert "default  dropout_rate = 0.0 (a PlaceholderWithDefault kept at its default" in out
    source = json.loads(ModelRepository(store).get("clf").signature_path.read_text())["source"]
    assert source["default_values"] == {"dropout_rate": "0.0"}


def test_a_training_switch_defaulting_to_true_is_shown(tmp_path: Path, store: Path) -> None:
    v1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [None, 3], name="x")
        is_training = v1.placeholder_with_default(True, [], name="is_training")
        w = v1.get_variable("w", [3, 2], initializer=v1.ones_initializer())
        y = tf.identity(tf.matmul(x, w) * tf.where(is_training, 2.0, 1.0), name="y")
        saver = v1.train.Saver()
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            saver.save(sess, str(tmp_path / "model"))
    del y
    report = freeze_checkpoint(tmp_path / "model", store, "switch", outputs=["y"])
    assert report.default_values == {"is_training": "True"}
    assert any("is_training = True" in line for line in report.lines())
