"""End to end: every form a trained model arrives in is converted into one store, served by
one real server, and answers ``Predict`` through the zeep client with the original outputs."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from model_store.tools.convert import convert_keras, convert_savedmodel
from model_store.tools.freeze import freeze_checkpoint
from soap_server.app import start_server
from soap_server.settings import Settings
from tfsoap_client import PredictClient

from . import builders


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, classifier: builders.Trained,
           two_scopes: builders.Trained, dropout_model: builders.Trained,
           keras_custom: builders.Trained, custom_layers: ModuleType,
           keras_cnn: builders.Trained, savedmodel: builders.Trained):
    store: Path = tmp_path_factory.mktemp("converted")
    freeze_checkpoint(classifier.path, store, "by_node", outputs=["mlp/logits", "probabilities"])
    freeze_checkpoint(classifier.path, store, "by_collection", output_collection="logits")
    freeze_checkpoint(classifier.path, store, "optimized", outputs=["probabilities"],
                      optimize=True)
    for scope in ("model_a", "model_b"):
        freeze_checkpoint(two_scopes.path, store, scope, scope=scope, outputs=["logits"])
    freeze_checkpoint(dropout_model.path, store, "from_builder",
                      builder=builders.build_inference)
    convert_keras(keras_custom.path, store, "keras_custom", custom_objects="tfsoap_custom_layers")
    convert_keras(keras_custom.extra["h5"], store, "keras_custom_h5",
                  custom_objects="tfsoap_custom_layers")
    convert_keras(keras_cnn.path, store, "keras_cnn", optimize=True)
    convert_savedmodel(savedmodel.path, store, "scorer")
    srv = start_server(Settings(model_store=str(store), port=0))
    assert srv.wait_ready(120)
    yield PredictClient(srv.url)
    srv.stop()


def close(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_frozen_checkpoints_answer_like_the_original_session(served, classifier) -> None:
    feeds = classifier.feeds
    by_node = served.predict("by_node", feeds)
    assert set(by_node) == {"logits", "probabilities"}
    close(by_node["logits"], classifier.expected["mlp/logits"])
    close(by_node["probabilities"], classifier.expected["probabilities"])
    close(served.predict("by_collection", feeds)["logits"], classifier.expected["mlp/logits"])
    close(served.predict("optimized", feeds, encoding="typed")["probabilities"],
          classifier.expected["probabilities"])


def test_two_scoped_models_from_one_checkpoint_are_served_side_by_side(served,
                                                                       two_scopes) -> None:
    a = served.predict("model_a", two_scopes.feeds)["logits"]
    b = served.predict("model_b", two_scopes.feeds)["logits"]
    assert a.shape[1] == 10 and b.shape[1] == 3
    close(a, two_scopes.expected["model_a/logits"])
    close(b, two_scopes.expected["model_b/logits"])


def test_builder_inference_graph_is_served(served, dropout_model) -> None:
    meta = served.metadata("from_builder")
    (only_input,) = meta.inputs
    out = served.predict("from_builder", {only_input.name: dropout_model.feeds["x"]})
    close(out[meta.outputs[0].name], dropout_model.expected["scores"])


def test_keras_models_answer_like_model_predict(served, keras_custom, keras_cnn) -> None:
    for name in ("keras_custom", "keras_custom_h5"):
        meta = served.metadata(name)
        assert [t.name for t in meta.inputs] == ["feats", "extra"]
        assert [t.name for t in meta.outputs] == ["probs", "score"]
        out = served.predict(name, keras_custom.feeds)
        close(out["probs"], keras_custom.expected["probs"])
        close(out["score"], keras_custom.expected["score"])
    close(served.predict("keras_cnn", keras_cnn.feeds)["output_0"],
          keras_cnn.expected["output_0"])


def test_savedmodel_keeps_its_signature_keys(served, savedmodel) -> None:
    meta = served.metadata("scorer")
    assert {t.name for t in meta.inputs} == {"features", "ids"}
    assert {t.name for t in meta.outputs} == {"scores", "best", "ids_twice"}
    out = served.predict("scorer", savedmodel.feeds)
    for key, want in savedmodel.expected.items():
        close(out[key], want)
