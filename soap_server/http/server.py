"""The HTTP server: cheroot (CherryPy's WSGI server), tuned for many keep-alive SOAP clients.

cheroot is a production-grade HTTP/1.1 server with keep-alive, a bounded worker thread pool,
graceful shutdown and built-in TLS, pure Python and on PyPI. A thread pool fits this service:
``Session.run`` releases the GIL, so threads waiting on TensorFlow cost nothing, and the
admission gate in front of each model bounds the work. The tuning below is measured by
``benchmarks/serve_bench.py`` (see docs/performance.md).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import sys
import threading
from typing import Any, Callable, Generic, Protocol, TypeVar


class ModelLoading(Protocol):
    """What the HTTP server needs of the model registry: start, wait for, and end loading."""

    def start_loading(self) -> Any: ...

    def wait_ready(self, timeout: float) -> bool: ...

    def close(self) -> None: ...


class ServedApp(Protocol):
    """What the HTTP server serves (``soap_server.app.ServerApp`` is one)."""

    @property
    def settings(self) -> Any: ...

    @property
    def wsgi(self) -> Callable[..., Any]: ...

    @property
    def registry(self) -> ModelLoading: ...


App = TypeVar("App", bound=ServedApp)

_M_ARENA_MAX = -8  # glibc's mallopt() parameter number
#: How long a worker thread waits on a keep-alive connection for its next request.
LINGER_S = 0.002
_COALESCE_BYTES = 64 * 1024
#: listen() backlog: cheroot's default of 5 drops connection attempts under a burst of clients.
_LISTEN_BACKLOG = 128


def limit_malloc_arenas() -> None:
    """Cap glibc's malloc arenas at one per core (its default is eight per core).

    A thread that allocates while another holds the lock of its arena gets an arena of its own,
    and memory freed in an arena stays there, so with dozens of HTTP threads the resident set
    grew with the number of concurrent requests: in ``benchmarks/serve_bench.py`` the peak at 32
    concurrent clients was 1.18x that at one, and 1.08x with the cap, at the same throughput.
    A ``MALLOC_ARENA_MAX`` set in the environment is left to glibc; elsewhere this does nothing.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_ARENA_MAX, max(2, os.cpu_count() or 2))
    except (OSError, AttributeError):  # not glibc
        pass


class _Capture:
    """A write-only file keeping what is written."""

    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)


def _keep_reading_connection(cheroot_server: Any) -> type:
    """cheroot's ``HTTPConnection``, reading the next request on the same thread when it comes
    within ``LINGER_S`` (as a client waiting for each answer sends its next request).

    cheroot hands a keep-alive connection back to its selector thread after every response,
    and the selector hands the next request to a worker thread again: several thread switches
    per request, which on a small machine cost more than our whole request pipeline. The worker
    lingers only while no other connection waits for a worker.
    """

    class OneSendRequest(cheroot_server.HTTPRequest):  # type: ignore[misc,name-defined]
        """Sends the status line and headers with the first part of the body: one send()
        per small response instead of two (cheroot writes each straight to the socket)."""

        _head = b""

        def send_headers(self) -> None:
            wfile, capture = self.conn.wfile, _Capture()
            self.conn.wfile = capture
            try:
                super().send_headers()
            finally:
                self.conn.wfile = wfile
            self._head = capture.data

        def write(self, chunk: bytes) -> None:
            head, self._head = self._head, b""
            if head and not self.chunked_write and len(chunk) <= _COALESCE_BYTES:
                self.conn.wfile.write(head + chunk)
                return
            if head:
                self.conn.wfile.write(head)
            super().write(chunk)

        def respond(self) -> None:
            super().respond()
            if self._head:  # a response without a body
                head, self._head = self._head, b""
                self.conn.wfile.write(head)

    class KeepReadingConnection(cheroot_server.HTTPConnection):  # type: ignore[misc,name-defined]
        RequestHandlerClass = OneSendRequest

        def communicate(self) -> bool:
            while True:
                if not super().communicate():
                    return False
                if self.rfile.has_data():
                    continue
                if self.server.requests.qsize:
                    return True
                try:
                    ready, _, _ = select.select([self.socket], [], [], LINGER_S)
                except (OSError, ValueError):  # closed meanwhile
                    return True
                if not ready:
                    return True

    return KeepReadingConnection


class RunningServer(Generic[App]):
    """A cheroot server serving a ``ServedApp``; ``start()`` returns once it listens."""

    def __init__(self, server_app: App) -> None:
        from cheroot import server as cheroot_server
        from cheroot import wsgi as cheroot_wsgi

        s = server_app.settings
        self.app = server_app
        self.server = cheroot_wsgi.Server((s.host, s.port), server_app.wsgi, numthreads=s.threads,
                                          server_name="tfsoap", timeout=60,
                                          request_queue_size=_LISTEN_BACKLOG)
        # cheroot closes a connection after its response once 10 idle keep-alive connections
        # wait (its default), so more than 10 steady clients keep reconnecting. Idle connections
        # wait in cheroot's selector, not in a worker thread.
        self.server.keep_alive_conn_limit = 4 * s.threads
        self.server.ConnectionClass = _keep_reading_connection(cheroot_server)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server.bind_addr[1])

    @property
    def url(self) -> str:
        host = self.server.bind_addr[0]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    def start(self, load_models: bool = True) -> RunningServer[App]:
        """Listen and serve in a background thread; models load in another."""
        limit_malloc_arenas()
        self.server.prepare()
        if load_models:
            self.app.registry.start_loading()
        self._thread = threading.Thread(target=self.server.serve, name="tfsoap-http",
                                        daemon=True)
        self._thread.start()
        return self

    def wait_ready(self, timeout: float = 120.0) -> bool:
        """Block until every model is loaded (or ``timeout`` passes)."""
        return self.app.registry.wait_ready(timeout)

    def stop(self) -> None:
        self.server.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self.app.registry.close()

    def __enter__(self) -> RunningServer[App]:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()
