"""The Python client against the real server: metadata, listing, status, typed errors."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import tfsoap_client as tc

REPO = Path(__file__).resolve().parents[2]


def test_metadata_describes_the_signature(client) -> None:
    m = client.metadata("digits")
    assert m.model_name == "digits" and m.version == 1 and m.versions == (1,)
    assert m.state == "AVAILABLE" and m.labels == tuple(str(i) for i in range(10))
    assert m.inputs == (tc.TensorInfo("images", "DT_FLOAT", (-1, 64)),)
    assert [o.name for o in m.outputs] == ["probabilities", "classes"]
    assert m.batching is not None and m.batching["max_batch_size"] == 32
    assert "accuracy" in m.description
    assert client.metadata("affine", version=1).version == 1
    assert client.metadata("affine").versions == (1, 2)


def test_list_models_and_status(client) -> None:
    names = {m.name: m for m in client.list_models()}
    assert {"digits", "affine", "scalar"} <= set(names)
    assert names["affine"].latest_version == 2 and names["affine"].versions == (1, 2)
    status = client.status()
    assert status.ready and status.uptime_seconds > 0 and status.server_version
    assert any(m["model_name"] == "digits" and m["state"] == "AVAILABLE" for m in status.models)
    digits = next(m for m in status.models if m["model_name"] == "digits")
    # measured at load: the RSS the load added (>= 0) and its seconds (> 0)
    assert digits["memory_bytes"] is not None and digits["memory_bytes"] >= 0
    assert digits["load_seconds"] is not None and digits["load_seconds"] > 0


def test_committed_wsdl_file_works_as_the_client_contract(server) -> None:
    c = tc.PredictClient(server.url, wsdl=str(REPO / "wsdl" / "PredictService.wsdl"))
    y = c.predict("scalar", {"x": np.float32(2)})["y"]
    assert float(y) == 4.0


def test_a_dead_server_is_a_transport_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(tc.TransportError):
        tc.PredictClient(f"http://127.0.0.1:{port}/", timeout=3)
    c = tc.PredictClient(f"http://127.0.0.1:{port}/", timeout=3,
                         wsdl=str(REPO / "wsdl" / "PredictService.wsdl"))
    with pytest.raises(tc.TransportError):
        c.list_models()


def test_a_server_that_never_answers_is_a_timeout_not_a_hang() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    try:
        c = tc.PredictClient(f"http://127.0.0.1:{port}/", timeout=1,
                             wsdl=str(REPO / "wsdl" / "PredictService.wsdl"))
        with pytest.raises(tc.TransportError, match="timed out"):
            c.list_models()
    finally:
        for conn in accepted:
            conn.close()
        listener.close()


def test_fault_classes_mirror_the_server_codes() -> None:
    from soap_server.soap.faults import ALL_CODES

    assert set(tc.errors.FAULT_CLASSES) == set(ALL_CODES)
    assert tc.errors.fault_class("Server.Whatever") is tc.InternalServerError


def test_public_api_is_declared() -> None:
    assert sorted(tc.__all__) == sorted(
        ["AuthenticationFailedError", "ClientError", "InferenceError", "InternalServerError",
         "InvalidInputError", "MalformedRequestError", "ModelMetadata", "ModelNotFoundError",
         "ModelSummary", "NotAuthorizedError", "PredictClient", "PredictResult",
         "RequestTooLargeError", "ServerFault", "ServerStatus", "TensorInfo", "TransportError",
         "UnavailableError", "from_wire", "to_wire"])


def test_walkthrough_example_runs(server) -> None:
    run = subprocess.run([sys.executable, str(REPO / "clients" / "python" / "examples" /
                                              "walkthrough.py"), server.url],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "predicted classes (typed):          [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]" in run.stdout
    assert "predicted classes (tensor_content): [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]" in run.stdout
    assert "fault for an unknown model: Client.ModelNotFound" in run.stdout
