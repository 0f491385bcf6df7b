"""Codec-only speed, in this process, on one CNN batch (32 x 28 x 28 x 1 = 25,088 floats).

- ``decode_parse``: the whole request document parsed with the server's parser settings, then
  the ``Tensor`` element decoded by ``soap_server.soap.codec.decode_tensor``;
- ``decode``: ``decode_tensor`` on the already parsed element;
- ``encode``: ``encode_tensor`` to text and then to UTF-8 bytes, as a response is written;
- ``request_bytes``: the fast path's whole decode of the request bytes (attribute and DTD
  checks, the value lists read from the bytes, the parse of the rest, the envelope rules,
  ``decode_predict``), as the server does it;
- ``request_tree``: the same with the value lists left to the parsed tree (the path before
  ``soap.value_lists``; pretty-printed lists still take it), in the same run.

Each figure is the best of several repetitions within a round, in floats per second, timed in
CPU time of this thread (the figures hold on a machine other processes share).

    PYTHONPATH=$PWD python benchmarks/codec_figures.py [--rounds 5] [--out FILE]
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
        t0 = time.thread_time()
        fn()
        best = min(best, time.thread_time() - t0)
        reps += 1
        if reps >= 200:
            break
    return count / best


def codec_round(budget_s: float = 0.4) -> dict[str, dict[str, float]]:
    """One round of codec figures by encoding: floats per second for each operation."""
    from soap_server.soap import value_lists
    from soap_server.soap.codec import decode_tensor, encode_tensor
    from soap_server.soap.protocol import PredictFastPath, TfsoapSoap11

    parser_kwargs = TfsoapSoap11(validator="soft").parser_kwargs
    arr = sample_input(CNN_BATCH_SHAPE)
    n = arr.size
    out: dict[str, dict[str, float]] = {}
    path = "*/{%s}Predict/{%s}inputs/{%s}Tensor" % (TNS, TNS, TNS)
    parser = etree.XMLParser(**parser_kwargs)
    fast = PredictFastPath(None, parser_kwargs)  # type: ignore[arg-type]  # decodes only
    cut_from = value_lists.MIN_BYTES

    def whole(body: bytes, tree: bool) -> object:
        value_lists.MIN_BYTES = 1 << 60 if tree else cut_from
        try:
            return fast._decode(body, "bench")
        finally:
            value_lists.MIN_BYTES = cut_from
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
            "request_bytes": _best_rate(lambda b=body: whole(b, False), n, budget_s),
            "request_tree": _best_rate(lambda b=body: whole(b, True), n, budget_s),
        }
    return out


def main() -> int:
    """Rounds of codec figures side by side, medians and the bytes-over-tree ratio as JSON."""
    import argparse
    import json
    import statistics
    from pathlib import Path

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--budget", type=float, default=0.6, help="seconds per figure and round")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "codec_typed.json"))
    args = ap.parse_args()
    rounds = [codec_round(args.budget) for _ in range(args.rounds)]
    median = {enc: {op: round(statistics.median(r[enc][op] for r in rounds))
                    for op in rounds[0][enc]} for enc in rounds[0]}
    for enc, ops in median.items():
        ops["bytes_over_tree"] = round(ops["request_bytes"] / ops["request_tree"], 2)
        print(f"{enc:15s} " + "  ".join(f"{op} {v / 1e6:.2f} M/s" if op != "bytes_over_tree"
                                         else f"{op} {v}x" for op, v in ops.items()))
    Path(args.out).write_text(json.dumps(
        {"floats": int(np.prod(CNN_BATCH_SHAPE)), "unit": "floats per second (thread CPU)",
         "median": median, "rounds": rounds}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
