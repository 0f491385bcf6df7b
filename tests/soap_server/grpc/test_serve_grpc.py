"""``tfsoap serve --grpc-port``: one process answers SOAP, TF Serving's REST API and its gRPC
API from the same pool; without ``tensorflow-serving-api`` it stops with one line."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from model_store import bundled_store_path
from tests.soap_server.rest.conftest import rest_call

from .conftest import require_serving_api

REPO = Path(__file__).resolve().parents[3]
DIGITS = np.load(f"{bundled_store_path()}/../demo_data/digits_images.npy")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "2"}


def _wait_available(url: str, proc: subprocess.Popen[str], timeout: float = 180) -> None:
    """Until REST says AVAILABLE (workers listen once loaded: connections are refused before,
    and TF Serving's status answers 200 while LOADING too)."""
    deadline = time.monotonic() + timeout
    while True:
        assert time.monotonic() < deadline and proc.poll() is None
        try:
            status, answer, _ = rest_call(url, "GET", "/v1/models/digits")
            if status == 200 and answer["model_version_status"][0]["state"] == "AVAILABLE":
                return
        except OSError:
            pass
        time.sleep(0.2)


def test_tfsoap_serve_with_two_workers_answers_rest_and_grpc_with_the_right_digits() -> None:
    require_serving_api()
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    grpc_port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "soap_server.cli", "serve", "--host",
                             "127.0.0.1", "--port", "0", "--workers", "2",
                             "--grpc-port", str(grpc_port)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=_env(), cwd=REPO)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = re.search(r"at (http://\S+/) ", line)
        assert url, line
        assert f"gRPC at 127.0.0.1:{grpc_port}" in line, line
        _wait_available(url[1], proc)
        status, answer, _ = rest_call(url[1], "POST", "/v1/models/digits:predict",
                                      {"instances": DIGITS.tolist()})
        assert status == 200, answer
        assert [p["classes"] for p in answer["predictions"]] == list(range(10))
        request = predict_pb2.PredictRequest()
        request.model_spec.name = "digits"
        request.inputs["images"].CopyFrom(tf.make_tensor_proto(DIGITS))
        # Each worker process listens on the gRPC port (SO_REUSEPORT) and names its request
        # ids with a prefix of its own: new connections (one channel each, not sharing
        # grpcio's global subchannel pool) reach both.
        # The second worker may still be loading its models when the first answers REST.
        workers: set[str] = set()
        deadline = time.monotonic() + 180
        for _ in range(600):
            with grpc.insecure_channel(f"127.0.0.1:{grpc_port}",
                                       options=[("grpc.use_local_subchannel_pool", 1)]) \
                    as channel:
                stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                response, call = stub.Predict.with_call(request, timeout=60)
            assert tf.make_ndarray(response.outputs["classes"]).tolist() == list(range(10))
            rid = dict(call.trailing_metadata())["x-request-id"]
            workers.add(rid[:7])
            if len(workers) == 2 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert len(workers) == 2, workers
    finally:
        proc.terminate()
        code = proc.wait(timeout=60)
    assert code == 0  # SIGTERM: gRPC and HTTP stopped, the workers drained


def test_grpc_port_without_the_package_is_one_line() -> None:
    code = ("import sys; sys.modules['tensorflow_serving'] = None\n"
            "from soap_server.cli import main; sys.exit(main(['serve', '--port', '0', "
            "'--grpc-port', '1']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=_env(), cwd=REPO)
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("tfsoap: error:")]
    assert errors == [errors[0]] and "pip install --no-deps tensorflow-serving-api" in errors[0]
    assert "Traceback" not in done.stderr


def test_a_grpc_port_in_use_is_one_line_before_any_worker_starts() -> None:
    with socket.socket() as holder:  # another process's listener, as far as serve can tell
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "soap_server.cli", "serve", "--host",
                               "127.0.0.1", "--port", "0", "--grpc-port", str(port)],
                              capture_output=True, text=True, timeout=300, env=_env(), cwd=REPO)
    assert done.returncode == 2, done.stderr[-2000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("tfsoap: error:")]
    assert len(errors) == 1 and f"cannot listen for gRPC on 127.0.0.1:{port}" in errors[0]
    assert "Traceback" not in done.stderr and "Spawning worker" not in done.stdout
