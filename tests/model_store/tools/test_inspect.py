"""``tfsoap inspect``: checkpoints, frozen graphs, store entries and SavedModels."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format

from model_store.tools.freeze import freeze_checkpoint
from model_store.tools.inspect import inspect_model

from . import builders

RunCli = Callable[..., tuple[int, str, str]]
_TENSOR_LINE = re.compile(r"^tensor: (\S+) \((\w+)\) \[([\d, ]*)\]$")


def _tensor_lines(text: str) -> dict[str, list[int]]:
    found = {}
    for line in text.splitlines():
        m = _TENSOR_LINE.match(line)
        if m:
            found[m.group(1)] = [int(d) for d in m.group(3).split(",") if d.strip()]
    return found


def test_checkpoint_tensors_match_tensorflows_inspect_checkpoint(
        classifier: builders.Trained, run_cli: RunCli) -> None:
    code, out, err = run_cli("inspect", classifier.path)
    assert code == 0, err
    ours = _tensor_lines(out)
    theirs_text = subprocess.run(
        [sys.executable, "-m", "tensorflow.python.tools.inspect_checkpoint",
         f"--file_name={classifier.path}"], capture_output=True, text=True, check=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}).stdout
    theirs = {}
    for line in theirs_text.splitlines():  # "name (DT_FLOAT) [16,64]"
        m = re.match(r"^(\S+) \((DT_\w+)\) \[([\d,]*)\]$", line)
        if m:
            theirs[m.group(1)] = [int(d) for d in m.group(3).split(",") if d]
    assert theirs and ours == theirs
    assert "mlp/hidden_w/Adam" in ours


def test_checkpoint_lines_equal_inspect_checkpoint_all_tensor_names(
        two_scopes: builders.Trained, capsys: pytest.CaptureFixture[str]) -> None:
    from tensorflow.python.tools import inspect_checkpoint

    inspect_checkpoint.print_tensors_in_checkpoint_file(two_scopes.path, "", False,
                                                        all_tensor_names=True)
    theirs = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("tensor: ")]
    report = inspect_model(two_scopes.path)
    assert [t.describe() for t in report.tensors] == theirs


def test_variables_and_trainable_come_from_the_meta_graph(classifier: builders.Trained,
                                                          run_cli: RunCli) -> None:
    report = inspect_model(classifier.path, variables=True, trainable=True)
    assert report.trainable is not None and report.variables is not None
    assert [t.name for t in report.trainable] == ["mlp/hidden_w", "mlp/hidden_b", "mlp/out_w",
                                                  "mlp/out_b"]
    assert {"beta1_power", "mlp/out_w/Adam"} <= {t.name for t in report.variables}
    code, out, _ = run_cli("inspect", classifier.path, "--trainable")
    assert code == 0 and "trainable variables (4):" in out and "mlp/out_w (float32) [64, 10]" in out


def test_values_on_request(classifier: builders.Trained, run_cli: RunCli) -> None:
    want = tf.train.load_checkpoint(classifier.path).get_tensor("mlp/out_b")
    report = inspect_model(classifier.path, tensor="mlp/out_b")
    np.testing.assert_array_equal(report.values["mlp/out_b"], want)
    assert len(report.values) == 1
    everything = inspect_model(classifier.path, values=True)
    assert set(everything.values) == {t.name for t in everything.tensors}
    code, out, err = run_cli("inspect", classifier.path, "--tensor", "mlp/nope")
    assert code == 2 and "tensor 'mlp/nope' is not in checkpoint" in err


def test_frozen_graph_and_store_entry(classifier: builders.Trained, tmp_path: Path,
                                      run_cli: RunCli) -> None:
    store = tmp_path / "store"
    freeze_checkpoint(classifier.path, store, "clf", outputs=["probabilities"])
    freeze_checkpoint(classifier.path, store, "clf", outputs=["mlp/logits"])
    code, out, err = run_cli("inspect", store / "clf", "--ops")
    assert code == 0, err
    assert "model clf version 2" in out  # <store>/<name> means the latest version
    assert "input images <- images:0 DT_FLOAT [-1, 16]" in out
    assert "  mlp/hidden_w (Const)" in out
    code, out, err = run_cli("inspect", store / "clf" / "1" / "model.pb", "--variables")
    assert code == 0, err
    assert "outputs (unconsumed nodes): probabilities" in out
    assert "tensor: mlp/hidden_w (float32) [16, 64]" in out
    report = inspect_model(store / "clf" / "1", tensor="mlp/out_b")
    want = tf.train.load_checkpoint(classifier.path).get_tensor("mlp/out_b")
    np.testing.assert_array_equal(report.values["mlp/out_b"], want)


def test_savedmodel_signatures_and_variables(savedmodel: builders.Trained,
                                             run_cli: RunCli) -> None:
    code, out, err = run_cli("inspect", savedmodel.path, "--variables", "--trainable")
    assert code == 0, err
    assert "signature serving_default:" in out
    assert "input  features: DT_FLOAT [-1, 5]" in out
    assert "output best: DT_INT64 [-1]" in out
    assert "  w (float32) [5, 3]" in out
    assert "tensor: w/.ATTRIBUTES/VARIABLE_VALUE (float32) [5, 3]" in out


def test_pbtxt_holds_the_whole_graph(classifier: builders.Trained, tmp_path: Path,
                                     run_cli: RunCli) -> None:
    target = tmp_path / "graph.pbtxt"
    code, _, err = run_cli("inspect", classifier.path, "--pbtxt", target)
    assert code == 0, err
    graph_def = text_format.Parse(target.read_text(), tf.compat.v1.GraphDef())
    assert len(graph_def.node) == len(inspect_model(classifier.path).ops)
    assert "mlp/logits" in {n.name for n in graph_def.node}


def test_nothing_to_inspect_is_one_error_line(tmp_path: Path, run_cli: RunCli) -> None:
    code, out, err = run_cli("inspect", tmp_path / "nothing")
    assert code == 2 and out == ""
    assert err.strip().startswith("tfsoap: error: nothing to inspect at")
    assert len(err.strip().splitlines()) == 1
