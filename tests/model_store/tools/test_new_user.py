"""What a new user trips on: step-suffixed checkpoints, near-miss output names, Keras names and
renames, batching flags, arguments checked before TensorFlow, and one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import pytest

from model_store import ConversionError, ModelRepository
from model_store.serving.loader import LoadedModel
from model_store.tools import Renames, convert_keras
from model_store.tools.checkpoint import locate_checkpoint

from . import builders

RunCli = Callable[..., tuple[int, str, str]]
REPO = Path(__file__).resolve().parents[3]


def _fake_checkpoint(folder: Path, prefix: str) -> None:
    for suffix in (".index", ".data-00000-of-00001", ".meta"):
        (folder / f"{prefix}{suffix}").write_bytes(b"")


def test_a_prefix_without_its_step_resolves_to_the_latest_step(tmp_path: Path) -> None:
    for step in (100, 200):
        _fake_checkpoint(tmp_path, f"model.ckpt-{step}")
    (tmp_path / "checkpoint").write_text(
        'model_checkpoint_path: "model.ckpt-200"\n'
        'all_model_checkpoint_paths: "model.ckpt-100"\n'
        'all_model_checkpoint_paths: "model.ckpt-200"\n')
    ckpt = locate_checkpoint(tmp_path / "model.ckpt")
    assert ckpt.prefix == str(tmp_path / "model.ckpt-200")
    assert ckpt.given == str(tmp_path / "model.ckpt")
    assert locate_checkpoint(tmp_path).prefix == str(tmp_path / "model.ckpt-200")


def test_a_wrong_prefix_lists_the_real_ones(tmp_path: Path) -> None:
    for step in (100, 200):
        _fake_checkpoint(tmp_path, f"model.ckpt-{step}")
    with pytest.raises(ConversionError) as caught:
        locate_checkpoint(tmp_path / "weights")  # no state file, and another name
    message = caught.value.message
    assert "weights.index is missing" in message
    assert f"{tmp_path / 'model.ckpt-100'}, {tmp_path / 'model.ckpt-200'}" in message


def test_freeze_takes_the_prefix_training_passed_to_save(
        classifier: builders.Trained, tmp_path: Path, store: Path, run_cli: RunCli) -> None:
    run = tmp_path / "run"
    run.mkdir()
    for path in Path(classifier.path).parent.glob("model.*"):
        shutil.copy(path, run / path.name.replace("model", "model.ckpt-200", 1))
    (run / "checkpoint").write_text('model_checkpoint_path: "model.ckpt-200"\n')
    code, out, err = run_cli("freeze", "--checkpoint", run / "model.ckpt", "--output",
                             "probabilities", "--model-store", store, "--name", "clf")
    assert code == 0, err
    assert f"using its latest checkpoint, {run / 'model.ckpt-200'}" in err
    got = LoadedModel(ModelRepository(store).get("clf")).run(classifier.feeds)
    np.testing.assert_allclose(got["probabilities"], classifier.expected["probabilities"],
                               rtol=1e-5, atol=1e-6)


def test_a_near_miss_output_name_gets_suggestions(classifier: builders.Trained, store: Path,
                                                  run_cli: RunCli) -> None:
    code, out, err = run_cli("freeze", "--checkpoint", classifier.path, "--output", "prob",
                             "--model-store", store, "--name", "clf", "-q")
    assert code == 2
    assert err.strip().splitlines() == [
        "tfsoap: error: no node named 'prob' in the meta graph; did you mean probabilities?"]


def _ops_section(report: str) -> str:
    """The ``ops (...)`` part of an inspect report: its heading and indented lines."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ops ("))
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("  ")),
               len(lines))
    return "\n".join(lines[start:end])


def test_inspect_lists_likely_outputs_and_can_leave_training_ops_out(
        classifier: builders.Trained, run_cli: RunCli) -> None:
    code, out, err = run_cli("inspect", classifier.path)
    assert code == 0, err
    likely = next(line for line in out.splitlines() if "likely outputs:" in line)
    assert "probabilities (Softmax)" in likely and "gradients" not in likely
    code, out, _ = run_cli("inspect", classifier.path, "--ops")
    every = _ops_section(out)
    code2, out, _ = run_cli("inspect", classifier.path, "--ops", "--no-training-ops")
    fewer = _ops_section(out)
    assert code == code2 == 0
    assert "gradients/" in every and "/Adam" in every
    assert "gradients/" not in fewer and "/Adam" not in fewer and "save/" not in fewer
    assert "training ops left out" in fewer and "  probabilities (Softmax)" in fewer


def test_inspect_tensor_prints_only_that_tensor(classifier: builders.Trained,
                                                run_cli: RunCli) -> None:
    code, out, err = run_cli("inspect", classifier.path, "--tensor", "mlp/out_b")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert lines[0] == "tensor: mlp/out_b (float32) [10]"
    assert not any(line.startswith("tensor: mlp/hidden") for line in lines)
    assert "weights:" not in out


def test_keras_names_are_kept_and_can_be_renamed(keras_custom: builders.Trained,
                                                 custom_layers: object, store: Path,
                                                 run_cli: RunCli) -> None:
    code, out, err = run_cli("convert-keras", keras_custom.path, "--custom-objects",
                             "tfsoap_custom_layers", "--model-store", store, "--name", "k",
                             "--input-alias", "feats=features", "--output-alias",
                             "probs=probabilities,score=risk")
    assert code == 0, err
    stored = ModelRepository(store).get("k")
    sig = stored.read_signature()
    assert [t.alias for t in sig.inputs] == ["features", "extra"]
    assert [t.alias for t in sig.outputs] == ["probabilities", "risk"]
    source = json.loads(stored.signature_path.read_text())["source"]
    assert source["keras_inputs"] == ["feats", "extra"]
    assert source["keras_outputs"] == ["probs", "score"]
    got = LoadedModel(stored).run({"features": keras_custom.feeds["feats"],
                                   "extra": keras_custom.feeds["extra"]})
    np.testing.assert_allclose(got["risk"], keras_custom.expected["score"], rtol=1e-5,
                               atol=1e-6)
    with pytest.raises(ConversionError, match=r"cannot rename input\(s\) \['nope'\]"):
        convert_keras(keras_custom.path, store, "k2", custom_objects="tfsoap_custom_layers",
                      renames=Renames.parse(["nope=x"]))


def test_a_single_named_input_keeps_its_name(tmp_path: Path, store: Path) -> None:
    inp = keras.Input((4,), name="features")
    model = keras.Model(inp, keras.layers.Dense(2, name="scores")(inp))
    model.save(tmp_path / "m.keras")
    report = convert_keras(tmp_path / "m.keras", store, "m")
    assert [t.alias for t in report.signature.inputs] == ["features"]
    assert [t.alias for t in report.signature.outputs] == ["scores"]
    source = json.loads(report.stored.signature_path.read_text())["source"]
    assert source["keras_outputs"] == ["scores"]


def test_a_weights_only_h5_says_the_architecture_is_needed(tmp_path: Path, store: Path,
                                                           run_cli: RunCli) -> None:
    inp = keras.Input((4,), name="features")
    model = keras.Model(inp, keras.layers.Dense(2)(inp))
    model.save_weights(tmp_path / "m.weights.h5")
    code, out, err = run_cli("convert-keras", tmp_path / "m.weights.h5", "--model-store", store,
                             "--name", "m")
    assert code == 2
    assert "holds only weights" in err and "architecture" in err
    assert "--custom-objects" not in err


def test_batching_flags_write_the_batching_section(classifier: builders.Trained, store: Path,
                                                   run_cli: RunCli) -> None:
    code, out, err = run_cli("freeze", "--checkpoint", classifier.path, "--output",
                             "probabilities", "--model-store", store, "--name", "clf",
                             "--max-batch-size", "32", "--batch-timeout-ms", "3")
    assert code == 0, err
    stored = ModelRepository(store).get("clf")
    assert json.loads(stored.signature_path.read_text())["batching"] == {
        "max_batch_size": 32, "batch_timeout_ms": 3.0, "max_enqueued_batches": 64}
    batching = stored.read_signature().batching
    assert batching is not None and batching.enabled
    code, out, err = run_cli("freeze", "--checkpoint", classifier.path, "--output",
                             "probabilities", "--model-store", store, "--name", "clf",
                             "--batch-timeout-ms", "3")
    assert code == 2 and "need --max-batch-size" in err


def test_batching_needs_a_batch_dimension(tmp_path: Path, store: Path) -> None:
    inp = keras.Input((4,), batch_size=1, name="features")
    keras.Model(inp, keras.layers.Dense(2, name="scores")(inp)).save(tmp_path / "m.keras")
    from model_store import BatchingConfig

    with pytest.raises(ConversionError, match="leading batch dimension"):
        convert_keras(tmp_path / "m.keras", store, "m", batching=BatchingConfig(8))


def test_an_existing_version_says_to_leave_out_version(classifier: builders.Trained,
                                                       store: Path, run_cli: RunCli) -> None:
    args = ("freeze", "--checkpoint", classifier.path, "--output", "probabilities",
            "--model-store", store, "--name", "clf", "--version", "1")
    assert run_cli(*args)[0] == 0
    code, out, err = run_cli(*args)
    assert code == 2 and "already has version 1" in err and "leave out --version" in err


def _tfsoap(*argv: str) -> subprocess.CompletedProcess[str]:
    """``tfsoap ARGV`` in a fresh interpreter that reports whether TensorFlow got imported."""
    code = ("import sys\nfrom soap_server.cli import main\nrc = main(sys.argv[1:])\n"
            "print('TF_IMPORTED' if 'tensorflow' in sys.modules else 'TF_NOT_IMPORTED')\n"
            "sys.exit(rc)\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # the CLI must quiet TensorFlow by itself
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True,
                          env=env, timeout=120, cwd=REPO)


@pytest.mark.parametrize("argv", [
    ("freeze", "--checkpoint", "{ckpt}", "--model-store", "{store}", "--name", "bad name"),
    ("freeze", "--checkpoint", "{tmp}/missing", "--model-store", "{store}", "--name", "ok"),
    ("convert-keras", "{tmp}/missing.keras", "--model-store", "{store}", "--name", "ok"),
    ("convert-savedmodel", "{tmp}", "--model-store", "{store}", "--name", "ok"),
    ("inspect", "{tmp}/nothing"),
], ids=["bad-name", "missing-checkpoint", "missing-keras", "not-a-savedmodel", "inspect"])
def test_bad_arguments_fail_before_tensorflow_is_imported(
        argv: tuple[str, ...], classifier: builders.Trained, tmp_path: Path) -> None:
    values = {"ckpt": classifier.path, "store": str(tmp_path / "store"), "tmp": str(tmp_path)}
    done = _tfsoap(*(a.format(**values) for a in argv))
    assert done.returncode == 2
    assert done.stdout.strip() == "TF_NOT_IMPORTED"
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tfsoap: error: "), done.stderr


def test_tensorflow_start_up_noise_is_kept_out(classifier: builders.Trained) -> None:
    done = _tfsoap("inspect", classifier.path, "--tensor", "mlp/out_b")
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no oneDNN, absl or C++ lines
    assert done.stdout.startswith("tensor: mlp/out_b")
    loud = _tfsoap("inspect", classifier.path, "--tensor", "mlp/out_b", "--verbose")
    assert loud.returncode == 0 and "oneDNN" in loud.stderr
