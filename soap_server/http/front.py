"""The HTTP front: what stands between the network and the WSGI surface (``TfsoapWsgi``).

granian (``server``) parses HTTP in Rust and closes connections whose request line and headers
do not arrive within ``header_timeout_s`` or pass ``max_header_bytes``. It hands each request to
``HttpFront`` through RSGI, granian's own interface (an ASGI front cost 0.5 ms of CPU more per
request: docs/performance.md). Everything after the headers happens here, on the worker's event
loop, so that a slow or hostile client holds no thread:

- the body is read as it arrives, against a deadline (``body_timeout_s``), a size limit
  (``max_body_bytes``, checked on the running total: a chunked body is refused as soon as it
  passes, in linear time) and a budget for all bodies in memory (``max_buffered_body_bytes``);
  a body whose ``Content-Length`` is small is collected in one step by granian, its declared
  length counted against the budget before it is read;
- ``/healthz`` and ``/readyz`` are answered on the loop, never behind a Predict;
- a complete request is admitted only while fewer than ``max_pending_requests`` are
  admitted and unanswered; past that it is refused at once with ``Server.Unavailable`` (HTTP
  500, as SOAP 1.1 faults are, so that Java, .NET and zeep read it as a typed fault);
- a small ``Predict`` on a server that authenticates no one, while other requests are in
  flight in this worker, is answered on the loop (``TfsoapWsgi.predict_on_loop``): it is
  decoded and encoded here, and waits for its batch without a thread; a model run that blocks
  (batching off) goes to the pool. A request alone in the worker takes the pool thread, which
  sends its answer as soon as the model has run. A request on a pool thread crosses four
  threads (loop, pool, batcher, pool), one on the loop two (loop, batcher): at 32 clients that
  cut the server's CPU per request by a quarter;
- any other request goes to a pool of ``threads`` threads (TensorFlow releases the GIL); one
  that waited in the pool past ``request_timeout_s`` is refused with ``Server.Unavailable``
  when its turn comes. The pool thread sends the answer itself (granian's response call is
  thread-safe), so an answer does not wait for the event loop.

The WSGI callable then answers exactly as before: the fast Predict path, Spyne, the WSDL.
TF Serving's REST API (``/v1/...``) is not SOAP: its refusals here are its JSON errors with TF
Serving's statuses (``TfsoapWsgi.refusal``: 413 too large, 400 malformed, 503 busy).
"""

from __future__ import annotations

import asyncio
import io
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from ..outcomes import INTERNAL, MALFORMED_REQUEST, REQUEST_TOO_LARGE, UNAVAILABLE
from ..soap import REQUEST_ID_KEY, fault_envelope
from .wsgi import TfsoapWsgi

log = logging.getLogger(__name__)

Headers = list[tuple[str, str]]
_XML = "text/xml; charset=utf-8"
#: A body declared this small (``Content-Length``) is collected by granian in one step.
_SMALL_BODY = 256 << 10


class _Refused(Exception):
    """A request answered by the front itself (a fault), before the application sees it."""

    def __init__(self, status: int, code: str, message: str, close: bool = True) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.close = status, code, message, close


class HttpFront:
    """An RSGI application serving a ``TfsoapWsgi`` with bounded bodies, time and threads."""

    def __init__(self, wsgi: TfsoapWsgi, *, threads: int, max_body_bytes: int,
                 body_timeout_s: float, max_pending_requests: int,
                 max_buffered_body_bytes: int, request_timeout_s: float,
                 max_connections: int = 0, shutdown_grace_s: float = 60.0,
                 on_startup: Callable[[], None] | None = None,
                 on_shutdown: Callable[[], None] | None = None) -> None:
        self.wsgi = wsgi
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.max_pending = max_pending_requests
        self.max_buffered = max_buffered_body_bytes
        self.request_timeout_s = request_timeout_s
        self.max_connections = max_connections
        self.shutdown_grace_s = shutdown_grace_s
        self._limit_logged = 0.0
        self.on_startup = on_startup
        self.on_shutdown = on_shutdown
        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="tfsoap-req")
        self.pending = 0  # requests handed to the pool and not finished (loop thread only)
        self.buffered = 0  # body bytes held by requests still arriving (loop thread only)
        self.in_flight = 0  # requests being read, run or answered (loop thread only)
        self._running = 0  # requests in pool threads (any thread, under _lock)
        self._lock = threading.Lock()

    # granian's RSGI hooks: at the worker's start and end, in the event loop's thread
    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.on_startup is not None:
            self.on_startup()

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        """granian stopped taking connections: let the requests in flight finish (the loop is
        run again for those still reading their body), then shut down."""
        if loop.is_running():  # embedded (RunningServer drains before it stops granian)
            self.wait_idle(self.shutdown_grace_s)
        else:
            loop.run_until_complete(self.drain(self.shutdown_grace_s))
        if self.on_shutdown is not None:
            self.on_shutdown()
        self.pool.shutdown(wait=False)

    async def __rsgi__(self, scope: Any, proto: Any) -> None:
        if scope.proto != "http":
            return
        self.in_flight += 1
        if self.max_connections and self.in_flight >= self.max_connections:
            self._log_connection_limit()
        try:
            await self._http(scope, proto)
        finally:
            self.in_flight -= 1

    def _log_connection_limit(self) -> None:
        """One WARNING (at most every 10 s) when every connection granian admits carries a
        request: new connections then wait in the listen queue."""
        now = time.monotonic()
        if now - self._limit_logged >= 10:
            self._limit_logged = now
            log.warning("connection limit reached: %d connections busy in this worker "
                        "(max_connections); new connections wait in the listen queue",
                        self.in_flight)

    async def drain(self, timeout: float = 60.0) -> None:
        """Wait (up to ``timeout``) until no request is being read, run or answered."""
        deadline = time.monotonic() + timeout
        while (self.in_flight or self._running) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    def wait_idle(self, timeout: float) -> None:
        """Block (up to ``timeout``) until no request runs in a pool thread."""
        deadline = time.monotonic() + timeout
        while self._running and time.monotonic() < deadline:
            time.sleep(0.02)

    async def _http(self, scope: Any, proto: Any) -> None:
        environ = self._environ(scope)
        rid = self.wsgi.request_id(environ)
        method = environ["REQUEST_METHOD"]
        probe = self.wsgi.probe(method, environ["PATH_INFO"], rid) if method in ("GET", "HEAD") \
            else None
        if probe is not None:
            proto.response_bytes(*probe)
            return
        try:
            body = await self._read_body(environ, proto) if method == "POST" else b""
            if self.pending >= self.max_pending:
                raise _Refused(500, UNAVAILABLE, "the server is busy; retry later", close=False)
        except _Refused as refused:
            self._refuse(proto, environ, rid, refused)
            return
        self.pending += 1
        try:
            # Alone in this worker, a request is answered fastest on a pool thread: its answer
            # goes out from the thread that ran the model, with no hop back to the loop on the
            # way (c=1: 0.90x the requests/s on the loop). With others in flight, the loop
            # answers a small Predict without holding a thread while it waits for its batch.
            if method == "POST" and self.in_flight > 1 and \
                    await self._on_loop(proto, environ, body, rid):
                return
            with self._lock:
                self._running += 1
            await asyncio.get_running_loop().run_in_executor(
                self.pool, self._run_and_answer, proto, environ, body, time.monotonic())
        finally:
            self.pending -= 1

    async def _on_loop(self, proto: Any, environ: dict[str, Any], body: bytes,
                       rid: str) -> bool:
        """Answer a small ``Predict`` on the loop (``TfsoapWsgi.predict_on_loop``): True
        when answered, False when it must run in a pool thread."""
        try:
            answer = await self.wsgi.predict_on_loop(environ, body, rid, self._run_blocking)
        except Exception:  # TfsoapWsgi answers its own errors; this is a last resort
            log.exception("request_id=%s the request failed outside the application", rid)
            answer = 500, [("content-type", _XML), ("x-request-id", rid)], \
                fault_envelope(INTERNAL, "internal server error", rid)
        if answer is None:
            return False
        proto.response_bytes(*answer)
        return True

    async def _run_blocking(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` in a pool thread (a model run that blocks) and await its result."""
        with self._lock:
            self._running += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self.pool, fn)
        finally:
            with self._lock:
                self._running -= 1

    def _refuse(self, proto: Any, environ: dict[str, Any], rid: str, refused: _Refused) -> None:
        log.info("request_id=%s op=- outcome=%s reason=%s", rid, refused.code, refused.message)
        rest = self.wsgi.refusal(environ["REQUEST_METHOD"], environ["PATH_INFO"], refused.code,
                                 refused.message, rid)
        if rest is not None:  # TF Serving's REST API: its JSON error and HTTP status
            status, headers, payload = rest
        else:
            status = refused.status
            payload = fault_envelope(refused.code, refused.message, rid)
            headers = [("content-type", _XML), ("x-request-id", rid)]
        if refused.close:
            headers.append(("connection", "close"))
        proto.response_bytes(status, headers, payload)

    async def _read_body(self, environ: dict[str, Any], proto: Any) -> bytes:
        length_text = environ.get("CONTENT_LENGTH", "")
        declared = -1
        if length_text:
            if not length_text.isdigit() or len(length_text) > 19:
                raise _Refused(400, MALFORMED_REQUEST, "invalid Content-Length")
            declared = int(length_text)
            if declared > self.max_body_bytes:
                await _discard(proto.__aiter__())
                raise _Refused(500, REQUEST_TOO_LARGE, f"{declared} bytes is over the "
                               f"limit of {self.max_body_bytes} bytes")
        if 0 <= declared <= _SMALL_BODY:
            return await self._read_small(proto, declared)
        return await self._read_stream(proto)

    async def _read_small(self, proto: Any, declared: int) -> bytes:
        """A body of known, small length, collected by granian in one step (its declared
        length is held against the budget while it arrives)."""
        if self.buffered + declared > self.max_buffered:
            raise _Refused(500, UNAVAILABLE, "too many request bodies are arriving at once; "
                           "retry later")
        self.buffered += declared
        try:
            async with asyncio.timeout(self.body_timeout_s):
                body: bytes = await proto()
        except TimeoutError:
            raise _Refused(500, MALFORMED_REQUEST, "the request body did not arrive within "
                           f"{self.body_timeout_s:g} s") from None
        except Exception:  # granian's protocol error: the connection closed or broke
            raise _Refused(400, MALFORMED_REQUEST, "the request body ended before it was "
                           "complete (broken framing or a closed connection)") from None
        finally:
            self.buffered -= declared
        return body

    async def _read_stream(self, proto: Any) -> bytes:
        """A chunked or large body, read chunk by chunk against the running limit."""
        parts: list[bytes] = []
        total = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.body_timeout_s
        chunks = proto.__aiter__()
        try:
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    raise _Refused(500, MALFORMED_REQUEST, "the request body did not arrive "
                                   f"within {self.body_timeout_s:g} s")
                try:
                    async with asyncio.timeout(left):  # no task per chunk, unlike wait_for
                        chunk = await chunks.__anext__()
                except TimeoutError:
                    continue
                except StopAsyncIteration:
                    break
                except Exception:  # granian's protocol error: the connection closed or broke
                    raise _Refused(400, MALFORMED_REQUEST, "the request body ended before it "
                                   "was complete (broken framing or a closed connection)") \
                        from None
                if not chunk:
                    continue
                total += len(chunk)
                if total > self.max_body_bytes:
                    await _discard(chunks)
                    raise _Refused(500, REQUEST_TOO_LARGE, "the request body is over the limit "
                                   f"of {self.max_body_bytes} bytes")
                if self.buffered + len(chunk) > self.max_buffered:
                    raise _Refused(500, UNAVAILABLE, "too many request bodies are arriving at "
                                   "once; retry later")
                self.buffered += len(chunk)
                parts.append(bytes(chunk))
        finally:
            self.buffered -= sum(len(p) for p in parts)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def _run_and_answer(self, proto: Any, environ: dict[str, Any], body: bytes,
                        queued: float) -> None:
        """In a pool thread: run the WSGI callable and send its answer."""
        try:
            try:
                status, headers, payload = self._run_wsgi(environ, body, queued)
            except Exception:  # TfsoapWsgi answers its own errors; this is a last resort
                rid = environ[REQUEST_ID_KEY]
                log.exception("request_id=%s the request failed outside the application", rid)
                status, headers = 500, [("content-type", _XML), ("x-request-id", rid)]
                payload = fault_envelope(INTERNAL, "internal server error", rid)
            proto.response_bytes(status, headers, payload)
        finally:
            with self._lock:
                self._running -= 1

    def _run_wsgi(self, environ: dict[str, Any], body: bytes,
                  queued: float) -> tuple[int, Headers, bytes]:
        """Run the WSGI callable; a request that waited too long is refused."""
        rid = environ[REQUEST_ID_KEY]
        if time.monotonic() - queued > self.request_timeout_s:
            busy = "the server is busy; retry later"
            rest = self.wsgi.refusal(environ["REQUEST_METHOD"], environ["PATH_INFO"],
                                     UNAVAILABLE, busy, rid)
            if rest is not None:
                return rest
            return 500, [("content-type", _XML), ("x-request-id", rid)], \
                fault_envelope(UNAVAILABLE, busy, rid)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        captured: dict[str, Any] = {}

        def start_response(status: str, headers: list[tuple[str, str]],
                           exc_info: Any = None) -> Callable[[bytes], None]:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        chunks = self.wsgi(environ, start_response)
        payload = chunks[0] if isinstance(chunks, list) and len(chunks) == 1 \
            else b"".join(chunks)
        status = int(str(captured.get("status", "500")).split(" ", 1)[0])
        headers = [(k, v) for k, v in captured.get("headers", [])
                   if k.lower() != "content-length"]
        return status, headers, payload

    def _environ(self, scope: Any) -> dict[str, Any]:
        environ: dict[str, Any] = {
            "REQUEST_METHOD": scope.method.upper(),
            "SCRIPT_NAME": "",
            "PATH_INFO": scope.path or "/",
            "QUERY_STRING": scope.query_string,
            "SERVER_PROTOCOL": "HTTP/" + scope.http_version,
            "wsgi.url_scheme": scope.scheme,
            "wsgi.errors": io.StringIO(),
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        environ["SERVER_NAME"], environ["SERVER_PORT"] = _host_port(scope.server)
        environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = _host_port(scope.client)
        for name, value in scope.headers.items():
            if name == "content-type":
                environ["CONTENT_TYPE"] = value
            elif name == "content-length":
                environ["CONTENT_LENGTH"] = value.strip()
            else:
                key = "HTTP_" + name.upper().replace("-", "_")
                environ[key] = environ[key] + "," + value if key in environ else value
        return environ


def _host_port(address: str) -> tuple[str, str]:
    """``("::1", "8080")`` from RSGI's ``"[::1]:8080"`` (or ``"127.0.0.1:8080"``)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]") or address, port


async def _discard(chunks: Any, max_bytes: int = 64 << 20, max_s: float = 2.0) -> None:
    """Read and drop what a refused client is still sending (up to ``max_bytes`` or ``max_s``),
    so that it reads our fault rather than a broken pipe: Java and .NET clients send a whole
    body before they read the answer. ``chunks``: the body's iterator (``proto.__aiter__()``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_s
    left = max_bytes
    while left > 0:
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        try:
            async with asyncio.timeout(remaining):
                chunk = await chunks.__anext__()
        except (TimeoutError, StopAsyncIteration):
            return
        except Exception:  # the connection closed
            return
        left -= len(chunk)
