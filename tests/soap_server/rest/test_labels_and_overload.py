"""Version labels (TF Serving's ``version_labels``) from ``model.json`` and the settings, and
REST's 503 when a model is overloaded, on a server of their own."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import numpy as np
import pytest
from lxml import etree

from model_store import ModelRepository
from soap_server.app import start_server
from soap_server.settings import Settings, SettingsError
from tests.models import affine_expected, affine_model, slow_model
from tests.soap_server.raw import envelope, parse_fault, post

from .conftest import rest_call


@pytest.fixture(scope="module")
def labelled_server(tmp_path_factory: pytest.TempPathFactory):
    root: Path = tmp_path_factory.mktemp("labelled_store")
    repo = ModelRepository(root)
    for version, v in ((1, 1.0), (2, 2.0)):
        graph, sig = affine_model(v)
        if version == 2:  # the newest model.json declares the labels
            sig = dataclasses.replace(sig, extra={"version_labels": {"stable": 1, "canary": 2}})
        repo.write_version("affine", graph, sig, version=version)
    graph, sig = slow_model(size=400, steps=256)
    repo.write_version("slow", graph, sig, version=1)
    srv = start_server(Settings(model_store=str(root), port=0, max_concurrent_runs=1,
                                max_queued=1, version_labels="slow:live=1, affine:beta=1"))
    assert srv.wait_ready(60)
    yield srv
    srv.stop()


@pytest.mark.parametrize("label,v", [("stable", 1.0), ("canary", 2.0), ("beta", 1.0)])
def test_a_label_predicts_with_its_version(labelled_server, label, v) -> None:
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    status, answer, _ = rest_call(labelled_server.url, "POST",
                                  f"/v1/models/affine/labels/{label}:predict",
                                  {"instances": x.tolist()})
    assert status == 200, answer
    np.testing.assert_allclose(answer["predictions"], affine_expected(x, v), rtol=1e-6)


def test_labels_reach_status_and_metadata(labelled_server) -> None:
    status, answer, _ = rest_call(labelled_server.url, "GET", "/v1/models/affine/labels/canary")
    assert status == 200
    assert [s["version"] for s in answer["model_version_status"]] == ["2"]
    status, answer, _ = rest_call(labelled_server.url, "GET",
                                  "/v1/models/affine/labels/stable/metadata")
    assert status == 200 and answer["model_spec"]["version"] == "1"
    status, answer, _ = rest_call(labelled_server.url, "GET", "/v1/models/slow/labels/stable")
    assert status == 404 and "no version label 'stable'" in answer["error"]


@pytest.mark.parametrize("label,v", [("stable", 1.0), ("canary", 2.0), ("beta", 1.0)])
def test_soap_clients_pick_a_version_by_label(labelled_server, label, v) -> None:
    import tfsoap_client as tc

    client = tc.PredictClient(labelled_server.url)
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    result = client.predict_result("affine", {"x": x}, version_label=label)
    assert result.version == int(v)
    np.testing.assert_allclose(result.outputs["y"], affine_expected(x, v), rtol=1e-6)
    assert client.metadata("affine", version_label=label).version == int(v)


def test_the_soap_fast_path_reads_version_label(labelled_server) -> None:
    # a plain Predict (no SOAP header) takes the fast path, not Spyne's
    body = envelope("<t:Predict><t:model_name>affine</t:model_name><t:inputs><t:Tensor>"
                    "<t:name>x</t:name><t:dtype>DT_FLOAT</t:dtype><t:shape><t:long>1</t:long>"
                    "<t:long>4</t:long></t:shape><t:float_val><t:float>1</t:float>"
                    "<t:float>2</t:float><t:float>3</t:float><t:float>4</t:float></t:float_val>"
                    "</t:Tensor></t:inputs><t:version_label>canary</t:version_label>"
                    "</t:Predict>")
    answer = post(labelled_server.url, body)
    assert answer.status == 200, answer.body[:500]
    versions = [el.text for el in etree.fromstring(answer.body).iter()
                if isinstance(el.tag, str) and etree.QName(el).localname == "version"]
    assert versions == ["2"], answer.body[:500]


def test_soap_label_faults(labelled_server) -> None:
    import tfsoap_client as tc

    client = tc.PredictClient(labelled_server.url)
    x = np.ones((1, 4), np.float32)
    with pytest.raises(tc.ModelNotFoundError, match="no version label 'gold'"):
        client.predict("affine", {"x": x}, version_label="gold")
    with pytest.raises(tc.InvalidInputError, match="not both"):
        client.predict("affine", {"x": x}, version=1, version_label="stable")
    with pytest.raises(tc.ModelNotFoundError, match="no version label"):
        client.metadata("slow", version_label="stable")
    raw = post(labelled_server.url, envelope(
        "<t:Predict><t:model_name>affine</t:model_name><t:inputs/>"
        "<t:version_label>a\nb</t:version_label></t:Predict>"))
    fault = parse_fault(raw)
    assert fault.code == "Client.ModelNotFound" and "not a plain label" in fault.message


def test_settings_labels_are_checked() -> None:
    with pytest.raises(SettingsError):
        Settings().with_overrides({"version_labels": "affine:stable"})
    with pytest.raises(SettingsError):
        Settings().with_overrides({"version_labels": "affine:stable=0"})


def test_overload_gets_503_and_the_model_recovers(labelled_server) -> None:
    x = np.ones((4, 400), np.float32).tolist()  # small JSON, a long run: they overlap
    statuses: list[int] = []
    errors: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def call() -> None:
        barrier.wait(timeout=60)
        status, answer, _ = rest_call(labelled_server.url, "POST",
                                      "/v1/models/slow/labels/live:predict", {"inputs": x})
        with lock:
            statuses.append(status)
            if status != 200:
                errors.append(answer["error"])

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(statuses) == 6 and set(statuses) <= {200, 503}, statuses
    assert statuses.count(503) >= 1 and statuses.count(200) >= 1
    assert all("slow" in e for e in errors), errors
    status, _, _ = rest_call(labelled_server.url, "POST", "/v1/models/slow:predict",
                             {"instances": [[0.0] * 400]})
    assert status == 200


def test_a_busy_http_front_refuses_rest_with_503_json(tmp_path: Path) -> None:
    # One thread and one pending request: the front refuses the rest at once, before they
    # run, and REST callers get TF Serving's 503 with a JSON error (not a SOAP fault).
    repo = ModelRepository(tmp_path)
    graph, sig = slow_model(size=400, steps=256)
    repo.write_version("slow", graph, sig, version=1)
    srv = start_server(Settings(model_store=str(tmp_path), port=0, threads=1,
                                max_pending_requests=1))
    try:
        assert srv.wait_ready(60)
        x = np.ones((4, 400), np.float32).tolist()  # small JSON, a long run: they overlap
        answers: list[tuple[int, dict]] = []
        lock = threading.Lock()
        barrier = threading.Barrier(6)

        def call() -> None:
            barrier.wait(timeout=60)
            status, answer, _ = rest_call(srv.url, "POST", "/v1/models/slow:predict",
                                          {"inputs": x})
            with lock:
                answers.append((status, answer))

        threads = [threading.Thread(target=call) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        statuses = sorted(s for s, _ in answers)
        assert len(statuses) == 6 and set(statuses) <= {200, 503}, answers
        assert statuses.count(200) >= 1 and statuses.count(503) >= 1, statuses
        assert all(a == {"error": "the server is busy; retry later"}
                   for s, a in answers if s == 503), answers
    finally:
        srv.stop()


@pytest.mark.parametrize("label_xml", [
    '<t:version_label xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:nil="true"/>',
    "<t:version_label/>"])
def test_a_nil_or_empty_soap_label_means_no_label(labelled_server, label_xml) -> None:
    # WCF's serializer sends an unset string this way; the WSDL's field is still not nillable
    answer = post(labelled_server.url, envelope(
        f"<t:GetModelMetadata><t:model_name>affine</t:model_name>{label_xml}"
        "</t:GetModelMetadata>"))
    assert answer.status == 200, answer.body[:500]
    versions = [el.text for el in etree.fromstring(answer.body).iter()
                if isinstance(el.tag, str) and etree.QName(el).localname == "version"]
    assert versions[0] == "2"
