#!/usr/bin/env python
"""Where one ``Predict`` request's time goes inside the server, without the network.

Builds the server's WSGI application (``soap_server.app.build_app``) over the benchmark store,
calls it directly with a prebuilt request many times, and prints the mean time per request
and the model's own ``LoadedModel.run`` time for the same input, so the difference is the cost
of our HTTP-free pipeline (WSGI front, Spyne, codec, dataplane, gate or batcher).
``--profile`` adds a cProfile listing sorted by cumulative time.

    python benchmarks/profile_request.py --model cnn --batch 1 --encoding tensor_content
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from bench_models import MODELS, build_store  # noqa: E402
from soap_bodies import ENCODINGS, predict_body, sample_input  # noqa: E402


def environ_for(body: bytes) -> dict[str, Any]:
    return {"REQUEST_METHOD": "POST", "PATH_INFO": "/", "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8080", "SERVER_PROTOCOL": "HTTP/1.1",
            "CONTENT_TYPE": "text/xml; charset=utf-8", "CONTENT_LENGTH": str(len(body)),
            "HTTP_SOAPACTION": '"Predict"', "wsgi.input": io.BytesIO(body),
            "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr, "wsgi.version": (1, 0),
            "wsgi.multithread": True, "wsgi.multiprocess": False, "wsgi.run_once": False}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="cnn", choices=sorted(MODELS))
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--encoding", default="tensor_content", choices=ENCODINGS)
    p.add_argument("--batching", action="store_true", help="serve with dynamic batching on")
    p.add_argument("--requests", type=int, default=2000)
    p.add_argument("--profile", action="store_true", help="print a cProfile listing")
    args = p.parse_args(argv)

    import logging

    from soap_server.app import build_app
    from soap_server.settings import Settings

    logging.basicConfig(level=logging.WARNING)
    model = MODELS[args.model]
    with tempfile.TemporaryDirectory(prefix="tfsoap-prof-") as tmp:
        store = Path(tmp) / "store"
        build_store(store)
        app = build_app(Settings(model_store=str(store), intra_op_threads=2,
                                 inter_op_threads=2, batching=args.batching))
        app.registry.load_all()
        arr = sample_input((args.batch, *model.example_shape))
        body = predict_body(model.name, model.alias, arr, args.encoding)
        status: list[str] = []

        def start_response(s: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
            status.append(s)
            return lambda data: None

        def one() -> None:
            out = b"".join(app.wsgi(environ_for(body), start_response))
            if not status[-1].startswith("200"):
                raise SystemExit(f"request failed: {status[-1]}: {out[:500]!r}")

        for _ in range(50):
            one()
        loaded = app.registry.get(model.name).loaded
        feeds = {model.alias: arr}
        t0 = time.perf_counter()
        for _ in range(args.requests):
            loaded.run(feeds)
        run_ms = (time.perf_counter() - t0) * 1000 / args.requests
        prof = cProfile.Profile() if args.profile else None
        t0, c0 = time.perf_counter(), time.process_time()
        if prof is not None:
            prof.enable()
        for _ in range(args.requests):
            one()
        if prof is not None:
            prof.disable()
        req_ms = (time.perf_counter() - t0) * 1000 / args.requests
        cpu_ms = (time.process_time() - c0) * 1000 / args.requests
        print(f"{args.model} batch {args.batch} {args.encoding}: {req_ms:.3f} ms per request "
              f"({cpu_ms:.3f} ms CPU), LoadedModel.run {run_ms:.3f} ms: pipeline "
              f"{req_ms - run_ms:.3f} ms")
        if prof is not None:
            pstats.Stats(prof).sort_stats("cumulative").print_stats(45)
        app.registry.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
