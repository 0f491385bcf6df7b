"""Typed value lists read from the request bytes (``soap.value_lists``) give exactly what the
parsed tree gives: the same arrays, or the same fault bytes, and the tree for anything else."""

from __future__ import annotations

import numpy as np
import pytest

from soap_server.soap import PredictCall, value_lists
from soap_server.soap.value_lists import cut_value_lists

from ..raw import SOAP_ENV, TNS, post

ITEM = {"float_val": "float", "double_val": "double", "int_val": "int", "int64_val": "long"}


def body(texts: list[str], dtype: str = "DT_FLOAT", field: str = "float_val",
         shape: tuple[int, ...] | None = None, prefix: str = "t:", between: str = "",
         model: str = "echo_float", tail: str = "</soapenv:Envelope>") -> bytes:
    """A Predict of one tensor whose value list holds ``texts``, items joined by ``between``."""
    p, item = prefix, ITEM[field]
    shape = shape if shape is not None else (1, len(texts))
    dims = "".join(f"<{p}long>{d}</{p}long>" for d in shape)
    items = between.join(f"<{p}{item}>{t}</{p}{item}>" for t in texts)
    xmlns = f'xmlns:t="{TNS}"' if p else f'xmlns="{TNS}"'
    return (f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"'
            f' {xmlns}><soapenv:Body><{p}Predict><{p}model_name>{model}</{p}model_name>'
            f"<{p}inputs><{p}Tensor><{p}name>x</{p}name><{p}dtype>{dtype}</{p}dtype>"
            f"<{p}shape>{dims}</{p}shape><{p}{field}>{items}</{p}{field}></{p}Tensor>"
            f"</{p}inputs></{p}Predict></soapenv:Body>{tail}").encode()


def floats(n: int, seed: int = 0) -> list[str]:
    return ["%.9g" % v for v in np.random.default_rng(seed).standard_normal(n).astype(np.float32)]


def decoded(server, request: bytes):
    return server.app.wsgi.fast_predict.decode(request, "text/xml; charset=utf-8", "rid-1")


def same_as_tree(server, monkeypatch, request: bytes):
    """Decode ``request`` as the server does and with the lists left to the tree; assert both
    give the same call (arrays equal bit for bit, same dtype) or the same fault bytes."""
    fast = decoded(server, request)
    with monkeypatch.context() as m:
        m.setattr(value_lists, "MIN_BYTES", 1 << 60)
        tree = decoded(server, request)
    assert type(fast) is type(tree)
    if isinstance(fast, PredictCall):
        assert (fast.model_name, fast.version, fast.output_filter, fast.encoding) == \
            (tree.model_name, tree.version, tree.output_filter, tree.encoding)
        for a, b in zip(fast.inputs, tree.inputs, strict=True):
            assert (a.name, a.packed, a.value.dtype, a.value.shape) == \
                (b.name, b.packed, b.value.dtype, b.value.shape)
            assert a.value.tobytes() == b.value.tobytes()
    else:
        assert fast == tree
    return fast


@pytest.mark.parametrize("prefix", ["t:", ""])
def test_a_clean_float_list_is_cut_and_decodes_as_the_tree_does(server, monkeypatch,
                                                                prefix) -> None:
    texts = floats(2000) + ["NaN", "INF", "-INF", "1e39", "-0", "1_0", "+.5", " 7 "]
    request = body(texts, prefix=prefix)
    cut = cut_value_lists(request)
    assert cut is not None and len(cut.values) == 1 and len(cut.body) < 1000
    call = same_as_tree(server, monkeypatch, request)
    assert isinstance(call, PredictCall)
    assert call.inputs[0].value.dtype == np.float32 and call.inputs[0].value.shape == (1, 2008)
    assert np.isinf(call.inputs[0].value[0, 2003])  # 1e39 overflows a DT_FLOAT


@pytest.mark.parametrize("dtype,field,texts", [
    ("DT_HALF", "float_val", floats(600)),
    ("DT_DOUBLE", "double_val", ["%.17g" % v for v in np.random.default_rng(1).random(600)]),
    ("DT_INT32", "int_val", [str(v) for v in range(-300, 300)]),
    ("DT_INT8", "int_val", [str(v % 256 - 128) for v in range(600)]),
    ("DT_UINT16", "int_val", [str(v * 100) for v in range(600)]),
    ("DT_INT64", "int64_val", [str(2**62 + v) for v in range(600)]),
])
def test_every_numeric_list_decodes_as_the_tree_does(server, monkeypatch, dtype, field,
                                                     texts) -> None:
    request = body(texts, dtype, field, model=f"echo_{dtype[3:].lower()}")
    assert cut_value_lists(request) is not None
    assert isinstance(same_as_tree(server, monkeypatch, request), PredictCall)


@pytest.mark.parametrize("dtype,field,texts,shape,words", [
    ("DT_INT8", "int_val", ["1"] * 599 + ["128"], None, b"out of range for DT_INT8"),
    ("DT_UINT16", "int_val", ["-1"] + ["1"] * 599, None, b"out of range for DT_UINT16"),
    ("DT_FLOAT", "float_val", floats(600), (1, 601), b"has 600 values in float_val"),
    ("DT_INT32", "float_val", floats(600), None, b"values go in int_val"),
])
def test_faults_on_cut_lists_are_byte_identical(server, monkeypatch, dtype, field, texts,
                                               shape, words) -> None:
    request = body(texts, dtype, field, shape=shape)
    assert cut_value_lists(request) is not None
    fault = same_as_tree(server, monkeypatch, request)
    assert isinstance(fault, bytes) and words in fault


@pytest.mark.parametrize("change", [
    {"between": "\n  "},  # pretty-printed items
    {"texts": floats(599) + ["abc"]},
    {"texts": floats(599) + [""]},  # an empty item
    {"texts": floats(599) + ["&#49;"]},  # a character reference
    {"texts": floats(599) + ["1\x0b"]},  # a control character Python strips as whitespace
    {"texts": floats(599) + ["1\r"]},  # CR, which the parser makes LF
    {"texts": floats(599) + ["1\u00a0"]},  # non-ASCII
    {"texts": floats(599) + ["<t:x/>1"]},  # an element inside an item
    {"texts": floats(599) + ["1]]>"]},
    {"texts": [str(v) for v in range(599)] + ["1.5"], "dtype": "DT_INT32", "field": "int_val"},
    {"texts": ["99999999999999999999"] * 600, "dtype": "DT_INT64", "field": "int64_val"},
    {"tail": "<!-- a comment --></soapenv:Envelope>"},
    {"tail": "<?pi text?></soapenv:Envelope>"},
    {"texts": floats(599) + ["<![CDATA[1]]>"]},
    {"tail": f"<x xmlns='{value_lists.MARKER_NS}'/></soapenv:Envelope>"},  # a forged marker
])
def test_what_the_reader_does_not_take_goes_to_the_tree(server, monkeypatch, change) -> None:
    kwargs = {"texts": floats(600), **change}
    request = body(**kwargs)
    assert cut_value_lists(request) is None
    same_as_tree(server, monkeypatch, request)


def test_a_parse_error_after_a_cut_list_keeps_the_parsers_position(server, monkeypatch) -> None:
    request = body(floats(600), tail="</soapenv:Envelop>")
    assert cut_value_lists(request) is not None
    fault = same_as_tree(server, monkeypatch, request)
    assert isinstance(fault, bytes) and b"not well-formed XML at line 1, column" in fault


def test_lists_over_many_chunks_decode_as_one(server, monkeypatch) -> None:
    monkeypatch.setattr(value_lists, "CHUNK_BYTES", 700)
    request = body(floats(3000))
    cut = cut_value_lists(request)
    assert cut is not None and cut.values[0].size == 3000
    same_as_tree(server, monkeypatch, request)


def test_compact_and_pretty_printed_lists_get_the_same_answer(server) -> None:
    texts = floats(4000, seed=3)
    compact = post(server.url, body(texts, model="echo_float"))
    pretty = post(server.url, body(texts, model="echo_float", between="\n    "))
    assert compact.status == 200, compact.body[:300]
    assert compact.body == pretty.body
    sent = np.array(texts, dtype=np.float32)
    assert ("<float>%.9g</float>" % sent[0]).encode() in compact.body
