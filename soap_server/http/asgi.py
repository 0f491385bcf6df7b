"""The ASGI front: what stands between the network and the WSGI surface (``TfsoapWsgi``).

granian (``server``) parses HTTP in Rust and closes connections whose request line and headers
do not arrive within ``header_timeout_s`` or pass ``max_header_bytes``. Everything after the
headers happens here, on the worker's event loop, so that a slow or hostile client holds no
thread:

- the body is read as it arrives, against a deadline (``body_timeout_s``), a size limit
  (``max_body_bytes``, checked on the running total: a chunked body is refused as soon as it
  passes, in linear time) and a budget for all bodies in memory (``max_buffered_body_bytes``);
- ``/healthz`` and ``/readyz`` are answered on the loop, never behind a Predict;
- a complete request goes to a pool of ``threads`` threads (TensorFlow releases the GIL) only
  while fewer than ``max_pending_requests`` wait for or run in it; past that it is refused at
  once with ``Server.Unavailable`` (HTTP 500, as SOAP 1.1 faults are, so that Java, .NET and
  zeep read it as a typed fault), and a request that waited in the pool past
  ``request_timeout_s`` is refused the same way when its turn comes.

The WSGI callable then answers exactly as before: the fast Predict path, Spyne, the WSDL.
TF Serving's REST API (``/v1/...``) is not SOAP: its refusals here are its JSON errors with TF
Serving's statuses (``TfsoapWsgi.refusal``: 413 too large, 400 malformed, 503 busy).
"""

from __future__ import annotations

import asyncio
import io
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable

from ..outcomes import MALFORMED_REQUEST, REQUEST_TOO_LARGE, UNAVAILABLE
from ..soap import REQUEST_ID_KEY, fault_envelope
from .wsgi import TfsoapWsgi

log = logging.getLogger(__name__)

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
_XML = b"text/xml; charset=utf-8"


class _Refused(Exception):
    """A request answered by the front itself (a fault), before the application sees it."""

    def __init__(self, status: int, code: str, message: str, close: bool = True) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.close = status, code, message, close


class AsgiFront:
    """An ASGI application serving a ``TfsoapWsgi`` with bounded bodies, time and threads."""

    def __init__(self, wsgi: TfsoapWsgi, *, threads: int, max_body_bytes: int,
                 body_timeout_s: float, max_pending_requests: int,
                 max_buffered_body_bytes: int, request_timeout_s: float,
                 max_connections: int = 0,
                 on_startup: Callable[[], None] | None = None,
                 on_shutdown: Callable[[], None] | None = None) -> None:
        self.wsgi = wsgi
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.max_pending = max_pending_requests
        self.max_buffered = max_buffered_body_bytes
        self.request_timeout_s = request_timeout_s
        self.max_connections = max_connections
        self._limit_logged = 0.0
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tfsoap-req")
        self.pending = 0  # requests handed to the pool and not answered (loop thread only)
        self.buffered = 0  # body bytes held by requests still arriving (loop thread only)
        self.in_flight = 0  # requests being read, run or answered (loop thread only)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            self.in_flight += 1
            if self.max_connections and self.in_flight >= self.max_connections:
                self._log_connection_limit()
            try:
                await self._http(scope, receive, send)
            finally:
                self.in_flight -= 1
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    def _log_connection_limit(self) -> None:
        """One WARNING (at most every 10 s) when every connection granian admits carries a
        request: new connections then wait in the listen queue."""
        now = time.monotonic()
        if now - self._limit_logged >= 10:
            self._limit_logged = now
            log.warning("connection limit reached: %d connections busy in this worker "
                        "(max_connections); new connections wait in the listen queue",
                        self.in_flight)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                if self.on_startup is not None:
                    await asyncio.get_running_loop().run_in_executor(None, self.on_startup)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.drain()
                if self.on_shutdown is not None:
                    await asyncio.get_running_loop().run_in_executor(None, self.on_shutdown)
                self.pool.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def drain(self, timeout: float = 60.0) -> None:
        """Wait (up to ``timeout``) until no request is being read, run or answered."""
        deadline = time.monotonic() + timeout
        while self.in_flight and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    async def _http(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        environ = self._environ(scope)
        rid = self.wsgi.request_id(environ)
        method = environ["REQUEST_METHOD"]
        probe = self.wsgi.probe(method, environ["PATH_INFO"], rid) if method in ("GET", "HEAD") \
            else None
        try:
            if probe is not None:
                status, headers, body = probe
                await _respond(send, status, headers, body)
                return
            body = await self._read_body(environ, receive, rid) if method == "POST" else b""
            if self.pending >= self.max_pending:
                raise _Refused(500, UNAVAILABLE, "the server is busy; retry later", close=False)
            self.pending += 1
            try:
                queued = time.monotonic()
                status, headers, chunks = await asyncio.get_running_loop().run_in_executor(
                    self.pool, self._run_wsgi, environ, body, queued)
            finally:
                self.pending -= 1
            del body
            await _respond(send, status, headers, b"".join(chunks))
        except _Refused as refused:
            log.info("request_id=%s op=- outcome=%s reason=%s", rid, refused.code,
                     refused.message)
            rest = self.wsgi.refusal(method, environ["PATH_INFO"], refused.code,
                                     refused.message, rid)
            if rest is not None:  # TF Serving's REST API: its JSON error and HTTP status
                status, headers, payload = rest
            else:
                status, payload = refused.status, fault_envelope(refused.code, refused.message,
                                                                 rid)
                headers = [(b"content-type", _XML), (b"x-request-id", rid.encode())]
            if refused.close:
                headers.append((b"connection", b"close"))
            await _respond(send, status, headers, payload)
        except OSError as exc:  # the client went away while we answered
            log.debug("request_id=%s client disconnected: %s", rid, exc)

    async def _read_body(self, environ: dict[str, Any], receive: Receive, rid: str) -> bytes:
        length_text = environ.get("CONTENT_LENGTH", "")
        if length_text:
            if not length_text.isdigit() or len(length_text) > 19:
                raise _Refused(400, MALFORMED_REQUEST, "invalid Content-Length")
            if int(length_text) > self.max_body_bytes:
                await _discard(receive)
                raise _Refused(500, REQUEST_TOO_LARGE, f"{int(length_text)} bytes is over the "
                               f"limit of {self.max_body_bytes} bytes")
        parts: list[bytes] = []
        total = 0
        deadline = asyncio.get_running_loop().time() + self.body_timeout_s
        try:
            while True:
                left = deadline - asyncio.get_running_loop().time()
                if left <= 0:
                    raise _Refused(500, MALFORMED_REQUEST, "the request body did not arrive "
                                   f"within {self.body_timeout_s:g} s")
                try:
                    async with asyncio.timeout(left):  # no task per message, unlike wait_for
                        message = await receive()
                except TimeoutError:
                    continue
                if message["type"] == "http.disconnect":
                    raise _Refused(400, MALFORMED_REQUEST, "the request body ended before it "
                                   "was complete (broken framing or a closed connection)")
                chunk = message.get("body", b"")
                if chunk:
                    total += len(chunk)
                    if total > self.max_body_bytes:
                        await _discard(receive)
                        raise _Refused(500, REQUEST_TOO_LARGE, f"the request body is over the "
                                       f"limit of {self.max_body_bytes} bytes")
                    if self.buffered + len(chunk) > self.max_buffered:
                        raise _Refused(500, UNAVAILABLE, "too many request bodies are arriving "
                                       "at once; retry later")
                    self.buffered += len(chunk)
                    parts.append(chunk)
                if not message.get("more_body", False):
                    break
        finally:
            self.buffered -= sum(len(p) for p in parts)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _run_wsgi(self, environ: dict[str, Any], body: bytes,
                  queued: float) -> tuple[int, list[tuple[bytes, bytes]], list[bytes]]:
        """Run the WSGI callable in a pool thread; a request that waited too long is refused."""
        rid = environ[REQUEST_ID_KEY]
        if time.monotonic() - queued > self.request_timeout_s:
            busy = "the server is busy; retry later"
            rest = self.wsgi.refusal(environ["REQUEST_METHOD"], environ["PATH_INFO"],
                                     UNAVAILABLE, busy, rid)
            if rest is not None:
                return rest[0], rest[1], [rest[2]]
            payload = fault_envelope(UNAVAILABLE, busy, rid)
            return 500, [(b"content-type", _XML), (b"x-request-id", rid.encode())], [payload]
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        chunks = list(self.wsgi(environ, start_response))
        status = int(str(captured.get("status", "500")).split(" ", 1)[0])
        headers = [(k.lower().encode("latin-1"), v.encode("latin-1"))
                   for k, v in captured.get("headers", [])
                   if k.lower() != "content-length"]
        return status, headers, chunks

    def _environ(self, scope: dict[str, Any]) -> dict[str, Any]:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": scope["method"].upper(),
            "SCRIPT_NAME": "",
            "PATH_INFO": scope.get("path", "/") or "/",
            "QUERY_STRING": scope.get("query_string", b"").decode("latin-1"),
            "SERVER_PROTOCOL": "HTTP/" + scope.get("http_version", "1.1"),
            "wsgi.url_scheme": scope.get("scheme", "http"),
            "wsgi.errors": io.StringIO(),
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        server = scope.get("server") or ("127.0.0.1", 0)
        environ["SERVER_NAME"], environ["SERVER_PORT"] = str(server[0]), str(server[1])
        client = scope.get("client")
        if client:
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = str(client[0]), str(client[1])
        for raw_name, raw_value in scope.get("headers", []):
            name = raw_name.decode("latin-1").upper().replace("-", "_")
            value = raw_value.decode("latin-1")
            if name == "CONTENT_TYPE":
                environ["CONTENT_TYPE"] = value
            elif name == "CONTENT_LENGTH":
                environ["CONTENT_LENGTH"] = value.strip()
            else:
                key = "HTTP_" + name
                environ[key] = environ[key] + "," + value if key in environ else value
        return environ


async def _discard(receive: Receive, max_bytes: int = 64 << 20, max_s: float = 2.0) -> None:
    """Read and drop what a refused client is still sending (up to ``max_bytes`` or ``max_s``),
    so that it reads our fault rather than a broken pipe: Java and .NET clients send a whole
    body before they read the answer."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_s
    left = max_bytes
    while left > 0:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        try:
            async with asyncio.timeout(remaining):
                message = await receive()
        except TimeoutError:
            return
        if message["type"] != "http.request" or not message.get("more_body", False):
            return
        left -= len(message.get("body", b""))


async def _respond(send: Send, status: int, headers: list[tuple[bytes, bytes]],
                   body: bytes) -> None:
    headers = [h for h in headers if h[0] != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
