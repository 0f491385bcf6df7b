"""Network props for the interop tests: a port nobody listens on, a server that accepts and
never answers (timeouts), and a forwarding proxy that records what a client really sends (its
``SOAPAction`` headers)."""

from __future__ import annotations

import http.client
import socket
import threading
import urllib.parse
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .toolchains import COMMITTED_WSDL


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class SilentServer:
    """Accepts connections and never answers: a hung server, for timeout tests."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self._held.append(conn)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(5)
        for conn in self._held:
            conn.close()
        self._sock.close()


@dataclass(frozen=True)
class Recorded:
    """One request seen by the recording proxy."""

    method: str
    soap_action: str | None
    body: bytes


class RecordingProxy:
    """An HTTP forwarder to ``upstream`` that records every request (method, SOAPAction,
    body), so a test can see what a generated client really sends."""

    def __init__(self, upstream: str) -> None:
        target = urllib.parse.urlsplit(upstream)
        self.records: list[Recorded] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # answers "Expect: 100-continue" (.NET sends it)

            def _body(self) -> bytes:
                if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                    chunks: list[bytes] = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                                pass
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _forward(self) -> None:
                body = self._body() if self.command == "POST" else b""
                proxy.records.append(Recorded(self.command, self.headers.get("SOAPAction"),
                                              body))
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() in ("content-type", "soapaction")}
                conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port,
                                                  timeout=60)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=headers)
                    answer = conn.getresponse()
                    data = answer.read()
                    self.send_response(answer.status)
                    self.send_header("Content-Type", answer.getheader("Content-Type") or "")
                finally:
                    conn.close()
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(data)
                self.close_connection = True

            do_GET = do_POST = _forward

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"

    def __enter__(self) -> RecordingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    def soap_actions(self) -> dict[str, set[str | None]]:
        """The SOAPAction headers sent, by the local name of the body's first element."""
        from lxml import etree

        seen: dict[str, set[str | None]] = {}
        for r in self.records:
            if r.method != "POST":
                continue
            body = etree.fromstring(r.body).find("{http://schemas.xmlsoap.org/soap/envelope/}Body")
            op = etree.QName(body[0]).localname if body is not None and len(body) else "?"
            seen.setdefault(op, set()).add(r.soap_action)
        return seen


def expected_soap_actions() -> dict[str, str]:
    """The quoted SOAPAction of each operation, read from the committed WSDL's binding."""
    from lxml import etree

    root = etree.parse(str(COMMITTED_WSDL)).getroot()
    ns = {"w": "http://schemas.xmlsoap.org/wsdl/", "s": "http://schemas.xmlsoap.org/wsdl/soap/"}
    return {op.get("name"): '"%s"' % op.find("s:operation", ns).get("soapAction")
            for op in root.findall("w:binding/w:operation", ns)}
