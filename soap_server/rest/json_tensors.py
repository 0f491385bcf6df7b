"""TF Serving's JSON tensors <-> numpy, as its ``api_rest`` document and ``json_tensor.cc`` define
them, for frozen-graph signatures.

Requests come in the row format (``{"instances": [...]}``: one entry per batch item, each either
a value for the single input or an object of named inputs) or the columnar format
(``{"inputs": ...}``: whole tensors, a value or an object of named inputs). JSON numbers take the
dtype the signature gives (an integer into ``DT_FLOAT`` is cast; a fraction into ``DT_INT32`` is
refused), and ``DT_STRING`` values are UTF-8 text or ``{"b64": "..."}``. Answers mirror the
request: ``predictions`` (rows) or ``outputs`` (columns); string outputs whose alias ends with
``_bytes`` (or that are not UTF-8) go back as ``{"b64": ...}``.

Only the JSON text is bounded elsewhere (``max_body_bytes``); here nesting is bounded by the
signature's rank and numpy's 64 dimensions, and a ragged array is refused rather than stored as
an array of lists.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Mapping, Sequence

import numpy as np

from model_store.errors import InvalidInputError
from model_store.store import ModelSignature, TensorSpec, numpy_dtype

from ..outcomes import MalformedRequestError

#: TF Serving's only signature for a frozen graph's single function.
DEFAULT_SIGNATURE = "serving_default"
#: How deep a DT_STRING value may nest (numpy's own limit for numbers is 64 dimensions).
MAX_DEPTH = 64


def parse_body(body: bytes) -> dict[str, Any]:
    """The request object; ``MalformedRequestError`` for anything that is not a JSON object."""
    try:
        data = json.loads(body)
    except RecursionError:
        raise MalformedRequestError("JSON request nests too deeply") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise MalformedRequestError(f"JSON parse error: {exc}") from None
    if not isinstance(data, dict):
        raise MalformedRequestError("the request body must be a JSON object")
    return data


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "b64" in value


def _is_named(value: Any) -> bool:
    return isinstance(value, dict) and not _is_b64(value)


def _string_leaf(value: Any, alias: str) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if _is_b64(value):
        text = value["b64"]
        if isinstance(text, str):
            try:
                return base64.b64decode(text, validate=True)
            except (binascii.Error, ValueError):
                pass
        raise InvalidInputError(f"input {alias!r}: {{\"b64\": ...}} must hold base64 text")
    raise InvalidInputError(f"input {alias!r} is DT_STRING: give text or {{\"b64\": \"...\"}}, "
                            f"got {type(value).__name__}")


def _strings(value: Any, alias: str, depth: int = 0) -> Any:
    if depth > MAX_DEPTH:
        raise InvalidInputError(f"input {alias!r} nests deeper than {MAX_DEPTH} dimensions")
    if isinstance(value, list):
        return [_strings(v, alias, depth + 1) for v in value]
    return _string_leaf(value, alias)


def to_array(value: Any, spec: TensorSpec) -> np.ndarray:
    """One JSON value as an array of ``spec``'s dtype, cast the way TF Serving casts."""
    want = numpy_dtype(spec.dtype)
    if spec.dtype == "DT_STRING":
        converted = _strings(value, spec.alias)
        arr = np.array(converted, dtype=object)
        if arr.size and any(isinstance(v, list) for v in arr.flat):
            raise InvalidInputError(f"input {spec.alias!r} is a ragged array")
        return arr
    try:
        arr = np.asarray(value)
    except (ValueError, OverflowError):
        raise InvalidInputError(f"input {spec.alias!r} is a ragged array or nests too "
                                "deeply") from None
    kind = arr.dtype.kind
    if arr.size == 0:
        return arr.astype(want)
    if kind not in "biuf":
        raise InvalidInputError(f"input {spec.alias!r} must hold {spec.dtype} numbers, got "
                                f"{_json_kind(kind)}")
    if want.kind == "b":
        if kind != "b":
            raise InvalidInputError(f"input {spec.alias!r} is DT_BOOL: give true or false")
        return arr
    if kind == "b":
        raise InvalidInputError(f"input {spec.alias!r} must hold {spec.dtype} numbers, "
                                "got true/false")
    if want.kind in "iu":
        if kind == "f":
            raise InvalidInputError(f"input {spec.alias!r} is {spec.dtype}: a number with a "
                                    "fraction or exponent is not an integer")
        info = np.iinfo(want)
        if arr.min() < info.min or arr.max() > info.max:
            raise InvalidInputError(f"input {spec.alias!r}: a value is out of range for "
                                    f"{spec.dtype}")
    return arr.astype(want)


def _json_kind(kind: str) -> str:
    return {"U": "text", "O": "objects or mixed values"}.get(kind, "other values")


def decode_predict(data: Mapping[str, Any], signature: ModelSignature
                   ) -> tuple[bool, list[tuple[str, np.ndarray]]]:
    """``(row_format, inputs by alias)`` of a ``:predict`` request against ``signature``."""
    name = data.get("signature_name", DEFAULT_SIGNATURE)
    if name != DEFAULT_SIGNATURE:
        raise InvalidInputError(f"Serving signature name: {str(name)[:100]!r} not found in "
                                f"signature def; the only one is {DEFAULT_SIGNATURE!r}")
    if ("instances" in data) == ("inputs" in data):
        raise InvalidInputError('the request needs either "instances" (row format) or '
                                '"inputs" (columnar format), not both or neither')
    if "instances" in data:
        return True, _rows(data["instances"], signature)
    return False, _columns(data["inputs"], signature)


def _single(signature: ModelSignature) -> TensorSpec:
    if len(signature.inputs) != 1:
        raise InvalidInputError(
            f"this model takes {len(signature.inputs)} inputs "
            f"{[t.alias for t in signature.inputs]}: name each one")
    return signature.inputs[0]


def _rows(instances: Any, signature: ModelSignature) -> list[tuple[str, np.ndarray]]:
    if not isinstance(instances, list) or not instances:
        raise InvalidInputError('"instances" must be a non-empty list')
    if not _is_named(instances[0]):
        spec = _single(signature)
        return [(spec.alias, to_array(instances, spec))]
    if not all(_is_named(row) for row in instances):
        raise InvalidInputError('every entry of "instances" must be an object of named '
                                "inputs when the first one is")
    out = []
    for alias in instances[0]:
        spec = signature.input(alias)
        try:
            column = [row[alias] for row in instances]
        except KeyError:
            raise InvalidInputError(f"input {alias!r} is missing from some instances") from None
        out.append((alias, to_array(column, spec)))
    return out


def _columns(inputs: Any, signature: ModelSignature) -> list[tuple[str, np.ndarray]]:
    if _is_named(inputs):
        return [(alias, to_array(value, signature.input(alias)))
                for alias, value in inputs.items()]
    spec = _single(signature)
    return [(spec.alias, to_array(inputs, spec))]


def _jsonable(arr: np.ndarray, alias: str) -> Any:
    if arr.dtype.kind in "OSU":
        as_b64 = alias.endswith("_bytes")

        def leaf(v: Any) -> Any:
            raw = v if isinstance(v, bytes) else str(v).encode("utf-8")
            if not as_b64:
                try:
                    return raw.decode("utf-8")
                except UnicodeDecodeError:
                    pass
            return {"b64": base64.b64encode(raw).decode("ascii")}

        return np.vectorize(leaf, otypes=[object])(arr).tolist() if arr.size else arr.tolist()
    return arr.tolist()  # NaN and Infinity come out as those bare words, as TF Serving's do


def encode_predict(row_format: bool, outputs: Sequence[tuple[str, np.ndarray]]) -> bytes:
    """The ``predictions`` (rows) or ``outputs`` (columns) answer as JSON bytes."""
    if not row_format:
        if len(outputs) == 1:
            body: dict[str, Any] = {"outputs": _jsonable(outputs[0][1], outputs[0][0])}
        else:
            body = {"outputs": {alias: _jsonable(arr, alias) for alias, arr in outputs}}
        return json.dumps(body, separators=(",", ":")).encode()
    sizes = {arr.shape[0] if arr.ndim else None for _, arr in outputs}
    if len(sizes) != 1 or None in sizes:
        raise InvalidInputError("the row format needs every output to have the same batch "
                                'size; ask with "inputs" (columnar format) instead')
    if len(outputs) == 1:
        predictions: Any = _jsonable(outputs[0][1], outputs[0][0])
    else:
        columns = {alias: _jsonable(arr, alias) for alias, arr in outputs}
        count = next(iter(sizes)) or 0
        predictions = [{alias: col[i] for alias, col in columns.items()} for i in range(count)]
    return json.dumps({"predictions": predictions}, separators=(",", ":")).encode()
