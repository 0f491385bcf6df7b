"""A bounded closed-loop load for the failover test: N threads, each with one keep-alive
``http.client`` connection, sending the same ``Predict`` and waiting for each answer, counting
what every request got (an answer with the right classes, a fault, an HTTP error, a broken
connection) by time window.

Like browsers, Java's ``HttpURLConnection`` and .NET's ``HttpClient``, a client here sends a
request once more, on a new connection, when a *reused* keep-alive connection fails before any
byte of the answer arrives: the server (nginx on reload) may close an idle connection just as
the client starts sending on it (RFC 9112, section 9.3.1). Those resends are counted apart
(``stale_resends``); a failure on a new connection, or a second one, is a failure.
"""

from __future__ import annotations

import base64
import http.client
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import numpy as np

_TNS = "urn:tfsoap:predict:v1"
_FAULTCODE = re.compile(rb"<faultcode>(?:[^:<]*:)?([^<]+)</faultcode>")


def predict_body(model: str, alias: str, arr: np.ndarray) -> bytes:
    """A ``Predict`` envelope with one float32 ``tensor_content`` input."""
    arr = np.ascontiguousarray(arr, dtype="<f4")
    shape = "".join(f"<long>{d}</long>" for d in arr.shape)
    content = base64.b64encode(arr.tobytes()).decode("ascii")
    return (
        '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv='
        f'"http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><Predict xmlns="{_TNS}">'
        f"<model_name>{model}</model_name><inputs><Tensor><name>{alias}</name>"
        f"<dtype>DT_FLOAT</dtype><shape>{shape}</shape><tensor_content>{content}"
        "</tensor_content></Tensor></inputs></Predict></soapenv:Body></soapenv:Envelope>"
    ).encode()


@dataclass
class LoadReport:
    """What the clients saw: outcome counts overall and per phase (see ``ClosedLoopLoad``)."""

    outcomes: Counter[str] = field(default_factory=Counter)
    by_phase: dict[str, Counter[str]] = field(default_factory=dict)
    request_ids: set[str] = field(default_factory=set)
    stale_resends: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.outcomes.values())

    @property
    def failed(self) -> int:
        return self.total - self.outcomes["ok"]

    def summary(self) -> str:
        phases = "; ".join(f"{name}: {dict(c)}" for name, c in self.by_phase.items())
        return (f"{self.total} requests in {self.seconds:.1f} s, {self.failed} failed "
                f"{dict(self.outcomes)} [{phases}]; resent after a stale keep-alive "
                f"connection: {dict(self.stale_resends)}")


class ClosedLoopLoad:
    """``threads`` clients against ``port`` until ``stop``, each pausing ``think_s`` between
    an answer and its next request (which bounds the load); ``phase`` labels what follows."""

    def __init__(self, port: int, body: bytes, expect: bytes, threads: int = 8,
                 think_s: float = 0.0, timeout: float = 30.0, phase: str = "start") -> None:
        self.port, self.body, self.expect = port, body, expect
        self.think_s, self.timeout = think_s, timeout
        self._threads = [threading.Thread(target=self._client, args=(i,), daemon=True)
                         for i in range(threads)]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._phase = phase
        self.report = LoadReport(by_phase={phase: Counter()})
        self._began = 0.0

    def phase(self, name: str) -> None:
        with self._lock:
            self._phase = name
            self.report.by_phase.setdefault(name, Counter())

    def start(self) -> ClosedLoopLoad:
        self._began = time.monotonic()
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> LoadReport:
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        self.report.seconds = time.monotonic() - self._began
        return self.report

    def _record(self, outcome: str, rid: str | None) -> None:
        with self._lock:
            self.report.outcomes[outcome] += 1
            self.report.by_phase[self._phase][outcome] += 1
            if rid:
                self.report.request_ids.add(rid)

    def _stale_resend(self) -> None:
        with self._lock:
            self.report.stale_resends[self._phase] += 1

    def _client(self, index: int) -> None:
        conn: http.client.HTTPConnection | None = None
        used = 0  # requests answered on ``conn``
        n = 0
        while not self._stop.is_set():
            n += 1
            rid = f"load-{index}-{n}"
            headers = {"Content-Type": "text/xml; charset=utf-8",
                       "SOAPAction": '"urn:tfsoap:predict:v1/Predict"', "X-Request-ID": rid}
            for attempt in (1, 2):
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                      timeout=self.timeout)
                    used = 0
                try:
                    conn.request("POST", "/", self.body, headers)
                    resp = conn.getresponse()
                    data = resp.read()
                    echoed = resp.getheader("X-Request-ID")
                    break
                except (OSError, http.client.HTTPException) as exc:
                    conn.close()
                    conn = None
                    stale = used > 0 and attempt == 1 and (
                        isinstance(exc, (BrokenPipeError, ConnectionResetError,
                                         http.client.RemoteDisconnected)))
                    if stale:
                        self._stale_resend()
                        continue
                    self._record(f"connection:{type(exc).__name__}", None)
                    break
            if conn is None:
                continue
            used += 1
            if resp.status == 200 and self.expect in data:
                self._record("ok" if echoed == rid else "ok-but-request-id-lost", echoed)
            elif (fault := _FAULTCODE.search(data)) is not None:
                self._record(f"fault:{fault.group(1).decode()}", echoed)
            else:
                self._record(f"http:{resp.status}", echoed)
            if resp.will_close:
                conn.close()
                conn = None
            if self.think_s:
                self._stop.wait(self.think_s)
        if conn is not None:
            conn.close()
