"""TF Serving's gRPC API: ``tensorflow.serving.PredictionService`` (``Predict``,
``GetModelMetadata``) and ``ModelService`` (``GetModelStatus``), over the same ``DataPlane``.

The messages and stubs are those of the ``tensorflow-serving-api`` package, so a client written
for TF Serving works unchanged. Like ``soap_server.rest`` this only translates: the outcome codes
of the one table become gRPC status codes (``NOT_FOUND``, ``INVALID_ARGUMENT``, ``UNAVAILABLE``,
``INTERNAL``), with the SOAP faults' words as details.
"""

from __future__ import annotations

import itertools
import logging
import os
from concurrent import futures
from typing import Any, Callable, TypeVar

import grpc
from tensorflow_serving.apis import (
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_service_pb2_grpc,
    predict_pb2,
    prediction_service_pb2_grpc,
)

from model_store.errors import InvalidInputError, UnavailableError

from ..dataplane import DataPlane, ModelMetadata
from ..outcomes import (
    INFERENCE_ERROR,
    INTERNAL,
    INVALID_INPUT,
    MALFORMED_REQUEST,
    MODEL_NOT_FOUND,
    REQUEST_TOO_LARGE,
    UNAVAILABLE,
    outcome_of,
)
from .tensors import fill_proto, to_array

log = logging.getLogger(__name__)
T = TypeVar("T")

#: The outcome codes as gRPC status codes (TF Serving's for the same cases).
GRPC_STATUS = {
    MODEL_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    INVALID_INPUT: grpc.StatusCode.INVALID_ARGUMENT,
    MALFORMED_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    REQUEST_TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    INFERENCE_ERROR: grpc.StatusCode.INTERNAL,
    INTERNAL: grpc.StatusCode.INTERNAL,
}
SIGNATURE = "serving_default"
_STATE = {"LOADING": "LOADING", "AVAILABLE": "AVAILABLE", "FAILED": "END"}


class _Calls:
    """Request ids and the translation of failures, shared by both services."""

    def __init__(self, dataplane: DataPlane, max_tensor_bytes: int) -> None:
        self.dataplane = dataplane
        self.max_tensor_bytes = max_tensor_bytes
        self._prefix = "g" + os.urandom(3).hex()
        self._counter = itertools.count(1)

    def run(self, context: grpc.ServicerContext, work: Callable[[str], T]) -> T:
        rid = f"{self._prefix}{next(self._counter) & 0xFFFFFFFF:08x}"
        context.set_trailing_metadata((("x-request-id", rid),))
        try:
            return work(rid)
        except Exception as exc:
            code = outcome_of(exc)
            if code == INTERNAL:
                log.exception("gRPC request %s failed", rid)
                message = f"internal server error (request id {rid})"
            else:
                message = getattr(exc, "message", None) or str(exc)
            context.abort(GRPC_STATUS.get(code, grpc.StatusCode.INTERNAL), message)
            raise AssertionError("unreachable") from None  # abort raises


def _spec(model_spec: Any) -> tuple[str, int | None, str | None]:
    if model_spec.signature_name not in ("", SIGNATURE):
        raise InvalidInputError(f"Serving signature name: {model_spec.signature_name[:100]!r} "
                                f"not found in signature def; the only one is {SIGNATURE!r}")
    version = model_spec.version.value if model_spec.HasField("version") else None
    label = model_spec.version_label if model_spec.HasField("version_label") else None
    return model_spec.name, version, label


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``Predict`` and ``GetModelMetadata`` (``Classify``, ``Regress``, ``MultiInference`` are
    left UNIMPLEMENTED: a frozen graph has one predict signature)."""

    def __init__(self, calls: _Calls) -> None:
        self.calls = calls

    def Predict(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        def work(rid: str) -> Any:
            name, version, label = _spec(request.model_spec)
            inputs = [(alias, to_array(proto, alias, self.calls.max_tensor_bytes))
                      for alias, proto in request.inputs.items()]
            result = self.calls.dataplane.predict(name, version, inputs,
                                                  list(request.output_filter) or None, rid,
                                                  version_label=label)
            response = predict_pb2.PredictResponse()
            response.model_spec.name = result.model_name
            response.model_spec.version.value = result.version
            response.model_spec.signature_name = SIGNATURE
            for alias, arr in result.outputs:
                fill_proto(response.outputs[alias], arr)
            return response
        return self.calls.run(context, work)

    def GetModelMetadata(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        def work(rid: str) -> Any:
            name, version, label = _spec(request.model_spec)
            fields = list(request.metadata_field)
            if fields != ["signature_def"]:
                raise InvalidInputError("metadata_field must be ['signature_def'], the only "
                                        f"metadata served; got {fields[:5]}")
            meta = self.calls.dataplane.metadata(name, version, rid, version_label=label)
            return metadata_response(meta)
        return self.calls.run(context, work)


def metadata_response(meta: ModelMetadata) -> Any:
    """A ``GetModelMetadataResponse`` with the ``serving_default`` signature of ``meta``."""
    if meta.signature is None:
        raise UnavailableError(f"model {meta.model_name!r} version {meta.version} has no "
                               f"signature to show (state {meta.state})")
    sig_map = get_model_metadata_pb2.SignatureDefMap()
    sig_def = sig_map.signature_def[SIGNATURE]
    sig_def.method_name = "tensorflow/serving/predict"
    for target, group in ((sig_def.inputs, meta.signature.inputs),
                          (sig_def.outputs, meta.signature.outputs)):
        for spec in group:
            info = target[spec.alias]
            info.name = spec.name
            info.dtype = info.DESCRIPTOR.fields_by_name["dtype"].enum_type.values_by_name[
                spec.dtype].number
            if spec.shape is None:
                info.tensor_shape.unknown_rank = True
            else:
                for d in spec.shape:
                    info.tensor_shape.dim.add(size=d)
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = meta.model_name
    response.model_spec.version.value = meta.version
    response.metadata["signature_def"].Pack(sig_map)
    return response


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """``GetModelStatus`` (``HandleReloadConfigRequest`` is left UNIMPLEMENTED)."""

    def __init__(self, calls: _Calls) -> None:
        self.calls = calls

    def GetModelStatus(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        def work(rid: str) -> Any:
            spec = request.model_spec
            version = spec.version.value if spec.HasField("version") else None
            label = spec.version_label if spec.HasField("version_label") else None
            statuses = self.calls.dataplane.model_status(spec.name, version, label, rid)
            response = get_model_status_pb2.GetModelStatusResponse()
            for s in sorted(statuses, key=lambda s: -s.version):
                item = response.model_version_status.add()
                item.version = s.version
                item.state = item.State.Value(_STATE.get(s.state, "UNKNOWN"))
                item.status.error_code = 2 if s.error else 0  # tensorflow.error.UNKNOWN / OK
                item.status.error_message = s.error
            return response
        return self.calls.run(context, work)


class GrpcServer:
    """TF Serving's gRPC services on their own port, in this process."""

    def __init__(self, dataplane: DataPlane, host: str, port: int, max_message_bytes: int,
                 workers: int = 16) -> None:
        # grpcio's default SO_REUSEPORT lets every worker process listen on the same port
        # (the kernel spreads connections); ``check_grpc_port`` ran first, so no other
        # process shares it.
        options = [("grpc.max_receive_message_length", max_message_bytes),
                   ("grpc.max_send_message_length", 2 * max_message_bytes),
                   ("grpc.so_reuseport", 1)]
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers,
                                                             thread_name_prefix="tfsoap-grpc"),
                                  options=options)
        calls = _Calls(dataplane, max_message_bytes)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
            PredictionServicer(calls), self.server)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(calls),
                                                                  self.server)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        self.port = self.server.add_insecure_port(address)
        if not self.port:
            raise OSError(f"cannot listen for gRPC on {address}")
        self.host = host

    @property
    def target(self) -> str:
        """``host:port`` for ``grpc.insecure_channel``."""
        return f"{self.host}:{self.port}"

    def start(self) -> GrpcServer:
        self.server.start()
        log.info("TF Serving gRPC API (PredictionService, ModelService) at %s", self.target)
        return self

    def stop(self, grace: float = 5.0) -> None:
        self.server.stop(grace).wait(grace + 1)
