"""TensorFlow ``DataType`` names (``DT_FLOAT`` ...) and their numpy equivalents.

The names are the ones of TensorFlow's ``types.proto``, so a TensorFlow user recognises them in
``model.json`` and on the wire. Strings are numpy ``object`` arrays of ``bytes``.
"""

from __future__ import annotations

import numpy as np

from ..errors import InvalidInputError

#: Every dtype the store and the wire support, by TensorFlow name.
NUMPY_BY_DTYPE: dict[str, np.dtype] = {
    "DT_FLOAT": np.dtype(np.float32),
    "DT_DOUBLE": np.dtype(np.float64),
    "DT_HALF": np.dtype(np.float16),
    "DT_INT8": np.dtype(np.int8),
    "DT_INT16": np.dtype(np.int16),
    "DT_INT32": np.dtype(np.int32),
    "DT_INT64": np.dtype(np.int64),
    "DT_UINT8": np.dtype(np.uint8),
    "DT_UINT16": np.dtype(np.uint16),
    "DT_BOOL": np.dtype(np.bool_),
    "DT_STRING": np.dtype(object),
}

SUPPORTED_DTYPES: tuple[str, ...] = tuple(NUMPY_BY_DTYPE)

_DTYPE_BY_NUMPY: dict[np.dtype, str] = {
    v: k for k, v in NUMPY_BY_DTYPE.items() if k != "DT_STRING"
}


def numpy_dtype(dtype: str) -> np.dtype:
    """The numpy dtype for a TensorFlow dtype name; ``InvalidInputError`` if unsupported."""
    try:
        return NUMPY_BY_DTYPE[dtype]
    except KeyError:
        raise InvalidInputError(
            f"unsupported dtype {dtype!r}; supported: {', '.join(SUPPORTED_DTYPES)}"
        ) from None


def dtype_name(array_dtype: np.dtype) -> str:
    """The TensorFlow dtype name of a numpy dtype (bytes/str/object arrays are ``DT_STRING``)."""
    dt = np.dtype(array_dtype)
    if dt.kind in ("O", "S", "U"):
        return "DT_STRING"
    try:
        return _DTYPE_BY_NUMPY[dt]
    except KeyError:
        raise InvalidInputError(f"numpy dtype {dt} has no supported TensorFlow dtype") from None


def from_tf(tf_dtype: object) -> str:
    """The dtype name of a ``tf.DType`` (or its enum value), without importing TensorFlow here."""
    name = getattr(tf_dtype, "name", None)
    if not isinstance(name, str):
        raise ValueError(f"not a TensorFlow dtype: {tf_dtype!r}")
    by_tf_name = {
        "float32": "DT_FLOAT", "float64": "DT_DOUBLE", "float16": "DT_HALF", "int8": "DT_INT8",
        "int16": "DT_INT16", "int32": "DT_INT32", "int64": "DT_INT64", "uint8": "DT_UINT8",
        "uint16": "DT_UINT16", "bool": "DT_BOOL", "string": "DT_STRING",
    }
    try:
        return by_tf_name[name]
    except KeyError:
        raise ValueError(f"TensorFlow dtype {name} is not supported by tfsoap") from None
