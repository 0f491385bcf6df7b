"""A bounded closed loop of Predict clients on loopback, counting failures and who answered."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from lxml import etree

from tests.soap_server.raw import TNS, predict_xml


@dataclass
class LoadResult:
    ok: int = 0
    failed: int = 0
    faults: list[str] = field(default_factory=list)
    #: (model, version, first output value) of every answer, in order per thread, merged
    answers: Counter[tuple[str, int, float]] = field(default_factory=Counter)
    last: dict[int, tuple[str, int, float]] = field(default_factory=dict)


class Load:
    """``threads`` clients sending Predict to ``models`` (round robin by thread) until
    ``stop()``, at most ``max_seconds`` and ``max_requests`` each."""

    def __init__(self, url: str, models: tuple[str, ...] = ("affine",), threads: int = 8,
                 max_seconds: float = 40.0, max_requests: int = 20000) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        assert self.host == "127.0.0.1"
        self.models = models
        self.max_seconds, self.max_requests = max_seconds, max_requests
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._loop, args=(i,), daemon=True)
                         for i in range(threads)]

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> LoadResult:
        self._stop.set()
        for t in self._threads:
            t.join(60)
        return self.result

    def _loop(self, i: int) -> None:
        model = self.models[i % len(self.models)]
        body = predict_xml(model)
        ends = time.monotonic() + self.max_seconds
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
        n = 0
        while not self._stop.is_set() and time.monotonic() < ends and n < self.max_requests:
            n += 1
            try:
                conn.request("POST", "/", body=body,
                             headers={"Content-Type": "text/xml; charset=utf-8",
                                      "SOAPAction": '""'})
                resp = conn.getresponse()
                data = resp.read()
                answer = _answer(data) if resp.status == 200 else None
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
                answer, data = None, repr(exc).encode()
            with self._lock:
                if answer is None:
                    self.result.failed += 1
                    if len(self.result.faults) < 5:
                        self.result.faults.append(data[:400].decode("utf-8", "replace"))
                else:
                    self.result.ok += 1
                    self.result.answers[answer] += 1
                    self.result.last[i] = answer
        conn.close()

    def wait_for(self, predicate: object, timeout: float = 20.0) -> bool:
        """Wait until ``predicate(answer)`` held for the last answer of every thread."""
        assert callable(predicate)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                last = list(self.result.last.values())
            if len(last) == len(self._threads) and all(predicate(a) for a in last):
                return True
            time.sleep(0.05)
        return False


def _answer(body: bytes) -> tuple[str, int, float]:
    root = etree.fromstring(body)
    name = root.findtext(f".//{{{TNS}}}model_name") or ""
    version = int(root.findtext(f".//{{{TNS}}}version") or 0)
    first = root.find(f".//{{{TNS}}}float_val/*")
    value = float(first.text) if first is not None and first.text else float("nan")
    return name, version, value
