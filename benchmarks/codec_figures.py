"""Codec-only speed, in this process, on one CNN batch (32 x 28 x 28 x 1 = 25,088 floats).

- ``decode_parse``: the whole request document parsed with the server's parser settings, then
  the ``Tensor`` element decoded by ``soap_server.soap.codec.decode_tensor``;
- ``decode``: ``decode_tensor`` on the already parsed element;
- ``encode``: ``encode_tensor`` to text and then to UTF-8 bytes, as a response is written.

Each figure is the best of several repetitions within a round, in floats per second.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
from lxml import etree
from soap_bodies import ENCODINGS, TNS, predict_body, sample_input

CNN_BATCH_SHAPE = (32, 28, 28, 1)


def _best_rate(fn: Callable[[], object], count: int, budget_s: float) -> float:
    fn()
    best = float("inf")
    deadline = time.perf_counter() + budget_s
    reps = 0
    while reps < 3 or time.perf_counter() < deadline:
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        reps += 1
        if reps >= 200:
            break
    return count / best


def codec_round(budget_s: float = 0.4) -> dict[str, dict[str, float]]:
    """One round of codec figures by encoding: floats per second for each operation."""
    from soap_server.soap.codec import decode_tensor, encode_tensor
    from soap_server.soap.protocol import TfsoapSoap11

    parser_kwargs = TfsoapSoap11(validator="soft").parser_kwargs
    arr = sample_input(CNN_BATCH_SHAPE)
    n = arr.size
    out: dict[str, dict[str, float]] = {}
    path = "*/{%s}Predict/{%s}inputs/{%s}Tensor" % (TNS, TNS, TNS)
    parser = etree.XMLParser(**parser_kwargs)
    for encoding in ENCODINGS:
        body = predict_body("cnn", "images", arr, encoding)
        el = etree.fromstring(body, parser).find(path)
        if not np.array_equal(decode_tensor(el).value, arr):
            raise AssertionError(f"codec round trip of {encoding} differs")
        packed = encoding == "tensor_content"
        out[encoding] = {
            "decode_parse": _best_rate(
                lambda b=body: decode_tensor(etree.fromstring(b, parser).find(path)),
                n, budget_s),
            "decode": _best_rate(lambda e=el: decode_tensor(e), n, budget_s),
            "encode": _best_rate(
                lambda p=packed: encode_tensor("images", arr, p).encode("utf-8"), n, budget_s),
        }
    return out
