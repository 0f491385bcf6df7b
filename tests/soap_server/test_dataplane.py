"""The dataplane's use cases, without HTTP: the rules live here, not in the Spyne methods."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from model_store import InvalidInputError, ModelNotFoundError, ModelRepository
from model_store.serving.registry import ModelRegistry
from soap_server.dataplane import DataPlane
from tests.models import affine_expected


@pytest.fixture(scope="module")
def plane(test_store: Path) -> DataPlane:
    reg = ModelRegistry(ModelRepository(test_store))
    reg.load_all()
    yield DataPlane(reg, "test")
    reg.close()


def test_predict_answers_with_the_version_and_outputs_in_signature_order(plane) -> None:
    x = np.ones((3, 4), np.float32)
    res = plane.predict("affine", None, [("x", x)], None, "r1")
    assert res.version == 2 and [n for n, _ in res.outputs] == ["y"]
    np.testing.assert_allclose(res.outputs[0][1], affine_expected(x, 2.0))


def test_an_input_given_twice_is_invalid(plane) -> None:
    x = np.ones((1, 4), np.float32)
    with pytest.raises(InvalidInputError, match="given twice"):
        plane.predict("affine", None, [("x", x), ("x", x)], None)


def test_metadata_list_and_status(plane) -> None:
    m = plane.metadata("affine", 1)
    assert m.version == 1 and m.versions == [1, 2] and m.signature.labels == ("a", "b", "c")
    assert {s.name for s in plane.list_models()} >= {"affine", "scalar"}
    status = plane.status()
    assert status.ready and any(v.model_name == "affine" for v in status.models)
    affine = next(v for v in status.models if v.model_name == "affine")
    assert affine.load_seconds is not None and affine.load_seconds > 0
    assert affine.memory_bytes is not None and affine.memory_bytes >= 0
    with pytest.raises(ModelNotFoundError):
        plane.metadata("affine", 9)


def test_each_call_logs_one_line_with_the_request_id(plane, caplog) -> None:
    import logging

    with caplog.at_level(logging.INFO, logger="soap_server.dataplane"):
        with pytest.raises(ModelNotFoundError):
            plane.predict("ghost", None, [], None, "rid-77")
    lines = [r.getMessage() for r in caplog.records if "rid-77" in r.getMessage()]
    assert len(lines) == 1
    assert "op=Predict model=ghost" in lines[0] and "outcome=Client.ModelNotFound" in lines[0]


def test_version_zero_means_the_latest(plane) -> None:
    x = np.ones((1, 4), np.float32)
    assert plane.predict("affine", 0, [("x", x)], None).version == 2
    assert plane.metadata("affine", 0).version == 2
