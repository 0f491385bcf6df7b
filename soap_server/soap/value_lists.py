"""Typed value lists read straight from the request bytes, before the rest is parsed.

A typed ``float_val`` costs libxml2 two nodes per ``<float>`` (about 10 bytes of memory per
request byte at the peak) and most of the decoding time. ``cut_value_lists`` finds each large
numeric value list (``float_val``, ``double_val``, ``int_val``, ``int64_val``) in the bytes,
converts its items to numpy in chunks, and hands the parser the document with the list's items
replaced by one marker element, so the tree holds a few dozen nodes whatever the tensor's size.

The shortcut only takes lists it can read exactly as the tree would: items of the list's own
prefix written back to back (``<float>1.5</float><float>2</float>``, as zeep, JAX-WS, WCF and
this codec send them), printable ASCII texts without ``&``, ``<`` or ``>``, no empty item, and
values numpy converts (each text converted as the tree path's ``np.array(texts, ...)`` converts
it, by Python's ``float()`` or ``int()``: floats through a double, as numpy does for
``DT_FLOAT`` and ``DT_HALF``; integers through int64). A request with anything else
(pretty-printed items, comments, CDATA, processing
instructions, an item numpy refuses) returns None and is parsed whole, as before, so every
fault and response stays byte-identical. The marker's namespace cannot come from a client:
a body that mentions it is not cut.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from lxml import etree

MARKER_NS = "urn:tfsoap:internal:value-list"
MARKER_TAG = "{%s}v" % MARKER_NS
_MARKER = b'<v xmlns="' + MARKER_NS.encode() + b'">%d</v>'
#: value list element -> (item element, what its texts are converted to first)
_LISTS: dict[bytes, tuple[bytes, type]] = {
    b"float_val": (b"float", np.float64),
    b"double_val": (b"double", np.float64),
    b"int_val": (b"int", np.int64),
    b"int64_val": (b"long", np.int64),
}
_OPEN = re.compile(
    rb"<((?:[A-Za-z_][A-Za-z0-9_.\-]{0,63}:)?)(float_val|double_val|int_val|int64_val)>")
#: Lists shorter than this many bytes are left to the tree: a cut costs a few microseconds.
MIN_BYTES = 512
#: Items are converted this many bytes at a time, which bounds the Python strings held at once.
CHUNK_BYTES = 1 << 20
#: Bytes a list may hold: printable ASCII, space, tab, LF. Not CR (the parser turns it into
#: LF) nor control characters such as \x0b or \x1c, which the parser refuses and Python's
#: number parsing would strip as whitespace.
_LIST_BYTES = bytes(range(0x21, 0x7F)) + b" \t\n"


@dataclass
class CutRequest:
    """The document to parse (each cut list's items replaced by a marker) and the lists'
    values, in the marker's numbering: float64 for floats, int64 for integers."""

    body: bytes
    values: list[np.ndarray]


def cut_value_lists(body: bytes) -> CutRequest | None:
    """``body`` with its large numeric value lists cut out and converted; None when there is
    nothing to cut or the body holds something this reader does not take (parse it whole)."""
    # One-byte searches (memchr) first: "<!" opens a comment or CDATA, "<?" a processing
    # instruction, whose texts could look like a list; only the XML declaration is taken
    if b"!" in body and (b"<!--" in body or b"<![CDATA[" in body):
        return None
    after = body.find(b"?>") + 2 if body.startswith((b"<?xml", b"\xef\xbb\xbf<?xml")) else 0
    if body.find(b"?", after) >= 0 and body.find(b"<?", after) >= 0:
        return None
    if MARKER_NS.encode() in body:
        return None
    pieces: list[bytes] = []
    values: list[np.ndarray] = []
    done = pos = 0
    while (m := _OPEN.search(body, pos)) is not None:
        prefix, field = m.group(1), m.group(2)
        item, kind = _LISTS[field]
        end_tag = b"</" + prefix + field + b">"
        start = m.end()
        end = body.find(end_tag, start)
        if end < 0:
            return None  # not well-formed: the parser says where
        pos = end + len(end_tag)
        open_tag = b"<" + prefix + item + b">"
        if end - start < MIN_BYTES or not body.startswith(open_tag, start):
            continue
        read = _read_items(body, start, end, open_tag, b"</" + prefix + item + b">", kind)
        if read is None:
            return None
        pieces += (body[done:start], _MARKER % len(values))
        values.append(read)
        done = end
    if not values:
        return None
    pieces.append(body[done:])
    return CutRequest(b"".join(pieces), values)


def _read_items(body: bytes, start: int, end: int, open_tag: bytes, close_tag: bytes,
                kind: type) -> np.ndarray | None:
    """The values of the items in ``body[start:end]``, converted a chunk at a time; None if
    they are not items this reader takes."""
    between = close_tag + open_tag
    chunks = []
    pos = start
    while pos < end:
        stop = body.find(between, pos + CHUNK_BYTES, end) if end - pos > CHUNK_BYTES else -1
        stop = end if stop < 0 else stop + len(close_tag)  # chunks end after an item
        chunk = _chunk_values(body[pos:stop], open_tag, close_tag, between, kind)
        if chunk is None:
            return None
        chunks.append(chunk)
        pos = stop
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def _chunk_values(chunk: bytes, open_tag: bytes, close_tag: bytes, between: bytes,
                  kind: type) -> np.ndarray | None:
    if not (chunk.startswith(open_tag) and chunk.endswith(close_tag)) \
            or chunk.translate(None, _LIST_BYTES):
        return None
    texts = chunk[len(open_tag):-len(close_tag)].split(between)
    convert = float if kind is np.float64 else int
    try:  # a text holding "<", ">" or "&" (another tag, a reference) or nothing is no number,
        # so each text converted is a whole item's text. numpy converts a text to a number by
        # Python's float() or int(), which read ASCII bytes as they read a str: the same values
        # as np.array(texts, dtype=kind), in 60% of its time (no str objects, no dtype lookup).
        return np.fromiter(map(convert, texts), kind, count=len(texts))
    except (ValueError, OverflowError):
        return None  # the tree path words the fault


def cut_values(el: etree._Element, lists: Sequence[np.ndarray] | None) -> np.ndarray | None:
    """The values cut out of value list ``el``, if ``cut_value_lists`` cut it."""
    if lists is None or len(el) != 1 or el[0].tag != MARKER_TAG:
        return None
    return lists[int(el[0].text or "")]
