"""numpy arrays <-> the ``Tensor`` dicts zeep sends and receives."""

from __future__ import annotations

import base64
from typing import Any, Mapping

import numpy as np

NUMPY_BY_DTYPE: dict[str, np.dtype] = {
    "DT_FLOAT": np.dtype(np.float32), "DT_DOUBLE": np.dtype(np.float64),
    "DT_HALF": np.dtype(np.float16), "DT_INT8": np.dtype(np.int8),
    "DT_INT16": np.dtype(np.int16), "DT_INT32": np.dtype(np.int32),
    "DT_INT64": np.dtype(np.int64), "DT_UINT8": np.dtype(np.uint8),
    "DT_UINT16": np.dtype(np.uint16), "DT_BOOL": np.dtype(np.bool_),
    "DT_STRING": np.dtype(object),
}
_DTYPE_BY_NUMPY = {v: k for k, v in NUMPY_BY_DTYPE.items() if k != "DT_STRING"}
#: dtype -> (value list field, item element)
VALUE_FIELD: dict[str, tuple[str, str]] = {
    "DT_FLOAT": ("float_val", "float"), "DT_HALF": ("float_val", "float"),
    "DT_DOUBLE": ("double_val", "double"),
    "DT_INT8": ("int_val", "int"), "DT_INT16": ("int_val", "int"),
    "DT_INT32": ("int_val", "int"), "DT_UINT8": ("int_val", "int"),
    "DT_UINT16": ("int_val", "int"), "DT_INT64": ("int64_val", "long"),
    "DT_BOOL": ("bool_val", "boolean"), "DT_STRING": ("string_val", "base64Binary"),
}
ENCODINGS = ("tensor_content", "typed")


def dtype_of(arr: np.ndarray) -> str:
    """The TensorFlow dtype name of a numpy array (str/bytes/object arrays are DT_STRING)."""
    if arr.dtype.kind in ("O", "S", "U"):
        return "DT_STRING"
    try:
        return _DTYPE_BY_NUMPY[arr.dtype]
    except KeyError:
        raise ValueError(f"numpy dtype {arr.dtype} has no tfsoap dtype") from None


def _as_bytes(v: Any) -> bytes:
    return v if isinstance(v, bytes) else str(v).encode("utf-8")


def to_wire(name: str, value: Any, encoding: str = "tensor_content") -> dict[str, Any]:
    """A numpy array (or anything ``np.asarray`` takes) as a ``Tensor`` dict for zeep."""
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    arr = np.asarray(value)
    if arr.dtype == np.float64 and not isinstance(value, np.ndarray):
        arr = arr.astype(np.float32)  # Python floats: send what most models take
    dtype = dtype_of(arr)
    tensor: dict[str, Any] = {"name": name, "dtype": dtype,
                              "shape": {"long": [int(d) for d in arr.shape]}}
    if arr.size == 0:
        return tensor
    if encoding == "tensor_content" and dtype != "DT_STRING":
        le = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
        tensor["tensor_content"] = le.tobytes()
        return tensor
    field, item = VALUE_FIELD[dtype]
    flat = arr.reshape(-1)
    if dtype == "DT_STRING":
        values: list[Any] = [_as_bytes(v) for v in flat.tolist()]
    else:
        values = flat.tolist()
    tensor[field] = {item: values}
    return tensor


def from_wire(tensor: Any) -> tuple[str, np.ndarray]:
    """A zeep ``Tensor`` object as ``(name, numpy array)``."""
    dtype = tensor["dtype"]
    np_dtype = NUMPY_BY_DTYPE[dtype]
    shape_el = tensor["shape"]
    shape = tuple(int(d) for d in (shape_el["long"] if shape_el is not None else []) or [])
    content = tensor["tensor_content"]
    if content is not None:
        raw = content if isinstance(content, bytes) else base64.b64decode(content)
        arr = np.frombuffer(raw, dtype=np_dtype.newbyteorder("<")).astype(np_dtype)
        return tensor["name"], arr.reshape(shape)
    field, item = VALUE_FIELD[dtype]
    holder = tensor[field]
    values = list(holder[item] or []) if holder is not None else []
    if dtype == "DT_STRING":
        arr = np.empty(len(values), dtype=object)
        arr[:] = [_as_bytes(v) for v in values]
    else:
        arr = np.array(values, dtype=np_dtype)
    return tensor["name"], arr.reshape(shape)


def cast_for_signature(name: str, value: Any, dtype: str) -> np.ndarray:
    """``value`` as an array of the signature's ``dtype`` when the cast loses nothing that
    matters, as TF Serving's REST API casts JSON numbers; ``ValueError`` saying why otherwise.

    - to ``DT_FLOAT``/``DT_HALF``/``DT_DOUBLE``: any float or integer array (float64 from numpy
      or scikit-learn, say), unless a finite value overflows the target type;
    - to an integer type: integers in its range, and floats that are whole numbers in range;
    - to ``DT_BOOL``: booleans only; to ``DT_STRING``: strings and bytes only.
    """
    arr = np.asarray(value)
    target = NUMPY_BY_DTYPE.get(dtype)
    if target is None or dtype_of_or_none(arr) == dtype:
        return arr
    kind = arr.dtype.kind
    if dtype == "DT_STRING" or kind in "OSU":
        raise ValueError(f"input {name!r} must be {dtype}, got {arr.dtype} values")
    if dtype == "DT_BOOL" or kind == "b":
        raise ValueError(f"input {name!r} must be {dtype}, got {arr.dtype} values: booleans "
                         "and numbers are not cast into each other")
    if target.kind == "f" and kind in "fiu":
        with np.errstate(over="ignore", invalid="ignore"):
            cast = arr.astype(target)
        if kind == "f" and bool(np.any(np.isfinite(arr) & ~np.isfinite(cast))):
            raise ValueError(f"input {name!r}: values overflow {dtype} "
                             f"(largest {np.finfo(target).max:.4g})")
        return cast
    if target.kind in "iu" and kind in "fiu":
        if arr.size:
            if kind == "f" and not bool(np.all(np.isfinite(arr) & (arr == np.round(arr)))):
                raise ValueError(f"input {name!r} must be {dtype}: its {arr.dtype} values are "
                                 "not all whole numbers")
            info = np.iinfo(target)
            low, high = arr.min(), arr.max()
            if low < info.min or high > info.max:
                raise ValueError(f"input {name!r}: values from {low} to {high} do not fit "
                                 f"{dtype} ({info.min} to {info.max})")
        return arr.astype(target)
    raise ValueError(f"input {name!r} must be {dtype}, got {arr.dtype} values")


def dtype_of_or_none(arr: np.ndarray) -> str | None:
    """``dtype_of`` or None for a numpy dtype with no tfsoap dtype."""
    try:
        return dtype_of(arr)
    except ValueError:
        return None


def inputs_to_wire(inputs: Mapping[str, Any], encoding: str) -> list[dict[str, Any]]:
    return [to_wire(name, value, encoding) for name, value in inputs.items()]
