"""``tfsoap freeze``: checkpoints into frozen store versions, checked against real sessions."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import tensorflow as tf

from model_store import ModelRepository
from model_store.serving.loader import LoadedModel
from model_store.tools.affine_folding import fold_affine_chains
from model_store.tools.checkpoint import locate_checkpoint
from model_store.tools.freeze import freeze_checkpoint, freeze_restored
from model_store.tools.optimize import run_graph_def
from model_store.tools.restore import open_meta_graph, restore_scoped

from . import builders

RunCli = Callable[..., tuple[int, str, str]]
Snapshotter = Callable[[Path], object]


def _run_frozen(pb: bytes, feeds: dict[str, np.ndarray], fetches: list[str]) -> list[np.ndarray]:
    graph_def = tf.compat.v1.GraphDef.FromString(pb)
    graph = tf.Graph()
    with graph.as_default():
        tf.compat.v1.import_graph_def(graph_def, name="")
    with tf.compat.v1.Session(graph=graph) as sess:
        return sess.run(fetches, {k + ":0": v for k, v in feeds.items()})


def _ops(stored_path: Path) -> set[str]:
    graph_def = tf.compat.v1.GraphDef.FromString((stored_path / "model.pb").read_bytes())
    return {n.op for n in graph_def.node}


@pytest.mark.parametrize("how", [["--output", "mlp/logits,probabilities"],
                                 ["--output-collection", "logits"]],
                         ids=["by-node-name", "by-collection"])
def test_frozen_outputs_match_session_and_tf_freeze_graph(
        how: list[str], classifier: builders.Trained, store: Path, tmp_path: Path,
        run_cli: RunCli) -> None:
    code, out, err = run_cli("freeze", "--checkpoint", classifier.path, *how,
                             "--model-store", store, "--name", "clf")
    assert code == 0, err
    stored = ModelRepository(store).get("clf")
    model = LoadedModel(stored)
    got = model.run(classifier.feeds)
    np.testing.assert_allclose(got["logits"], classifier.expected["mlp/logits"], rtol=1e-6)
    if "probabilities" in got:
        np.testing.assert_allclose(got["probabilities"], classifier.expected["probabilities"],
                                   rtol=1e-6)

    from tensorflow.python.tools import freeze_graph

    theirs = tmp_path / "tf_frozen.pb"
    outputs = "mlp/logits,probabilities" if "--output" in how else "mlp/logits"
    freeze_graph.freeze_graph(None, "", True, classifier.path, outputs, "", "", str(theirs),
                              True, "", input_meta_graph=classifier.path + ".meta")
    fetches = [f"{n}:0" for n in outputs.split(",")]
    ours = _run_frozen(stored.graph_path.read_bytes(), classifier.feeds, fetches)
    reference = _run_frozen(theirs.read_bytes(), classifier.feeds, fetches)
    for a, b in zip(ours, reference):
        np.testing.assert_array_equal(a, b)
    assert "stored clf version 1" in out and "images" in out


def test_frozen_graph_is_smaller_and_has_no_training_ops(classifier: builders.Trained,
                                                         store: Path) -> None:
    report = freeze_checkpoint(classifier.path, store, "clf", outputs=["probabilities"])
    assert report.frozen_bytes == report.stored.graph_path.stat().st_size
    assert report.frozen_bytes < report.source_bytes == locate_checkpoint(
        classifier.path).size_bytes
    assert report.nodes_frozen < report.nodes_before
    ops = _ops(report.stored.path)
    assert not ops & {"VarHandleOp", "VariableV2", "ApplyAdam", "ResourceApplyAdam",
                      "SaveV2", "RestoreV2"}
    assert [t.alias for t in report.signature.inputs] == ["images"]
    assert [t.alias for t in report.signature.outputs] == ["probabilities"]
    assert report.signature.inputs[0].shape == (-1, builders.FEATURES)


def test_placeholder_with_default_is_kept_unless_named(classifier: builders.Trained,
                                                       store: Path) -> None:
    report = freeze_checkpoint(classifier.path, store, "clf", outputs=["logits=mlp/logits"])
    assert report.defaults_kept == ("dropout_rate",)
    meta = json.loads(report.stored.signature_path.read_text())
    assert meta["source"]["defaults_kept"] == ["dropout_rate"]
    assert [t.alias for t in report.signature.outputs] == ["logits"]

    named = freeze_checkpoint(classifier.path, store, "clf", outputs=["mlp/logits"],
                              inputs=["images,dropout_rate"])
    assert [t.alias for t in named.signature.inputs] == ["images", "dropout_rate"]
    assert named.defaults_kept == ()
    out = LoadedModel(named.stored).run({"images": classifier.feeds["images"],
                                         "dropout_rate": np.array(0.0, np.float32)})
    np.testing.assert_allclose(out["logits"], classifier.expected["mlp/logits"], rtol=1e-6)


def test_an_input_that_is_not_a_placeholder_cuts_the_graph(classifier: builders.Trained,
                                                            store: Path) -> None:
    report = freeze_checkpoint(classifier.path, store, "head", outputs=["mlp/logits"],
                               inputs=["hidden=mlp/Relu"])
    assert [(t.alias, t.shape) for t in report.signature.inputs] == [("hidden", (-1, 64))]
    graph_def = tf.compat.v1.GraphDef.FromString(report.stored.graph_path.read_bytes())
    assert not {"images", "mlp/hidden_w"} & {n.name for n in graph_def.node}
    with open_meta_graph(classifier.path) as restored:
        restored.restore_model()
        hidden = restored.run(["mlp/Relu"], classifier.feeds)[0]
    got = LoadedModel(report.stored).run({"hidden": hidden})["logits"]
    np.testing.assert_allclose(got, classifier.expected["mlp/logits"], rtol=1e-6)


def test_builder_freezes_an_inference_graph_without_dropout(
        dropout_model: builders.Trained, store: Path, tmp_path: Path, run_cli: RunCli,
        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "cwd_builder.py").write_text(
        "from tests.model_store.tools.builders import build_inference\n")
    monkeypatch.chdir(tmp_path)  # MODULE is imported from the current folder
    code, out, err = run_cli("freeze", "--checkpoint", dropout_model.path, "--builder",
                             "cwd_builder:build_inference", "--model-store", store,
                             "--name", "scorer")
    assert code == 0, err
    stored = ModelRepository(store).get("scorer")
    assert "RandomUniform" not in _ops(stored.path)
    model = LoadedModel(stored)
    feeds = {"features": dropout_model.feeds["x"]}
    first, second = model.run(feeds)["scores"], model.run(feeds)["scores"]
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(first, dropout_model.expected["scores"], rtol=1e-5, atol=1e-6)


def test_builder_returning_outputs_only_finds_its_inputs(dropout_model: builders.Trained,
                                                         store: Path) -> None:
    report = freeze_checkpoint(dropout_model.path, store, "scorer",
                               builder=builders.build_outputs_only)
    assert [t.alias for t in report.signature.inputs] == ["x"]
    got = LoadedModel(report.stored).run(dropout_model.feeds)["scores"]
    np.testing.assert_allclose(got, dropout_model.expected["scores"], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("scope,how", [("model_a", ["--output-collection", "logits"]),
                                       ("model_b", ["--output", "logits"])])
def test_two_scopes_of_one_checkpoint_become_two_models(
        scope: str, how: list[str], two_scopes: builders.Trained, store: Path,
        run_cli: RunCli) -> None:
    code, _, err = run_cli("freeze", "--checkpoint", two_scopes.path, "--scope", scope, *how,
                           "--model-store", store, "--name", scope)
    assert code == 0, err
    stored = ModelRepository(store).get(scope)
    sig = stored.read_signature()
    assert [t.alias for t in sig.inputs] == ["images"]
    assert [t.alias for t in sig.outputs] == ["logits"]
    got = LoadedModel(stored).run(two_scopes.feeds)["logits"]
    np.testing.assert_allclose(got, two_scopes.expected[f"{scope}/logits"], rtol=1e-6)
    other = "model_b" if scope == "model_a" else "model_a"
    graph_def = tf.compat.v1.GraphDef.FromString(stored.graph_path.read_bytes())
    assert not [n.name for n in graph_def.node if n.name.startswith(other)]


def test_restore_scoped_shares_one_session(two_scopes: builders.Trained, store: Path) -> None:
    with restore_scoped(locate_checkpoint(two_scopes.path), ["model_a", "model_b"]) as models:
        assert models["model_a"].session is models["model_b"].session
        for scope, model in models.items():
            live = model.run(["logits"], two_scopes.feeds)[0]
            np.testing.assert_allclose(live, two_scopes.expected[f"{scope}/logits"], rtol=1e-6)
            report = freeze_restored(model, store, scope, outputs=["logits"])
            frozen = LoadedModel(report.stored).run(two_scopes.feeds)["logits"]
            np.testing.assert_allclose(frozen, live, rtol=1e-6)
            assert not any("Adam" in n for n in model.restored)


def test_optimize_folds_batch_norms_with_the_same_outputs(conv_bn: builders.Trained,
                                                          store: Path) -> None:
    plain = freeze_checkpoint(conv_bn.path, store, "cnn", outputs=["logits"])
    fast = freeze_checkpoint(conv_bn.path, store, "cnn", outputs=["logits"], optimize=True)
    a = LoadedModel(plain.stored).run(conv_bn.feeds)["logits"]
    b = LoadedModel(fast.stored).run(conv_bn.feeds)["logits"]
    np.testing.assert_allclose(a, conv_bn.expected["logits"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    assert "FusedBatchNormV3" in _ops(plain.stored.path)
    assert not _ops(fast.stored.path) & {"FusedBatchNorm", "FusedBatchNormV3"}
    assert fast.nodes_optimized is not None and fast.nodes_optimized < plain.nodes_frozen
    assert fast.stored.read_signature().inputs == plain.stored.read_signature().inputs


def test_labels_and_description_go_to_model_json(classifier: builders.Trained, store: Path,
                                                 tmp_path: Path, run_cli: RunCli) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("\n".join(f"digit {i}" for i in range(10)) + "\n")
    code, _, err = run_cli("freeze", "--checkpoint", classifier.path, "--output",
                           "probabilities", "--labels", labels, "--description", "an MLP",
                           "--version", "7", "--model-store", store, "--name", "clf", "-q")
    assert code == 0 and err == ""
    sig = ModelRepository(store).get("clf", 7).read_signature()
    assert sig.labels[3] == "digit 3" and len(sig.labels) == 10
    assert sig.description == "an MLP"


def _no_meta_copy(classifier: builders.Trained, folder: Path) -> str:
    folder.mkdir()
    for f in Path(classifier.path).parent.glob("model.*"):
        if f.suffix != ".meta":
            shutil.copy(f, folder / f.name)
    return str(folder / "model")


Models = tuple[builders.Trained, builders.Trained, Path]  # classifier, dropout model, tmp

FAILURES: dict[str, tuple[Callable[[Models], list[str]], str]] = {
    "missing checkpoint": (lambda m: ["--checkpoint", str(m[2] / "nope"), "--output", "x"],
                           "no checkpoint at"),
    "missing meta": (lambda m: ["--checkpoint", _no_meta_copy(m[0], m[2] / "nometa"),
                                "--output", "probabilities"], ".meta is missing"),
    "no such output": (lambda m: ["--checkpoint", m[0].path, "--output", "mlp/logitz"],
                       "no node named 'mlp/logitz'"),
    "no such collection": (lambda m: ["--checkpoint", m[0].path, "--output-collection", "nope"],
                           "no collection 'nope'"),
    "variable missing from checkpoint": (
        lambda m: ["--checkpoint", m[1].path, "--builder",
                   "tests.model_store.tools.builders:build_with_unknown_variable"],
        "variable net/extra [4] is missing from checkpoint"),
    "variable shape differs": (
        lambda m: ["--checkpoint", m[1].path, "--builder",
                   "tests.model_store.tools.builders:build_with_wrong_shape"],
        "variable net/hidden_w has shape [17, 32] in the builder's graph but [16, 32]"),
    "scope without variables": (lambda m: ["--checkpoint", m[0].path, "--scope", "nothing",
                                           "--output", "probabilities"],
                                "scope 'nothing' has no variables"),
    "version taken": (lambda m: ["--checkpoint", m[0].path, "--output", "probabilities",
                                 "--version", "1"], "already has version 1"),
    "labels file missing": (lambda m: ["--checkpoint", m[0].path, "--output", "probabilities",
                                       "--labels", str(m[2] / "none.txt")],
                            "cannot read labels file"),
    "bad alias": (lambda m: ["--checkpoint", m[0].path, "--output", "9x=probabilities"],
                  "alias '9x' is not a plain name"),
    "bad model name": (lambda m: ["--checkpoint", m[0].path, "--output", "probabilities",
                                  "--name", "../evil"], "invalid model name"),
}


@pytest.mark.parametrize("case", list(FAILURES))
def test_failures_leave_the_store_unchanged(case: str, classifier: builders.Trained,
                                            dropout_model: builders.Trained, store: Path,
                                            tmp_path: Path, run_cli: RunCli,
                                            store_snapshot: Snapshotter) -> None:
    freeze_checkpoint(classifier.path, store, "clf", outputs=["probabilities"])
    before = store_snapshot(store)
    make_args, expected = FAILURES[case]
    code, out, err = run_cli("freeze", "--model-store", store, "--name", "clf",
                             *make_args((classifier, dropout_model, tmp_path)))
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("tfsoap: error:")]
    assert len(errors) == 1 and expected in errors[0], err
    assert "Traceback" not in err and out == ""
    assert store_snapshot(store) == before


def test_a_failure_on_an_empty_store_creates_nothing(classifier: builders.Trained,
                                                     store: Path, run_cli: RunCli) -> None:
    code, _, err = run_cli("freeze", "--checkpoint", classifier.path, "--output", "nope",
                           "--model-store", store, "--name", "clf")
    assert code == 2 and "no node named 'nope'" in err
    assert not store.exists()


def test_affine_chains_fold_into_the_matmul_but_outputs_survive() -> None:
    rng = np.random.default_rng(0)
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, [None, 4], name="x")
        biased = tf.nn.bias_add(tf.matmul(x, tf.constant(rng.random((4, 3)), tf.float32)),
                                tf.constant([0.1, 0.2, 0.3]), name="biased")
        tf.add(biased * tf.constant([2.0, 3.0, 4.0]), tf.constant([1.0, 1.0, 1.0]), name="out")
    graph_def = graph.as_graph_def()
    folded, count = fold_affine_chains(graph_def, ["x", "out"])
    folded = tf.compat.v1.graph_util.extract_sub_graph(folded, ["out"])
    assert count == 1 and [n.op for n in folded.node if n.op not in ("Const",)] == [
        "Placeholder", "MatMul", "BiasAdd"]
    feeds = {"x:0": rng.random((5, 4)).astype(np.float32)}
    np.testing.assert_allclose(run_graph_def(folded, feeds, ["out:0"])[0],
                               run_graph_def(graph_def, feeds, ["out:0"])[0], rtol=1e-6)
    _, count = fold_affine_chains(graph_def, ["x", "out", "biased"])
    assert count == 0  # "biased" is an output too: the chain may not fold it away
