"""Hostile and slow clients against a real ``tfsoap serve`` (granian, worker processes) on
loopback: each row of issue 9's table, asserting the answer, that good requests keep being
served during and after, and that memory stays bounded. Counts and times are kept small."""

from __future__ import annotations

import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from model_store import bundled_store_path

from ..raw import parse_fault, post

IMAGES = Path(bundled_store_path()).parent / "demo_data" / "digits_images.npy"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    """A ``tfsoap serve`` process on a free loopback port, with its log captured."""

    def __init__(self, *flags: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
        self.log_path = Path(os.environ.get("TMPDIR", "/tmp")) / f"tfsoap-{self.port}.log"
        self.log = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "soap_server.cli", "serve", "--port", str(self.port), *flags],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log_text()
            try:
                if post(self.url + "readyz", b"", method="GET").status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError("server not ready: " + self.log_text())

    def wait_workers(self, count: int, timeout: float = 120.0) -> None:
        """Wait until ``count`` workers have loaded their models and serve (granian logs
        "Started worker-N" and then, once it serves, "Started worker-N runtime-M": count those;
        counting both lines let a test kill worker 1 before worker 2 listened)."""
        deadline = time.monotonic() + timeout
        while len(re.findall(r"\[INFO\] Started worker-\d+ runtime-", self.log_text())) < count:
            assert time.monotonic() < deadline, self.log_text()
            time.sleep(0.2)

    def log_text(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return self.log_path.read_text(errors="replace")

    def rss_mib(self) -> float:
        """Resident memory of the server and its workers, MiB."""
        pids = [self.proc.pid] + [int(p) for p in subprocess.run(
            ["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()]
        total = 0
        for pid in pids:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()
        return int(self.proc.returncode)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    srv = Served("--header-timeout-s", "2", "--body-timeout-s", "3",
                 "--max-body-bytes", str(1 << 20), "--max-header-bytes", "16384")
    yield srv
    assert srv.stop() == 0


def predict_once(url: str) -> float:
    """One good Predict through the Python client; its latency in ms."""
    from tfsoap_client import PredictClient

    images = np.load(IMAGES)
    started = time.perf_counter()
    out = PredictClient(url, timeout=30).predict("digits", {"images": images})
    assert out["classes"].tolist() == list(range(10))
    return (time.perf_counter() - started) * 1000


def raw_exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` on a new connection and read the answer until the server closes it."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if b"</soap11env:Envelope>" in b"".join(chunks)[-200:]:
                    break
        except (TimeoutError, ConnectionResetError):
            pass
    return b"".join(chunks)


def still_open(s: socket.socket) -> bool:
    """Whether the server kept ``s`` open (it may have answered a fault first)."""
    s.settimeout(0.2)
    try:
        while s.recv(65536):
            pass
        return False
    except TimeoutError:
        return True
    except OSError:
        return False


def test_silent_slowloris_and_slow_upload_connections_do_not_stall_good_requests(
        served: Served) -> None:
    stop = threading.Event()
    socks: list[socket.socket] = []

    def open_many(n: int, first: bytes) -> None:
        for _ in range(n):
            try:
                s = socket.create_connection(("127.0.0.1", served.port), timeout=5)
                if first:
                    s.sendall(first)
                socks.append(s)
            except OSError:
                pass

    open_many(300, b"")  # silent
    open_many(60, b"POST / HTTP/1.1\r\nHost: x\r\n")  # slowloris: headers never end
    open_many(40, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
                  b"Content-Length: 100000\r\n\r\n<")  # slow uploads

    def trickle() -> None:
        while not stop.wait(0.5):
            for s in list(socks):
                try:
                    s.send(b"a")
                except OSError:
                    pass

    threading.Thread(target=trickle, daemon=True).start()
    rss_before = served.rss_mib()
    try:
        latencies = [predict_once(served.url) for _ in range(30)]
        assert statistics.median(latencies) < 250, latencies  # generous: a shared 2-core CI box
        time.sleep(4.5)  # past the header (2 s) and body (3 s) deadlines
        alive = sum(1 for s in socks if still_open(s))
        assert alive == 0, f"{alive} of {len(socks)} trickling connections were not closed"
        assert served.rss_mib() - rss_before < 50
    finally:
        stop.set()
        for s in socks:
            s.close()
    predict_once(served.url)


@pytest.mark.parametrize("head", [
    b"POST / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 64 * 1024 + b"\r\n\r\n",
    b"POST /" + b"a" * 64 * 1024 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200))
    + b"\r\n",
], ids=["64 KiB header", "64 KiB request line", "200 headers"])
def test_oversized_request_line_and_headers_are_refused(served: Served, head: bytes) -> None:
    answer = raw_exchange(served.port, head)
    status_line = answer.split(b"\r\n", 1)[0]
    assert b" 431 " in status_line or b" 414 " in status_line, status_line
    predict_once(served.url)


def test_chunked_body_over_the_limit_is_refused_while_it_arrives(served: Served) -> None:
    started = time.monotonic()
    head = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % (256 << 20))
    with socket.create_connection(("127.0.0.1", served.port), timeout=20) as s:
        s.sendall(head)
        sent = 0
        try:
            while sent < (8 << 20):  # far past the 1 MiB limit, far short of the chunk
                s.sendall(b" " * 65536)
                sent += 65536
        except OSError:
            pass
        answer = b""
        try:
            answer = s.recv(65536)
        except OSError:
            pass
    assert time.monotonic() - started < 10
    if answer:  # the fault, unless the server closed first (the client is still sending)
        assert b"Client.RequestTooLarge" in answer
    predict_once(served.url)


def test_a_body_in_one_byte_chunks_costs_linear_time(served: Served) -> None:
    body = b"<x/>" * 64 * 1024  # 256 KiB in 1-byte chunks: quadratic joins would take seconds
    chunks = b"".join(b"1\r\n%s\r\n" % body[i:i + 1] for i in range(len(body))) + b"0\r\n\r\n"
    started = time.monotonic()
    answer = raw_exchange(served.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml"
                          b"\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks, timeout=30)
    assert time.monotonic() - started < 15
    assert b"Client.MalformedRequest" in answer  # not a Predict, but read whole and answered
    predict_once(served.url)


@pytest.mark.parametrize("chunked", [b"zz\r\nabc\r\n0\r\n\r\n", b"3\r\nabcdef",
                                     b"ffffffffffffffff\r\nabc\r\n0\r\n\r\n"])
def test_broken_chunked_framing_is_a_client_error_without_a_traceback(
        served: Served, chunked: bytes) -> None:
    answer = raw_exchange(served.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n" + chunked, timeout=8)
    first = answer.split(b"\r\n", 1)[0]
    assert answer == b"" or b" 400 " in first or b"Client.MalformedRequest" in answer, answer
    assert b"Server.Internal" not in answer
    assert "Traceback" not in served.log_text()
    predict_once(served.url)


def test_content_length_longer_than_the_body_ends_at_the_body_deadline(served: Served) -> None:
    started = time.monotonic()
    answer = raw_exchange(served.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml"
                          b"\r\nContent-Length: 600\r\n\r\n<short/>", timeout=15)
    assert 2.5 < time.monotonic() - started < 8
    assert b"Client.MalformedRequest" in answer
    answer = raw_exchange(served.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml"
                          b"\r\nContent-Length: " + b"1" * 30 + b"\r\n\r\n<short/>", timeout=15)
    assert b"Client.RequestTooLarge" in answer or b" 400 " in answer.split(b"\r\n", 1)[0]


def test_content_length_that_is_not_a_number_is_a_400(served: Served) -> None:
    answer = raw_exchange(served.port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml"
                          b"\r\nContent-Length: abc\r\n\r\n<x/>", timeout=8)
    assert b" 400 " in answer.split(b"\r\n", 1)[0]
    predict_once(served.url)


def test_connection_resets_leave_no_traceback(served: Served) -> None:
    import struct

    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", served.port), timeout=5)
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: text/xml\r\n"
                  b"Content-Length: 5000\r\n\r\n<soap")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # RST
    predict_once(served.url)
    assert "Traceback" not in served.log_text()


def test_health_probes_answer_while_predicts_are_busy(served: Served) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tfsoap_client import PredictClient

    clients = [PredictClient(served.url, timeout=30) for _ in range(16)]
    images = np.load(IMAGES)
    stop = threading.Event()
    slow: list[float] = []

    def busy(i: int) -> None:
        while not stop.is_set():
            clients[i].predict("digits", {"images": images})

    with ThreadPoolExecutor(16) as pool:
        for i in range(16):
            pool.submit(busy, i)
        time.sleep(0.5)
        until = time.monotonic() + 3
        while time.monotonic() < until:
            started = time.perf_counter()
            assert post(served.url + "healthz", b"", method="GET").status == 200
            slow.append(time.perf_counter() - started)
            time.sleep(0.05)
        stop.set()
    assert max(slow) < 1.0, max(slow)  # a Kubernetes liveness probe times out at 1 s


def test_overload_is_refused_fast_with_unavailable() -> None:
    srv = Served("--max-pending-requests", "2", "--threads", "2")
    try:
        from concurrent.futures import ThreadPoolExecutor

        from tfsoap_client import ClientError, PredictClient

        big = np.random.default_rng(0).random((4096, 64), np.float32)
        clients = [PredictClient(srv.url, timeout=60) for _ in range(24)]  # WSDL read first

        def call(i: int) -> tuple[str, float]:
            started = time.perf_counter()
            try:
                clients[i % 24].predict("digits", {"images": big})
                return "ok", time.perf_counter() - started
            except ClientError as exc:
                return exc.code, time.perf_counter() - started

        with ThreadPoolExecutor(24) as pool:
            results = list(pool.map(call, range(48)))
        refused = [t for code, t in results if code == "Server.Unavailable"]
        assert {code for code, _ in results} <= {"ok", "Server.Unavailable"}
        assert refused and any(code == "ok" for code, _ in results)
        assert statistics.median(refused) < 1.0, statistics.median(refused)
        predict_once(srv.url)
    finally:
        assert srv.stop() == 0


def test_two_workers_serve_reload_on_hup_and_stop_on_term(tmp_path: Path) -> None:
    import shutil

    store = tmp_path / "store"
    shutil.copytree(Path(bundled_store_path()) / "digits", store / "digits")
    srv = Served("--workers", "2", "--model-store", str(store),
                 "--public-url", "https://soap.example.com/tfsoap/")
    try:
        srv.wait_workers(2)
        for _ in range(10):
            predict_once(srv.url)
        answer = post(srv.url + "PredictService.wsdl", b"", method="GET",
                      headers={"Host": "evil.example:666"})
        assert b'location="https://soap.example.com/tfsoap/"' in answer.body
        assert b"evil.example" not in answer.body
        shutil.copytree(store / "digits", store / "digits2")
        srv.proc.send_signal(signal.SIGHUP)
        from tfsoap_client import ClientError, PredictClient

        images = np.load(IMAGES)
        deadline, in_a_row = time.monotonic() + 60, 0
        while time.monotonic() < deadline and in_a_row < 12:  # new connections: both workers
            try:
                out = PredictClient(srv.url, timeout=30).predict("digits2", {"images": images})
                assert out["classes"].tolist() == list(range(10))
                in_a_row += 1
            except ClientError:
                in_a_row = 0
                time.sleep(0.2)
        assert in_a_row == 12, "not every worker reloaded"
        assert "SIGHUP received" in srv.log_text()
    finally:
        assert srv.stop() == 0
    assert "shutdown signal received" in srv.log_text()


def test_sigterm_lets_requests_in_flight_finish(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from model_store import ModelRepository
    from tests.models import slow_model
    from tfsoap_client import ClientError, PredictClient

    graph, sig = slow_model()
    ModelRepository(tmp_path).write_version("slow", graph, sig, version=1)
    srv = Served("--model-store", str(tmp_path), "--max-concurrent-runs", "1")
    x = np.ones((256, 600), np.float32)
    clients = [PredictClient(srv.url, timeout=120) for _ in range(8)]
    for c in clients:  # connections open and the WSDL read before the signal
        c.predict("slow", {"x": x[:1]})

    def call(c: PredictClient) -> str:
        try:
            c.predict("slow", {"x": x})
            return "ok"
        except ClientError as exc:
            return exc.code

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(call, c) for c in clients]
        time.sleep(0.5)  # every request sent; most of them wait for the one run slot
        srv.proc.send_signal(signal.SIGTERM)
        results = [f.result() for f in futures]
    assert srv.proc.wait(60) == 0
    assert results == ["ok"] * 8, results


def test_a_port_in_use_is_one_error_line(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        run = subprocess.run([sys.executable, "-m", "soap_server.cli", "serve", "--port",
                              str(port)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 2
    assert run.stderr.strip().startswith("tfsoap: error: cannot listen on 127.0.0.1:")
    assert "Traceback" not in run.stderr


def test_fault_for_a_refused_request_is_well_formed(served: Served) -> None:
    answer = post(served.url, b"<x/>" * 10, headers={"Content-Length": "5000000"})
    fault = parse_fault(answer)
    assert fault.code == "Client.RequestTooLarge"


def test_a_crashed_worker_is_restarted_and_logged(tmp_path: Path) -> None:
    srv = Served("--workers", "2")
    try:
        srv.wait_workers(2)
        workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(srv.proc.pid)],
                                                  capture_output=True, text=True).stdout.split()]
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)
        time.sleep(0.5)  # requests the dead worker had accepted are lost with it (a crash)
        for _ in range(5):  # the other worker goes on serving meanwhile
            predict_once(srv.url)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            now = {int(p) for p in subprocess.run(["pgrep", "-P", str(srv.proc.pid)],
                                                  capture_output=True, text=True).stdout.split()}
            if len(now) == 2 and workers[0] not in now:
                break
            time.sleep(0.5)
        assert len(now) == 2 and workers[0] not in now, now
        srv.wait_workers(3)  # the restarted one too
        for _ in range(12):
            predict_once(srv.url)
        assert "Respawning worker" in srv.log_text()
    finally:
        assert srv.stop() == 0


def test_one_metrics_scrape_counts_the_requests_of_every_worker() -> None:
    from prometheus_client.parser import text_string_to_metric_families

    srv = Served("--workers", "2")
    try:
        srv.wait_workers(2)
        for _ in range(20):  # a new connection each: both workers answer some
            predict_once(srv.url)
        for _ in range(4):  # whichever worker answers the scrape sees all 20
            text = post(srv.url + "metrics", b"", method="GET").body.decode()
            ok = sum(s.value for f in text_string_to_metric_families(text)
                     for s in f.samples if s.name == "tfsoap_requests_total"
                     and s.labels.get("operation") == "Predict"
                     and s.labels.get("model") == "digits" and s.labels.get("outcome") == "ok")
            assert ok == 20, text[:2000]
    finally:
        assert srv.stop() == 0


def test_workers_stop_when_the_manager_is_killed() -> None:
    srv = Served("--workers", "2")
    workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(srv.proc.pid)],
                                              capture_output=True, text=True).stdout.split()]
    assert len(workers) == 2
    srv.proc.kill()  # SIGKILL: no chance to stop its workers itself
    srv.proc.wait(10)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in workers):
        time.sleep(0.2)
    assert not any(Path(f"/proc/{p}").exists() for p in workers), \
        ("orphan workers", srv.log_text()[-3000:])
    srv.log.close()


def importing_the_app(pid: int) -> bool:
    """Whether worker ``pid`` has begun importing the application (lxml is mapped): it has
    read what the manager sent it, and has not yet set itself to stop with the manager."""
    try:
        return "lxml" in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def test_workers_still_starting_stop_when_the_manager_is_killed(tmp_path: Path) -> None:
    # killed while its workers start: each one's parent is already another process when it
    # sets itself to stop with the manager, so it must know the manager by its pid
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "soap_server.cli", "serve", "--port",
                             str(free_port()), "--workers", "2"], stdout=log,
                            stderr=subprocess.STDOUT,
                            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    workers: list[int] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (len(workers) == 2 and all(
            importing_the_app(p) for p in workers)):
        workers = [int(p) for p in subprocess.run(["pgrep", "-P", str(proc.pid)],
                                                  capture_output=True, text=True).stdout.split()]
        time.sleep(0.005)
    proc.kill()
    proc.wait(10)
    log.close()
    assert len(workers) == 2, (tmp_path / "serve.log").read_text()[-3000:]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(Path(f"/proc/{p}").exists() for p in workers):
        time.sleep(0.2)
    alive = [p for p in workers if Path(f"/proc/{p}").exists()]
    for p in alive:
        os.kill(p, signal.SIGKILL)
    assert not alive, ("orphan workers", (tmp_path / "serve.log").read_text()[-3000:])
