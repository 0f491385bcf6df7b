"""TF Serving's gRPC API (``PredictionService``, ``ModelService``) on its own port, over the
same dataplane as SOAP and REST.

It needs the ``tensorflow-serving-api`` package, installed without its dependencies (it
depends on ``tensorflow``, which would sit beside ``tensorflow-cpu``)::

    pip install --no-deps tensorflow-serving-api

``start_grpc_server`` says so in one line when the package is missing. Importing its protobuf
modules loads the ``tensorflow`` package's ``__init__`` (their ``tensorflow.core`` messages live
there); the server process has TensorFlow loaded for ``model_store.serving`` anyway, and nothing
here calls TensorFlow: tensors are converted with numpy (``tensors``).
"""

from __future__ import annotations

import importlib.util
import socket
from typing import TYPE_CHECKING

from model_store.serving import import_tensorflow

from ..settings import SettingsError

if TYPE_CHECKING:
    from ..dataplane import DataPlane
    from .service import GrpcServer

MISSING = ("the gRPC API needs the tensorflow-serving-api package: "
           "pip install --no-deps tensorflow-serving-api")


class GrpcUnavailableError(SettingsError):
    """``--grpc-port`` was given but ``tensorflow-serving-api`` or ``grpcio`` is missing (a
    settings error, so ``tfsoap serve`` reports it in one line)."""


def start_grpc_server(dataplane: DataPlane, host: str, port: int,
                      max_message_bytes: int) -> GrpcServer:
    """Serve TF Serving's gRPC API on ``host:port`` (0: a free port); returns the server."""
    import_tensorflow()  # before TF's protobuf modules, and not racing the loader thread
    try:
        from .service import GrpcServer
    except ImportError as exc:
        raise GrpcUnavailableError(f"{MISSING} ({exc.name or exc} is missing)") from None
    return GrpcServer(dataplane, host, port, max_message_bytes).start()


def check_grpc_port(host: str, port: int) -> None:
    """Before the worker processes start (each listens on ``port`` with SO_REUSEPORT): the
    package is installed and no other process holds the port, so either is one error line
    rather than a failure in every worker. Imports neither grpcio (its core should not be
    loaded in the process that forks the workers) nor TensorFlow nor the protobufs."""
    for module in ("grpc", "tensorflow_serving"):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):  # ValueError: a None in sys.modules
            found = False
        if not found:
            raise GrpcUnavailableError(f"{MISSING} ({module} is missing)")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:  # without SO_REUSEPORT: refused even when the holder set it (another tfsoap)
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
    except OSError as exc:
        raise SettingsError(f"cannot listen for gRPC on {host}:{port}: "
                            f"{exc.strerror or exc}") from None


__all__ = ["MISSING", "GrpcUnavailableError", "check_grpc_port", "start_grpc_server"]
