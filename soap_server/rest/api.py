"""TF Serving's REST API (``/v1/models/...``) over the same ``DataPlane`` as SOAP.

``RestApi`` is called by ``soap_server.http``'s WSGI front with the method, path, body (already
bounded by ``max_body_bytes``) and request id, and answers ``(HTTP status, JSON bytes)``. It
translates and does not decide: the dataplane finds the version (by number or label), checks
the inputs and runs the model; errors keep the SOAP faults' words and take the HTTP status TF
Serving gives the same case (400 bad input, 404 unknown model or version, 503 overload).

Routes, as in TF Serving's ``http_rest_api_handler.cc``::

    GET  /v1/models/{name}[/versions/{v}|/labels/{label}]            model status
    GET  /v1/models/{name}[/versions/{v}|/labels/{label}]/metadata   signature_def
    POST /v1/models/{name}[/versions/{v}|/labels/{label}]:predict    row or columnar predict
"""

from __future__ import annotations

import json
import logging
import re
import threading
from typing import Any

from model_store.errors import UnavailableError
from model_store.store import ModelSignature, TensorSpec

from ..dataplane import DataPlane, ModelMetadata
from ..http import BodyRefused
from ..outcomes import (
    AUTHENTICATION_FAILED,
    INFERENCE_ERROR,
    INTERNAL,
    INVALID_INPUT,
    MALFORMED_REQUEST,
    MODEL_NOT_FOUND,
    NOT_AUTHORIZED,
    REQUEST_TOO_LARGE,
    UNAVAILABLE,
    MalformedRequestError,
    outcome_of,
)
from ..security import ANONYMOUS, Caller
from .json_tensors import DEFAULT_SIGNATURE, decode_predict, encode_predict, parse_body

log = logging.getLogger(__name__)

#: The outcome codes as TF Serving's HTTP statuses (its ``ToHTTPStatusCode``).
HTTP_STATUS = {
    AUTHENTICATION_FAILED: "401 Unauthorized",
    NOT_AUTHORIZED: "403 Forbidden",
    MODEL_NOT_FOUND: "404 Not Found",
    INVALID_INPUT: "400 Bad Request",
    MALFORMED_REQUEST: "400 Bad Request",
    REQUEST_TOO_LARGE: "413 Request Entity Too Large",
    UNAVAILABLE: "503 Service Unavailable",
    INFERENCE_ERROR: "500 Internal Server Error",
    INTERNAL: "500 Internal Server Error",
}
#: Our version states as TF Serving's ``ModelVersionStatus.State`` (a failed load ends).
TFS_STATE = {"LOADING": "LOADING", "AVAILABLE": "AVAILABLE", "FAILED": "END"}
_PATH = re.compile(r"^/v1/models/(?P<name>[^/:]{1,128})"
                   r"(?:/versions/(?P<version>[0-9]{1,18})|/labels/(?P<label>[^/:]{1,64}))?"
                   r"(?:(?P<metadata>/metadata)|:(?P<verb>[a-z]{1,16}))?$")
#: JSON bodies from this size on are parsed a few at a time (their Python objects take
#: about 15 times the text's size while they live).
LARGE_JSON = 64 * 1024


class RestApi:
    """TF Serving's REST API as a function of (method, path, body, request id)."""

    def __init__(self, dataplane: DataPlane, large_json_slots: int = 2) -> None:
        self.dataplane = dataplane
        self._large_json = threading.BoundedSemaphore(max(1, large_json_slots))

    def __call__(self, method: str, path: str, body: bytes | BodyRefused,
                 rid: str, caller: Caller = ANONYMOUS) -> tuple[str, bytes]:
        try:
            if isinstance(body, BodyRefused):
                return HTTP_STATUS.get(body.code, "400 Bad Request"), _error(body.message)
            match = _PATH.match(path)
            if match is None or (method == "GET") == (match["verb"] is not None) \
                    or (match["verb"] not in (None, "predict")) or \
                    (method == "POST" and match["metadata"]):
                raise MalformedRequestError(_malformed(method, path, match))
            name, label = match["name"], match["label"]
            version = int(match["version"]) if match["version"] else None
            if method == "POST":
                return "200 OK", self._predict(name, version, label, body, rid, caller)
            if match["metadata"]:
                return "200 OK", self._metadata(name, version, label, rid, caller)
            return "200 OK", self._status(name, version, label, rid, caller)
        except Exception as exc:
            code = outcome_of(exc)
            if code == INTERNAL:
                log.exception("REST request %s failed", rid)
                message = f"internal server error (request id {rid})"
            else:
                message = getattr(exc, "message", None) or str(exc)
            return HTTP_STATUS.get(code, "500 Internal Server Error"), _error(message)

    def _predict(self, name: str, version: int | None, label: str | None, body: bytes,
                 rid: str, caller: Caller) -> bytes:
        holder: dict[str, bool] = {}

        def decode(signature: ModelSignature) -> list[tuple[str, Any]]:
            if len(body) >= LARGE_JSON:
                with self._large_json:
                    row, inputs = decode_predict(parse_body(body), signature)
            else:
                row, inputs = decode_predict(parse_body(body), signature)
            holder["row"] = row
            return inputs

        result = self.dataplane.predict(name, version, decode, None, rid, caller,
                                        version_label=label)
        return encode_predict(holder["row"], result.outputs)

    def _status(self, name: str, version: int | None, label: str | None, rid: str,
                caller: Caller) -> bytes:
        statuses = self.dataplane.model_status(name, version, label, rid, caller)
        return _dumps({"model_version_status": [
            {"version": str(s.version), "state": TFS_STATE.get(s.state, "UNKNOWN"),
             "status": {"error_code": "UNKNOWN" if s.error else "OK",
                        "error_message": s.error}}
            for s in sorted(statuses, key=lambda s: -s.version)]})

    def _metadata(self, name: str, version: int | None, label: str | None, rid: str,
                  caller: Caller) -> bytes:
        meta = self.dataplane.metadata(name, version, rid, caller, version_label=label)
        return _dumps(metadata_json(meta))


def metadata_json(meta: ModelMetadata) -> dict[str, Any]:
    """TF Serving's ``GetModelMetadataResponse`` in its JSON form (proto3 JSON: int64 as text)."""
    if meta.signature is None:
        raise UnavailableError(f"model {meta.model_name!r} version {meta.version} has no "
                               f"signature to show (state {meta.state})")
    signature_def = {
        "inputs": {t.alias: _tensor_info(t) for t in meta.signature.inputs},
        "outputs": {t.alias: _tensor_info(t) for t in meta.signature.outputs},
        "method_name": "tensorflow/serving/predict",
    }
    return {"model_spec": {"name": meta.model_name, "signature_name": "",
                           "version": str(meta.version)},
            "metadata": {"signature_def": {
                "signature_def": {DEFAULT_SIGNATURE: signature_def}}}}


def _tensor_info(spec: TensorSpec) -> dict[str, Any]:
    shape: dict[str, Any] = ({"dim": [], "unknown_rank": True} if spec.shape is None else
                             {"dim": [{"size": str(d), "name": ""} for d in spec.shape],
                              "unknown_rank": False})
    return {"dtype": spec.dtype, "tensor_shape": shape, "name": spec.name}


def _malformed(method: str, path: str, match: re.Match[str] | None) -> str:
    if match is not None and match["verb"] not in (None, "predict"):
        return f"the :{match['verb']} API is not served here (frozen graphs have one " \
               "predict signature); use :predict"
    return f"Malformed request: {method} {path[:200]}"


def _error(message: str) -> bytes:
    return _dumps({"error": message})


def _dumps(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=None, separators=(",", ":")) + "\n").encode()
