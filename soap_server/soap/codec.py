"""Tensors on the wire <-> numpy arrays, without Spyne's per-element object mapping.

A ``Tensor`` element (modelled on TensorFlow's ``TensorProto``) carries ``name``, ``dtype``,
``shape`` and either one typed value list (``float_val``, ``int_val`` ...) or ``tensor_content``
(base64 of the raw little-endian row-major bytes). Spyne maps each ``<float>`` to a Python object
(about 0.17 M floats/s, FACTS.md); here the values are read straight off the lxml element into
numpy (about 10 M floats/s) and responses are formatted as bytes with one ``%`` operation.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Iterable, Sequence
from xml.sax.saxutils import escape

import numpy as np
from lxml import etree

from model_store.errors import InvalidInputError
from model_store.store import NUMPY_BY_DTYPE, dtype_name

from .faults import MalformedRequestError
from .namespaces import TNS
from .value_lists import cut_values

_T = "{%s}" % TNS

#: value list element -> (item element, dtypes it may carry)
VALUE_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "float_val": ("float", ("DT_FLOAT", "DT_HALF")),
    "double_val": ("double", ("DT_DOUBLE",)),
    "int_val": ("int", ("DT_INT32", "DT_INT16", "DT_INT8", "DT_UINT8", "DT_UINT16")),
    "int64_val": ("long", ("DT_INT64",)),
    "bool_val": ("boolean", ("DT_BOOL",)),
    "string_val": ("base64Binary", ("DT_STRING",)),
}
FIELD_BY_DTYPE: dict[str, str] = {dt: f for f, (_, dts) in VALUE_FIELDS.items() for dt in dts}
TENSOR_FIELDS = ("name", "dtype", "shape", *VALUE_FIELDS, "tensor_content")
_MAX_RANK = 32
#: The largest element count of a tensor (and of the non-zero dimensions of an empty one).
_MAX_DIM = 2**31 - 1
_BOOL_TEXT = {"true": True, "1": True, "false": False, "0": False}


@dataclass
class WireTensor:
    """A decoded tensor and whether it came as ``tensor_content``."""

    name: str
    value: np.ndarray
    packed: bool


def _local(el: etree._Element, where: str) -> str:
    tag = el.tag
    if not isinstance(tag, str):
        raise MalformedRequestError(f"unexpected XML node in {where}")
    if not tag.startswith(_T):
        raise MalformedRequestError(
            f"element {tag!r} in {where} is not in namespace {TNS}")
    return tag[len(_T):]


class _ItemReader:
    """The texts of a value list's ``<item>`` children, read by libxml2's XPath engine.

    Walking the children from Python costs an element proxy and a tag string per value (about
    0.15 us each); two compiled XPath calls do it in C. The texts are taken only when the list
    is clean: every child a ``TNS`` item without child elements (``count(item) - count(*/*)``
    equals the number of children) and one text node per item (the parser merges adjacent
    text, so an item without child elements has at most one). Anything else is left to the
    element walk, which names the problem.
    """

    def __init__(self, item: str) -> None:
        ns = {"t": TNS}
        self.texts = etree.XPath(f"t:{item}/text()", namespaces=ns, smart_strings=False)
        self.clean = etree.XPath(f"count(t:{item}) - count(*/*)", namespaces=ns)

    def __call__(self, el: etree._Element) -> list[str] | None:
        texts = self.texts(el)
        n = len(el)
        if len(texts) == n and self.clean(el) == n:
            return texts  # type: ignore[no-any-return]
        return None


#: Shorter lists (a shape, a few values) are walked: an XPath call costs a few microseconds.
_XPATH_FROM = 32
_READERS = {item: _ItemReader(item) for item in ("long", *(i for i, _ in VALUE_FIELDS.values()))}


def _texts(el: etree._Element, item: str, where: str) -> list[str]:
    if len(el) >= _XPATH_FROM:
        fast = _READERS[item](el)
        if fast is not None:
            return fast
    texts = [c.text for c in el if c.tag == _T + item]
    if len(texts) != len(el):
        bad = next(c for c in el if c.tag != _T + item)
        raise MalformedRequestError(
            f"{where} may only hold <{item}> items, found {bad.tag!r}")
    if None in texts:
        raise InvalidInputError(f"{where} holds an empty <{item}> item")
    return texts  # type: ignore[return-value]


def _parse_values(texts: list[str], dtype: str, where: str) -> np.ndarray:
    np_dtype = NUMPY_BY_DTYPE[dtype]
    try:
        if dtype == "DT_BOOL":
            return np.array([_BOOL_TEXT[t.strip()] for t in texts], dtype=np.bool_)
        if dtype == "DT_STRING":
            arr = np.empty(len(texts), dtype=object)
            arr[:] = [base64.b64decode(t, validate=True) if t.strip() else b""
                      for t in (x.strip() for x in texts)]
            return arr
        if np_dtype.kind in "iu":
            return _narrow(np.array(texts, dtype=np.int64), dtype, where)
        return np.array(texts, dtype=np_dtype)
    except (ValueError, KeyError, OverflowError, binascii.Error) as exc:
        raise InvalidInputError(f"{where} holds a value that is not a valid {dtype}: "
                                f"{str(exc)[:120]}") from None


def _narrow(wide: np.ndarray, dtype: str, where: str) -> np.ndarray:
    """int64 values as ``dtype``, refused when one is out of its range."""
    np_dtype = NUMPY_BY_DTYPE[dtype]
    if wide.size and (wide.min() < np.iinfo(np_dtype).min or wide.max() > np.iinfo(np_dtype).max):
        raise InvalidInputError(f"{where} holds values out of range for {dtype}")
    return wide.astype(np_dtype)


def _cast_cut(values: np.ndarray, dtype: str, where: str) -> np.ndarray:
    """Values ``value_lists`` read (float64 or int64) as ``dtype``: the same numbers as
    ``_parse_values`` gives from the texts (numpy parses a float text through a double too)."""
    if values.dtype.kind == "i":
        return _narrow(values, dtype, where)
    with np.errstate(over="ignore"):  # 1e39 is inf as a DT_FLOAT, without a warning
        return values.astype(NUMPY_BY_DTYPE[dtype], copy=False)


def _shape_text(shape: tuple[int, ...]) -> str:
    text = str(list(shape))
    return text if len(text) <= 80 else text[:77] + "..."


def decode_tensor(el: etree._Element, index: int = 0,
                  lists: Sequence[np.ndarray] | None = None) -> WireTensor:
    """Decode one ``Tensor`` element; raise a client error for anything malformed.

    ``lists`` are the value lists ``value_lists.cut_value_lists`` read from the bytes."""
    where = f"tensor #{index + 1}"
    fields: dict[str, etree._Element] = {}
    for child in el:
        local = _local(child, where)
        if local not in TENSOR_FIELDS:
            raise MalformedRequestError(f"unknown element <{local}> in {where}")
        if local in fields:
            raise MalformedRequestError(f"element <{local}> repeated in {where}")
        fields[local] = child
    for required in ("name", "dtype", "shape"):
        if required not in fields:
            raise MalformedRequestError(f"{where} lacks the required element <{required}>")
    name = (fields["name"].text or "").strip()
    where = f"tensor {name!r}" if name else where
    if not name:
        raise MalformedRequestError(f"{where} has an empty <name>")
    dtype = (fields["dtype"].text or "").strip()
    if dtype not in NUMPY_BY_DTYPE:
        raise InvalidInputError(f"{where} has unsupported dtype {dtype!r}; supported: "
                                f"{', '.join(NUMPY_BY_DTYPE)}")
    shape_texts = _texts(fields["shape"], "long", f"{where} <shape>")
    if len(shape_texts) > _MAX_RANK:
        raise InvalidInputError(f"{where} has rank {len(shape_texts)}; at most {_MAX_RANK}")
    try:
        shape = tuple(int(t) for t in shape_texts)
    except ValueError:
        raise InvalidInputError(f"{where} has a non-integer dimension in <shape>") from None
    if any(d < 0 for d in shape):
        raise InvalidInputError(f"{where} has a negative dimension in shape {list(shape)}")
    if any(d > _MAX_DIM for d in shape) or math.prod(d for d in shape if d) > _MAX_DIM:
        # an empty tensor's other dimensions must still make an array numpy can describe
        raise InvalidInputError(f"{where} has shape {_shape_text(shape)}, over the largest "
                                f"tensor this service can hold ({_MAX_DIM} elements)")
    count = math.prod(shape)
    present = [f for f in (*VALUE_FIELDS, "tensor_content") if f in fields]
    if len(present) > 1:
        raise InvalidInputError(f"{where} carries both {present[0]} and {present[1]}; "
                                "send one value list or tensor_content")
    np_dtype = NUMPY_BY_DTYPE[dtype]
    if not present:
        if count != 0:
            raise InvalidInputError(f"{where} has shape {list(shape)} but carries no values")
        return WireTensor(name, np.zeros(shape, dtype=np_dtype), False)
    field = present[0]
    if field == "tensor_content":
        if dtype == "DT_STRING":
            raise InvalidInputError(f"{where}: DT_STRING tensors use string_val, "
                                    "not tensor_content")
        try:
            raw = base64.b64decode(fields[field].text or b"", validate=False)
        except (binascii.Error, ValueError):
            raise InvalidInputError(f"{where} has tensor_content that is not base64") from None
        want = count * np_dtype.itemsize
        if len(raw) != want:
            raise InvalidInputError(
                f"{where}: tensor_content has {len(raw)} bytes, shape {list(shape)} of "
                f"{dtype} needs {want}")
        arr = np.frombuffer(raw, dtype=np_dtype.newbyteorder("<"))
        if np_dtype.byteorder not in ("<", "|", "="):
            arr = arr.astype(np_dtype)
        return WireTensor(name, arr.reshape(shape), True)
    if dtype not in VALUE_FIELDS[field][1]:
        raise InvalidInputError(f"{where} has dtype {dtype} but carries {field}; "
                                f"{dtype} values go in {FIELD_BY_DTYPE[dtype]}")
    cut = cut_values(fields[field], lists)
    texts = _texts(fields[field], VALUE_FIELDS[field][0], f"{where} <{field}>") \
        if cut is None else []
    found = len(texts) if cut is None else cut.size
    if found != count:
        raise InvalidInputError(f"{where} has {found} values in {field}, shape "
                                f"{list(shape)} needs {count}")
    values = _parse_values(texts, dtype, f"{where} <{field}>") if cut is None \
        else _cast_cut(cut, dtype, f"{where} <{field}>")
    return WireTensor(name, values.reshape(shape), False)


def decode_tensors(parent: etree._Element, where: str,
                   lists: Sequence[np.ndarray] | None = None) -> list[WireTensor]:
    """Decode every ``Tensor`` item of a ``TensorArray`` element."""
    out = []
    for i, child in enumerate(parent):
        if _local(child, where) != "Tensor":
            raise MalformedRequestError(f"{where} may only hold <Tensor> items")
        out.append(decode_tensor(child, i, lists))
    return out


# -- encoding -----------------------------------------------------------------------------------
def _xsd_float(x: float) -> str:
    if math.isnan(x):
        return "NaN"
    return "INF" if x > 0 else "-INF"


def _format_floats(values: list[float], item: str, fmt: str) -> str:
    template = f"<{item}>{fmt}</{item}>"
    if all(map(math.isfinite, values)):
        return (template * len(values)) % tuple(values)
    return "".join(template.replace(fmt, "%s") % (
        (fmt % v) if math.isfinite(v) else _xsd_float(v)) for v in values)


def _values_xml(arr: np.ndarray, dtype: str) -> str:
    field = FIELD_BY_DTYPE[dtype]
    item = VALUE_FIELDS[field][0]
    flat = arr.reshape(-1)
    if dtype in ("DT_FLOAT", "DT_HALF"):
        body = _format_floats(flat.astype(np.float32).tolist(), item, "%.9g")
    elif dtype == "DT_DOUBLE":
        body = _format_floats(flat.tolist(), item, "%.17g")
    elif dtype == "DT_BOOL":
        body = "".join("<boolean>true</boolean>" if v else "<boolean>false</boolean>"
                       for v in flat.tolist())
    elif dtype == "DT_STRING":
        body = "".join(f"<{item}>{base64.b64encode(_as_bytes(v)).decode()}</{item}>"
                       for v in flat.tolist())
    else:
        body = (f"<{item}>%d</{item}>" * flat.size) % tuple(flat.tolist())
    return f"<{field}>{body}</{field}>"


def _as_bytes(v: object) -> bytes:
    if isinstance(v, bytes):
        return v
    if isinstance(v, str):
        return v.encode("utf-8")
    return str(v).encode("utf-8")


def encode_tensor(name: str, arr: np.ndarray, packed: bool) -> str:
    """One ``Tensor`` element as XML text in the default namespace of its parent (``TNS``).

    ``packed`` asks for ``tensor_content``; DT_STRING tensors always use ``string_val``.
    """
    arr = np.asarray(arr)
    dtype = dtype_name(arr.dtype)
    shape = "".join("<long>%d</long>" % d for d in arr.shape)
    head = f"<Tensor><name>{escape(name)}</name><dtype>{dtype}</dtype><shape>{shape}</shape>"
    if arr.size == 0:
        return head + "</Tensor>"
    if packed and dtype != "DT_STRING":
        le = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
        content = base64.b64encode(le.tobytes()).decode("ascii")
        return f"{head}<tensor_content>{content}</tensor_content></Tensor>"
    return head + _values_xml(arr, dtype) + "</Tensor>"


def encode_tensors(items: Iterable[tuple[str, np.ndarray]], packed: bool) -> str:
    """The items of a ``TensorArray``."""
    return "".join(encode_tensor(n, a, packed) for n, a in items)

