"""Prebuilt ``Predict`` requests as a SOAP 1.1 client would send them, in either encoding.

The load generator sends the same bytes again and again, so building them costs nothing per
request. The typed list uses ``%.9g`` (nine significant digits: every float32 round-trips), as a
Java client's ``Float.toString`` or zeep would send about as many characters.
"""

from __future__ import annotations

import base64

import numpy as np

TNS = "urn:tfsoap:predict:v1"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
ENCODINGS = ("tensor_content", "float_val")
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"Predict"'}


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
