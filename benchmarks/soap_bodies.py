"""Prebuilt requests: ``Predict`` as a SOAP 1.1 client would send it, in either encoding, and
the JSON bodies of the peers (TF Serving's REST ``{"instances": ...}`` and the V2 inference
protocol's ``{"inputs": [...]}``, which MLServer speaks).

The load generator sends the same bytes again and again, so building them costs nothing per
request. Floats are written with ``%.9g`` (nine significant digits: every float32 round-trips)
in every text encoding, as a Java client's ``Float.toString`` or zeep would send about as many
characters, so the typed SOAP list and the peers' JSON carry the same digits.
"""

from __future__ import annotations

import base64
import json
from typing import Callable

import numpy as np

TNS = "urn:tfsoap:predict:v1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
ENCODINGS = ("tensor_content", "float_val")
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"Predict"'}
JSON_HEADERS = {"Content-Type": "application/json"}
PROTOCOLS = ("soap", "tfserving_json", "v2_json")


def tensor_xml(alias: str, arr: np.ndarray, encoding: str) -> str:
    """One ``Tensor`` element (default namespace ``TNS`` inherited from the parent)."""
    arr = np.ascontiguousarray(arr, dtype="<f4")
    shape = "".join(f"<long>{d}</long>" for d in arr.shape)
    if encoding == "tensor_content":
        values = "<tensor_content>%s</tensor_content>" % base64.b64encode(
            arr.tobytes()).decode("ascii")
    elif encoding == "float_val":
        flat = arr.reshape(-1).tolist()
        values = "<float_val>%s</float_val>" % ("<float>%.9g</float>" * len(flat) % tuple(flat))
    else:
        raise ValueError(f"unknown encoding {encoding!r}")
    return (f"<Tensor><name>{alias}</name><dtype>DT_FLOAT</dtype><shape>{shape}</shape>"
            f"{values}</Tensor>")


def predict_body(model: str, alias: str, arr: np.ndarray, encoding: str) -> bytes:
    """A whole ``Predict`` envelope; the response comes back in the same encoding."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body>'
        f'<Predict xmlns="{TNS}"><model_name>{model}</model_name>'
        f"<inputs>{tensor_xml(alias, arr, encoding)}</inputs></Predict>"
        "</soapenv:Body></soapenv:Envelope>").encode()


def sample_input(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Deterministic float32 pixels in [0, 1)."""
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def _floats9(arr: np.ndarray) -> list[float]:
    """The values as Python floats of nine significant digits (what ``%.9g`` writes)."""
    return [float("%.9g" % v) for v in np.asarray(arr, dtype=np.float32).reshape(-1).tolist()]


def _nest(flat: list[float], shape: tuple[int, ...]) -> object:
    if len(shape) <= 1:
        return flat
    step = len(flat) // shape[0]
    return [_nest(flat[i * step:(i + 1) * step], shape[1:]) for i in range(shape[0])]


def tfserving_json_body(arr: np.ndarray) -> bytes:
    """TF Serving's REST ``predict`` body: ``{"instances": [<one nested list per example>]}``."""
    return json.dumps({"instances": _nest(_floats9(arr), arr.shape)},
                      separators=(",", ":")).encode()


def v2_json_body(alias: str, arr: np.ndarray) -> bytes:
    """The V2 inference protocol's body: one ``FP32`` input, its data flat, its shape given."""
    return json.dumps({"inputs": [{"name": alias, "shape": list(arr.shape), "datatype": "FP32",
                                   "data": _floats9(arr)}]}, separators=(",", ":")).encode()


def _soap_ok(data: bytes) -> bool:
    return data.rstrip().endswith(b"Envelope>")


def _json_ok(data: bytes) -> bool:
    return data.startswith(b"{") and b'"error"' not in data[:200]


def request_body(protocol: str, model: str, alias: str, arr: np.ndarray, encoding: str
                 ) -> tuple[bytes, dict[str, str], Callable[[bytes], bool]]:
    """The body, headers and answer check for one request of ``protocol`` (``PROTOCOLS``);
    ``encoding`` matters for SOAP only."""
    if protocol == "soap":
        return predict_body(model, alias, arr, encoding), HEADERS, _soap_ok
    if protocol == "tfserving_json":
        return tfserving_json_body(arr), JSON_HEADERS, _json_ok
    if protocol == "v2_json":
        return v2_json_body(alias, arr), JSON_HEADERS, _json_ok
    raise ValueError(f"unknown protocol {protocol!r}")
