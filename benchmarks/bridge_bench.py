"""The same model over four wires: SOAP typed (``float_val``), SOAP ``tensor_content``, TF
Serving's REST rows (``instances``) and TF Serving's gRPC ``Predict``, at concurrency 1 and 8.

``tfsoap serve --grpc-port`` runs in its own process on the bundled digits model; this process
sends prebuilt requests from ``concurrency`` threads (one keep-alive connection or one gRPC
channel each), closed loop, each phase bounded by time and count, and also measures the
in-process ``LoadedModel.run`` rate of the same batch. It prints medians of the rounds and the
served/in-process ratio, and writes ``benchmarks/results/bridge.json``.

    PYTHONPATH=. python benchmarks/bridge_bench.py [--rounds 3] [--seconds 3] [--batch 1]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_server import ServerProcess, free_port  # noqa: E402
from soap_bodies import HEADERS, predict_body  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
WIRES = ("soap_typed", "soap_tensor_content", "rest_rows", "grpc")
MAX_REQUESTS = 20_000


def _http_sender(port: int, path: str, body: bytes,
                 headers: dict[str, str]) -> Callable[[], Callable[[], None]]:
    def make() -> Callable[[], None]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

        def send() -> None:
            conn.request("POST", path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200:
                raise RuntimeError(f"{path}: HTTP {resp.status} {data[:200]!r}")
        return send
    return make


def _grpc_sender(port: int, images: np.ndarray) -> Callable[[], Callable[[], None]]:
    import grpc
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    request = predict_pb2.PredictRequest()
    request.model_spec.name = "digits"
    tensor = request.inputs["images"]
    tensor.dtype = 1  # DT_FLOAT
    for d in images.shape:
        tensor.tensor_shape.dim.add(size=d)
    tensor.tensor_content = np.ascontiguousarray(images, "<f4").tobytes()

    def make() -> Callable[[], None]:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(
            grpc.insecure_channel(f"127.0.0.1:{port}"))

        def send() -> None:
            stub.Predict(request, timeout=60)
        return send
    return make


def run_phase(make: Callable[[], Callable[[], None]], concurrency: int,
              seconds: float) -> float:
    """Requests per second of ``concurrency`` closed-loop senders over ``seconds``."""
    senders = [make() for _ in range(concurrency)]
    for send in senders:  # warm-up: connections open, first request answered
        send()
    counts = [0] * concurrency
    errors: list[BaseException] = []
    start_line = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def loop(i: int) -> None:
        start_line.wait()
        try:
            while time.perf_counter() < stop_at[0] and sum(counts) < MAX_REQUESTS:
                senders[i]()
                counts[i] += 1
        except BaseException as exc:  # reported after the phase
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(concurrency)]
    for t in threads:
        t.start()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    start_line.wait()
    for t in threads:
        t.join(timeout=seconds + 120)
    elapsed = time.perf_counter() - began
    if errors:
        raise RuntimeError(f"{len(errors)} request(s) failed: {errors[0]}")
    return sum(counts) / elapsed


def in_process_rate(images: np.ndarray, seconds: float) -> float:
    from model_store import ModelRepository, bundled_store_path
    from model_store.serving.loader import LoadedModel

    model = LoadedModel(ModelRepository(bundled_store_path()).get("digits"))
    feeds = {"images": images}
    model.run(feeds)
    n, began = 0, time.perf_counter()
    while time.perf_counter() - began < seconds and n < MAX_REQUESTS:
        model.run(feeds)
        n += 1
    rate = n / (time.perf_counter() - began)
    model.close()
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--output", default=str(RESULTS / "bridge.json"))
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    images = np.load(REPO / "model_store" / "demo_data" / "digits_images.npy")
    images = np.resize(images, (args.batch, 64)).astype(np.float32)

    grpc_port = free_port()
    store = REPO / "model_store" / "demo_store"
    server = ServerProcess(store, "on", 0, 0, ["--grpc-port", str(grpc_port)],
                           Path(tempfile.gettempdir()) / "tfsoap_bridge_server.log")
    rows: dict[str, dict[int, list[float]]] = {w: {1: [], 8: []} for w in WIRES}
    inproc: list[float] = []
    try:
        server.wait_ready()
        makers = {
            "soap_typed": _http_sender(server.port, "/", predict_body(
                "digits", "images", images, "float_val"), HEADERS),
            "soap_tensor_content": _http_sender(server.port, "/", predict_body(
                "digits", "images", images, "tensor_content"), HEADERS),
            "rest_rows": _http_sender(server.port, "/v1/models/digits:predict", json.dumps(
                {"instances": images.tolist()}).encode(), {"Content-Type": "application/json"}),
            "grpc": _grpc_sender(grpc_port, images),
        }
        for r in range(args.rounds):
            inproc.append(in_process_rate(images, args.seconds))
            for wire in WIRES:
                for conc in (1, 8):
                    rows[wire][conc].append(run_phase(makers[wire], conc, args.seconds))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr, flush=True)
    finally:
        server.stop()
    base = statistics.median(inproc)
    table = []
    print(f"\ndigits, batch {args.batch}, medians of {args.rounds} rounds of {args.seconds}s; "
          f"in-process LoadedModel.run: {base:,.0f} runs/s")
    print(f"{'wire':<22}{'conc':>5}{'req/s':>10}{'ratio':>8}")
    for wire in WIRES:
        for conc in (1, 8):
            rate = statistics.median(rows[wire][conc])
            table.append({"wire": wire, "concurrency": conc, "requests_per_s": rate,
                          "ratio_to_in_process": rate / base, "rounds": rows[wire][conc]})
            print(f"{wire:<22}{conc:>5}{rate:>10,.0f}{rate / base:>8.2f}")
    report = {"benchmark": "bridge", "model": "digits", "batch": args.batch,
              "rounds": args.rounds, "seconds": args.seconds, "in_process_runs_per_s": base,
              "in_process_rounds": inproc, "rows": table, "cpus": os.cpu_count(),
              "python": platform.python_version(), "when": time.strftime("%Y-%m-%d %H:%M")}
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
