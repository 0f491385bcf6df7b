"""TF Serving's gRPC API on the session's test server (its dataplane, its pool), called with
the official ``tensorflow-serving-api`` stubs. Without that package the tests skip with the
install line, except on CI (``CI=true``), where they fail."""

from __future__ import annotations

import importlib.util
from typing import Any, Iterator

import pytest

from tests.conftest import in_ci


def require_serving_api() -> None:
    if importlib.util.find_spec("tensorflow_serving") is not None:
        return
    message = ("tensorflow-serving-api is not installed; install it with: "
               "pip install --no-deps tensorflow-serving-api")
    if in_ci():
        pytest.fail(message + " [CI=true: gRPC tests must run]", pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def grpc_server(server: Any) -> Iterator[Any]:
    require_serving_api()
    from soap_server.grpc import start_grpc_server

    srv = start_grpc_server(server.app.dataplane, "127.0.0.1", 0,
                            server.app.settings.max_body_bytes)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def channel(grpc_server: Any) -> Iterator[Any]:
    import grpc

    with grpc.insecure_channel(grpc_server.target) as ch:
        yield ch


@pytest.fixture(scope="session")
def stub(channel: Any) -> Any:
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    return prediction_service_pb2_grpc.PredictionServiceStub(channel)
