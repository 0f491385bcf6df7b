"""Memory of big XML requests on every path, and the cost of a WS-Addressing header.

Runs ``tfsoap serve`` in a process of its own (one fresh server per variant, so each starts from
the same resident size) serving ``echo_float`` (``y = identity(x)``, ``z = size(x)``); every
request asks only for ``z`` so the responses stay small and the memory measured is the request's.

Memory variants (``--mib`` MB bodies, default 30): the typed list (``float_val``) without a
header (its items back to back: read from the bytes, ``soap.value_lists``), the same with each
item on a line of its own (``typed_pretty``: parsed as a tree, the path every typed request
took before), with an empty ``<soapenv:Header/>``, with the WS-Addressing headers zeep sends, in
ISO-8859-1 (always through Spyne's pipeline), and as ``tensor_content``; each sends
``--serial`` requests one after the other, then ``--rounds`` rounds
of ``--concurrent`` at once, and reads the server's ``VmRSS`` before, after each stage and after a
pause, and ``VmHWM`` (peak). ``peak_bytes_per_request_byte`` is (peak - idle) over the bytes of
the requests in flight at once.

Attribute names: ``--attr-requests`` requests each carrying ``--attr-names`` new attribute names
(the libxml2 dictionary case), RSS before and after.

Speed: ``--small-requests`` small Predicts (a 1x64 float matrix, typed) one after the other over
one keep-alive connection, without and with the WS-Addressing headers: median latency and ratio.

    PYTHONPATH=$PWD python benchmarks/xml_memory_bench.py [--out benchmarks/results/xml_memory.json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from bench_models import REPO
from bench_server import ServerProcess
from loadgen import proc_mem_mib
from soap_bodies import SOAP_ENV, TNS, tensor_xml

from model_store import ModelRepository

sys.path.insert(0, str(REPO))
from tests.models import echo_model  # noqa: E402

WSA = "http://www.w3.org/2005/08/addressing"
HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"Predict"'}
LATIN1_MARK = b"latin1:"


def wsa_header(address: str) -> str:
    """The WS-Addressing headers zeep sends when the WSDL carries ``wsaw:Action``."""
    return (f'<soapenv:Header xmlns:wsa="{WSA}">'
            "<wsa:Action>urn:tfsoap:predict:v1/PredictService/PredictRequest</wsa:Action>"
            f"<wsa:MessageID>urn:uuid:{uuid.uuid4()}</wsa:MessageID>"
            f"<wsa:To>{address}</wsa:To></soapenv:Header>")


def body(arr: np.ndarray, encoding: str, header: str = "", pretty: bool = False) -> bytes:
    """A ``Predict`` of ``arr`` as ``x`` to ``echo_float`` asking only for ``z`` (``pretty``:
    each typed item on a line of its own, which the server parses as a tree)."""
    tensor = tensor_xml('x', arr, encoding)
    if pretty:
        tensor = tensor.replace("</float><float>", "</float>\n  <float>")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}">{header}<soapenv:Body>'
        f'<Predict xmlns="{TNS}"><model_name>echo_float</model_name>'
        f"<inputs>{tensor}</inputs>"
        "<output_filter><string>z</string></output_filter></Predict>"
        "</soapenv:Body></soapenv:Envelope>").encode()


def attr_body(n: int, salt: str) -> bytes:
    """A small valid ``Predict`` whose ``<model_name>`` carries ``n`` attributes of new names."""
    attrs = " ".join(f'a{salt}{i}="1"' for i in range(n))
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}"><soapenv:Body>'
        f'<Predict xmlns="{TNS}"><model_name {attrs}>echo_float</model_name>'
        f"<inputs>{tensor_xml('x', np.ones((1, 4), np.float32), 'float_val')}</inputs>"
        "</Predict></soapenv:Body></soapenv:Envelope>").encode()


def post(port: int, data: bytes, conn: http.client.HTTPConnection | None = None
         ) -> tuple[int, bytes]:
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    headers = HEADERS
    if data.startswith(LATIN1_MARK):  # sent as ISO-8859-1: through Spyne's pipeline
        data, headers = data[len(LATIN1_MARK):], dict(HEADERS, **{
            "Content-Type": "text/xml; charset=iso-8859-1"})
    try:
        c.request("POST", "/", body=data, headers=headers)
        r = c.getresponse()
        return r.status, r.read()
    finally:
        if own:
            c.close()


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants: ``tfsoap serve`` runs its server in worker processes."""
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        found.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children", encoding="ascii") as f:
                todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return found


def tree_mem(pid: int, key: str) -> float:
    """``VmRSS`` or ``VmHWM`` summed over the server's processes, MiB."""
    total = 0.0
    for p in _tree(pid):
        try:
            total += proc_mem_mib(p)[key]
        except (OSError, KeyError):
            pass
    return round(total, 1)


def rss(pid: int) -> float:
    return tree_mem(pid, "VmRSS")


def memory_variant(store: Path, name: str, data: bytes, serial: int, rounds: int,
                   concurrent: int, logs: Path) -> dict[str, Any]:
    srv = ServerProcess(store, "off", 0, 0, ["--max-body-bytes", str(len(data) + (1 << 20))],
                        logs / f"server-{name}.log")
    try:
        srv.wait_ready()
        status, _ = post(srv.port, body(np.ones((1, 4), np.float32), "float_val"))
        time.sleep(0.5)
        out: dict[str, Any] = {"variant": name, "request_bytes": len(data),
                               "idle_mib": rss(srv.pid)}
        errors = 0
        serial_rss = []
        for _ in range(serial):
            status, reply = post(srv.port, data)
            errors += status != 200
            serial_rss.append(rss(srv.pid))
        out["after_serial_mib"] = serial_rss
        round_rss = []
        for _ in range(rounds):
            results: list[int] = []

            def one(out: list[int] = results) -> None:
                out.append(post(srv.port, data)[0])

            threads = [threading.Thread(target=one) for _ in range(concurrent)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(600)
            errors += sum(s != 200 for s in results) + (concurrent - len(results))
            round_rss.append(rss(srv.pid))
        out["after_rounds_mib"] = round_rss
        time.sleep(2.0)
        out["settled_mib"] = rss(srv.pid)
        out["peak_mib"] = tree_mem(srv.pid, "VmHWM")
        out["errors"] = errors
        in_flight = len(data) * max(1, concurrent)
        out["peak_bytes_per_request_byte"] = round(
            (out["peak_mib"] - out["idle_mib"]) * 2**20 / in_flight, 2)
        out["settled_over_idle_mib"] = round(out["settled_mib"] - out["idle_mib"], 1)
        if errors:
            out["first_reply"] = reply[:400].decode("utf-8", "replace")
        return out
    finally:
        srv.stop()


def attr_variant(store: Path, n: int, requests: int, logs: Path) -> dict[str, Any]:
    srv = ServerProcess(store, "off", 0, 0, [], logs / "server-attrs.log")
    try:
        srv.wait_ready()
        post(srv.port, body(np.ones((1, 4), np.float32), "float_val"))
        time.sleep(0.5)
        before = rss(srv.pid)
        statuses, after = [], []
        first = b""
        for i in range(requests):
            status, reply = post(srv.port, attr_body(n, f"r{i}x"))
            statuses.append(status)
            first = first or reply[:300]
            after.append(rss(srv.pid))
        return {"attribute_names_per_request": n, "idle_mib": before, "after_each_mib": after,
                "grown_mib": round(after[-1] - before, 1), "statuses": statuses,
                "first_reply": first.decode("utf-8", "replace")}
    finally:
        srv.stop()


def speed_variant(store: Path, n: int, logs: Path) -> dict[str, Any]:
    srv = ServerProcess(store, "off", 0, 0, [], logs / "server-speed.log")
    try:
        srv.wait_ready()
        arr = np.random.default_rng(0).random((1, 64), dtype=np.float32)
        plain = body(arr, "float_val")
        with_wsa = body(arr, "float_val", wsa_header(f"http://127.0.0.1:{srv.port}/"))
        out: dict[str, Any] = {"requests": n}
        conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=60)
        for _ in range(50):  # warm-up
            post(srv.port, plain, conn)
            post(srv.port, with_wsa, conn)
        times: dict[str, list[float]] = {"plain": [], "wsa": []}
        for _ in range(n):  # interleaved, so drift hits both alike
            for key, data in (("plain", plain), ("wsa", with_wsa)):
                t0 = time.perf_counter()
                status, _ = post(srv.port, data, conn)
                times[key].append((time.perf_counter() - t0) * 1000)
                if status != 200:
                    raise RuntimeError(f"{key}: HTTP {status}")
        conn.close()
        for key, ts in times.items():
            out[f"{key}_median_ms"] = round(statistics.median(ts), 3)
        out["wsa_over_plain"] = round(out["wsa_median_ms"] / out["plain_median_ms"], 3)
        return out
    finally:
        srv.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--mib", type=float, default=30.0, help="size of a big request, MB")
    ap.add_argument("--serial", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--concurrent", type=int, default=8)
    ap.add_argument("--attr-names", type=int, default=500_000)
    ap.add_argument("--attr-requests", type=int, default=5)
    ap.add_argument("--small-requests", type=int, default=1000)
    ap.add_argument("--only", default="", help="comma-separated: memory,attrs,speed")
    ap.add_argument("--variants",
                    default="typed,typed_pretty,typed_header,typed_wsa,typed_latin1,tensor_content")
    ap.add_argument("--label", default="")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "xml_memory.json"))
    args = ap.parse_args()
    only = set(filter(None, args.only.split(","))) or {"memory", "attrs", "speed"}
    results: dict[str, Any] = {"label": args.label, "settings": vars(args)}
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        graph, sig = echo_model("DT_FLOAT")
        ModelRepository(store).write_version("echo_float", graph, sig, version=1)
        logs = Path(tmp)
        if "memory" in only:
            # a typed float is about 26 bytes ("<float>0.123456789</float>")
            n_typed = int(args.mib * 1e6 / 26)
            typed_arr = np.random.default_rng(1).random((1, n_typed), dtype=np.float32)
            n_packed = int(args.mib * 1e6 / 4 * 3 / 4)
            packed_arr = np.random.default_rng(2).random((1, n_packed), dtype=np.float32)
            variants = {
                "typed": lambda: body(typed_arr, "float_val"),
                "typed_pretty": lambda: body(typed_arr, "float_val", pretty=True),
                "typed_header": lambda: body(typed_arr, "float_val", "<soapenv:Header/>"),
                "typed_wsa": lambda: body(typed_arr, "float_val",
                                          wsa_header("http://127.0.0.1/")),
                "typed_latin1": lambda: LATIN1_MARK + body(typed_arr, "float_val").replace(
                    b'encoding="UTF-8"', b'encoding="ISO-8859-1"'),
                "tensor_content": lambda: body(packed_arr, "tensor_content"),
            }
            results["memory"] = []
            for name in args.variants.split(","):
                r = memory_variant(store, name, variants[name](), args.serial, args.rounds,
                                   args.concurrent, logs)
                print(json.dumps(r), flush=True)
                results["memory"].append(r)
        if "attrs" in only:
            results["attrs"] = attr_variant(store, args.attr_names, args.attr_requests, logs)
            print(json.dumps(results["attrs"]), flush=True)
        if "speed" in only:
            results["speed"] = speed_variant(store, args.small_requests, logs)
            print(json.dumps(results["speed"]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
