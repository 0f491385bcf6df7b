"""``tensorflow.TensorProto`` <-> numpy, written with numpy from the proto's fields.

``tf.make_ndarray`` would do this, but it needs TensorFlow's Python runtime in ``soap_server``;
the fields are simple: ``tensor_content`` (raw little-endian bytes) or one typed list per dtype
(``float_val``, ``double_val``, ``int_val`` for the small integers, ``int64_val``, ``bool_val``,
``half_val`` holding float16 bit patterns, ``string_val``). As in TensorFlow, a typed list of one
value fills the whole shape. The element count is bounded before any array is allocated, so a
tiny message cannot ask for a huge tensor.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from model_store.errors import InvalidInputError
from model_store.store import dtype_name, numpy_dtype

#: The typed field that carries each dtype's values.
VALUE_FIELD = {
    "DT_FLOAT": "float_val", "DT_DOUBLE": "double_val", "DT_HALF": "half_val",
    "DT_INT8": "int_val", "DT_INT16": "int_val", "DT_INT32": "int_val", "DT_UINT8": "int_val",
    "DT_UINT16": "int_val", "DT_INT64": "int64_val", "DT_BOOL": "bool_val",
    "DT_STRING": "string_val",
}


def _dtype_enum(proto: Any) -> Any:
    return proto.DESCRIPTOR.fields_by_name["dtype"].enum_type


def to_array(proto: Any, alias: str, max_bytes: int) -> np.ndarray:
    """The numpy array a ``TensorProto`` holds; ``InvalidInputError`` if it is not a tensor
    this server takes, or would be over ``max_bytes`` once built."""
    enum = _dtype_enum(proto)
    value = enum.values_by_number.get(proto.dtype)
    name = value.name if value is not None else str(proto.dtype)
    if name not in VALUE_FIELD:
        raise InvalidInputError(f"input {alias!r} has unsupported dtype {name}")
    dtype = numpy_dtype(name)
    if proto.tensor_shape.unknown_rank:
        raise InvalidInputError(f"input {alias!r} must have a known shape")
    shape = tuple(int(d.size) for d in proto.tensor_shape.dim)
    if any(d < 0 for d in shape):
        raise InvalidInputError(f"input {alias!r} has a negative dimension in {list(shape)}")
    count = 1
    for d in shape:
        count *= d
        if count * max(dtype.itemsize, 1) > max_bytes:
            raise InvalidInputError(f"input {alias!r} of shape {list(shape)} is over the limit "
                                    f"of {max_bytes} bytes")
    if proto.tensor_content:
        if name == "DT_STRING":
            raise InvalidInputError(f"input {alias!r}: DT_STRING values go in string_val")
        raw = proto.tensor_content
        if len(raw) != count * dtype.itemsize:
            raise InvalidInputError(f"input {alias!r}: tensor_content has {len(raw)} bytes, "
                                    f"shape {list(shape)} of {name} needs "
                                    f"{count * dtype.itemsize}")
        return np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(shape)
    values = getattr(proto, VALUE_FIELD[name])
    n = len(values)
    if name == "DT_STRING":
        flat = np.empty(n, dtype=object)
        flat[:] = list(values)
    elif name == "DT_HALF":
        flat = np.asarray(values, dtype=np.uint16).view(np.float16)
    else:
        try:
            flat = np.asarray(values).astype(dtype, casting="same_kind" if n else "unsafe")
        except TypeError:
            raise InvalidInputError(f"input {alias!r}: values do not fit {name}") from None
        if dtype.kind in "iu" and n and (np.asarray(values).min() < np.iinfo(dtype).min
                                        or np.asarray(values).max() > np.iinfo(dtype).max):
            raise InvalidInputError(f"input {alias!r}: a value is out of range for {name}")
    if n == count:
        return flat.reshape(shape)
    if n == 1 and count > 1:  # TensorFlow fills the shape with a single given value
        out = np.empty(shape, dtype=dtype)
        out.fill(flat[0])
        return out
    raise InvalidInputError(f"input {alias!r} has {n} values in {VALUE_FIELD[name]} for "
                            f"shape {list(shape)} ({count} values)")


def fill_proto(proto: Any, arr: np.ndarray) -> None:
    """Write ``arr`` into ``proto`` (a ``TensorProto``): ``tensor_content`` for numbers, as TF
    Serving's own answers do, ``string_val`` for strings."""
    name = dtype_name(arr.dtype)
    proto.dtype = _dtype_enum(proto).values_by_name[name].number
    for d in arr.shape:
        proto.tensor_shape.dim.add(size=int(d))
    if name == "DT_STRING":
        proto.string_val.extend(v if isinstance(v, bytes) else str(v).encode("utf-8")
                                for v in arr.reshape(-1))
    else:
        proto.tensor_content = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")
                                                    ).tobytes()
