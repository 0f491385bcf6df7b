"""The HTTP server: granian (HTTP in Rust on hyper/tokio) running the HTTP front (RSGI).

Chosen by measurement over cheroot and uvicorn (docs/performance.md, "The HTTP front"):
granian reads request lines and headers on its Rust event loop with a deadline
(``header_timeout_s``) and a size limit (``max_header_bytes``: 431/414 answers), so silent,
slowloris and slow-upload clients hold no Python thread; it runs worker processes on one port
with restart of crashed workers; and it does TLS in rustls (``tls_options``). HTTP/1.1 only
(``http=1``): in its auto mode granian waits for a client's first bytes without a deadline.

Two ways to run it:

- ``serve_forever(settings, target)`` (``tfsoap serve``): granian's process manager with
  ``workers`` processes; each builds its own app from ``target`` (a factory, see
  ``soap_server.app.worker_app``), so each has its own registry and sessions. SIGTERM/SIGINT:
  granian stops accepting, requests in flight finish (up to ``shutdown_grace_s``), then the
  workers close their models. SIGHUP: every worker reloads its store in place (no restart),
  through a reload file that each worker watches.
- ``RunningServer`` (tests, embedding): one worker on an event loop in a thread of this process.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, Generic, Protocol, TypeVar

from .front import HttpFront

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # glibc's mallopt() parameter number
_PR_SET_PDEATHSIG = 1  # Linux prctl() option
#: The environment variable that names the file whose change tells every worker to reload.
RELOAD_FILE_ENV = "TFSOAP_RELOAD_FILE"
#: The pid of the process managing the workers, which they stop with.
MANAGER_PID_ENV = "TFSOAP_MANAGER_PID"


def limit_malloc_arenas() -> None:
    """Cap glibc's malloc arenas at one per core (its default is eight per core).

    A thread that allocates while another holds the lock of its arena gets an arena of its own,
    and memory freed in an arena stays there, so with dozens of request threads the resident set
    grew with the number of concurrent requests (``benchmarks/serve_bench.py``: 1.18x at 32
    clients, 1.08x with the cap). A ``MALLOC_ARENA_MAX`` set in the environment is left to glibc.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(_M_ARENA_MAX, max(2, os.cpu_count() or 2))
    except (OSError, AttributeError):  # not glibc
        pass


class ModelLoading(Protocol):
    """What the HTTP server needs of the model registry: start, wait for, and end loading."""

    def start_loading(self) -> Any: ...

    def wait_ready(self, timeout: float) -> bool: ...

    def reload(self) -> Any: ...

    def close(self) -> None: ...


class ServedApp(Protocol):
    """What the HTTP server serves (``soap_server.app.ServerApp`` is one)."""

    @property
    def settings(self) -> Any: ...

    @property
    def wsgi(self) -> Any: ...

    @property
    def registry(self) -> ModelLoading: ...

    def start_side_servers(self) -> None:
        """Start what listens beside HTTP (TF Serving's gRPC API), if configured."""

    def stop_side_servers(self, grace: float = 5.0) -> None:
        """Stop it, letting calls in flight finish for up to ``grace`` seconds."""


App = TypeVar("App", bound=ServedApp)


def http_front(app: ServedApp, on_startup: Callable[[], None] | None = None,
               on_shutdown: Callable[[], None] | None = None) -> HttpFront:
    """The HTTP front for ``app`` with the limits of its settings."""
    s = app.settings
    return HttpFront(app.wsgi, threads=s.threads, max_body_bytes=s.max_body_bytes,
                     body_timeout_s=s.body_timeout_s,
                     max_pending_requests=s.max_pending_requests,
                     max_buffered_body_bytes=s.max_buffered_body_bytes,
                     request_timeout_s=s.request_timeout_s,
                     max_connections=s.max_connections,
                     shutdown_grace_s=s.shutdown_grace_s,
                     on_startup=on_startup, on_shutdown=on_shutdown)


def granian_options(settings: Any) -> dict[str, Any]:
    """granian's options from the settings (the same for both ways of running it)."""
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings

    return dict(
        address=settings.host, interface=Interfaces.RSGI, http=HTTPModes.http1,
        websockets=False, backlog=1024, backpressure=settings.max_connections,
        http1_settings=HTTP1Settings(header_read_timeout=int(settings.header_timeout_s * 1000),
                                     keep_alive=True,
                                     max_buffer_size=settings.max_header_bytes),
        log_access=False, **tls_options(settings))


def tls_options(settings: Any) -> dict[str, Any]:
    """granian's TLS options from ``tls_*`` (none without ``tls_cert``).

    Measured on granian 2.8.9 (tests/soap_server/security/test_tls.py): ``ssl_ca`` alone makes
    a client certificate optional (one that is sent must chain to the CA), ``ssl_ca`` with
    ``ssl_client_verify`` makes it required; granian's own minimum is TLS 1.3, so 1.2 is asked
    for explicitly. rustls offers only AEAD cipher suites with forward secrecy, so there is no
    cipher list to set."""
    if not settings.tls_cert:
        return {}
    from granian.constants import SSLProtocols

    out: dict[str, Any] = dict(
        ssl_cert=Path(settings.tls_cert), ssl_key=Path(settings.tls_key),
        ssl_protocol_min=SSLProtocols.tls13 if settings.tls_min_version == "1.3"
        else SSLProtocols.tls12)
    if settings.tls_client_auth != "none":
        out.update(ssl_ca=Path(settings.tls_client_ca),
                   ssl_client_verify=settings.tls_client_auth == "required")
    return out


def scheme_of(settings: Any) -> str:
    """``https`` when the server speaks TLS, else ``http``."""
    return "https" if settings.tls_cert else "http"


def free_port(host: str) -> int:
    """A free TCP port on ``host`` (for ``port = 0``: granian binds a port it is given)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def url_of(host: str, port: int, scheme: str = "http") -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"{scheme}://{shown}:{port}/"


class ReloadWatcher:
    """Reloads the registry whenever the reload file changes (how SIGHUP and an admin reload
    reach every worker process), checking twice a second in a daemon thread."""

    def __init__(self, path: str, reload: Callable[[], Any], interval_s: float = 0.5) -> None:
        self.path, self.reload, self.interval_s = path, reload, interval_s
        self._stop = threading.Event()
        self._seen = self._stamp()
        self._thread = threading.Thread(target=self._run, name="tfsoap-reload", daemon=True)

    def _stamp(self) -> int:
        try:
            return os.stat(self.path).st_mtime_ns
        except OSError:
            return 0

    def start(self) -> ReloadWatcher:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            stamp = self._stamp()
            if stamp != self._seen:
                self._seen = stamp
                log.info("reload requested: reloading the model store")
                try:
                    self.reload()
                except Exception:
                    log.exception("reload failed; the models already served keep serving")

    def stop(self) -> None:
        self._stop.set()


def stop_with_parent() -> None:
    """Have this worker process get SIGTERM when its manager dies (Linux), so that a manager
    killed outright (SIGKILL, the OOM killer) leaves no orphan workers holding the port.

    The manager's pid comes from ``MANAGER_PID_ENV`` (set by ``serve_forever``): a worker
    still starting when its manager died already has another parent, and it must not take
    that one for its manager (an orphan found by the test that kills the manager, under load)."""
    parent = int(os.environ.get(MANAGER_PID_ENV, "0") or 0) or os.getppid()
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:  # the manager died before the call above
        os.kill(os.getpid(), signal.SIGTERM)


def request_reload(path: str) -> None:
    """Tell every worker to reload (touch the reload file)."""
    Path(path).touch()
    os.utime(path, ns=(time.time_ns(), time.time_ns()))


def serve_forever(settings: Any, target: str, runtime_dir: str) -> None:
    """Run granian with ``settings.workers`` processes, each building its app with ``target``
    (a ``module:function`` factory); returns once a SIGTERM or SIGINT shut it down."""
    from granian.constants import Loops
    from granian.server import Server as Granian

    limit_malloc_arenas()
    reload_file = os.path.join(runtime_dir, "reload")
    Path(reload_file).touch()
    os.environ[RELOAD_FILE_ENV] = reload_file
    os.environ[MANAGER_PID_ENV] = str(os.getpid())

    class TfsoapGranian(Granian):  # type: ignore[misc,valid-type]
        """granian's process manager, with SIGHUP reloading the workers' stores in place
        instead of restarting them (a restart would reload every model from scratch)."""

        def signal_handler_reload(self, *args: Any, **kwargs: Any) -> None:
            log.info("SIGHUP received: every worker reloads its model store")
            request_reload(reload_file)

        def signal_handler_interrupt(self, *args: Any, **kwargs: Any) -> None:
            log.info("shutdown signal received: no new connections; requests in flight "
                     "finish within %g s", settings.shutdown_grace_s)
            super().signal_handler_interrupt(*args, **kwargs)

    # asyncio's loop, not granian's default (uvloop when it is installed): uvloop served 3-9%
    # more small Predicts, but with it installed a worker stopping under SIGTERM was once found
    # hung inside granian's signal handler, its manager gone; asyncio's is the loop tested (and
    # the one RunningServer makes).
    server = TfsoapGranian(
        target, port=settings.port or free_port(settings.host), workers=settings.workers,
        loop=Loops.asyncio,
        factory=True, respawn_failed_workers=True,
        workers_kill_timeout=max(1, int(settings.shutdown_grace_s + 0.999)),
        log_enabled=True, log_level=settings.log_level.lower(),
        **granian_options(settings))
    server.serve()
    log.info("server stopped")


class RunningServer(Generic[App]):
    """One granian worker serving ``server_app`` on an event loop in a thread of this process;
    ``start()`` returns once it listens."""

    def __init__(self, server_app: App) -> None:
        self.app = server_app
        s = server_app.settings
        self.host = s.host
        self.port = s.port or free_port(s.host)
        self.front = http_front(server_app)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._granian: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return url_of(self.host, self.port, scheme_of(self.app.settings))

    def start(self, load_models: bool = True) -> RunningServer[App]:
        """Listen and serve in a background thread; models load in another."""
        from granian.server.embed import Server as EmbeddedGranian

        limit_malloc_arenas()
        # first, so that a missing gRPC package or a port in use leaves nothing running
        self.app.start_side_servers()
        if load_models:
            self.app.registry.start_loading()
        self._granian = EmbeddedGranian(self.front, port=self.port, log_enabled=False,
                                        **granian_options(self.app.settings))
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            loop.call_soon(started.set)
            loop.run_until_complete(self._granian.serve())
            loop.close()

        self._thread = threading.Thread(target=run, name="tfsoap-http", daemon=True)
        self._thread.start()
        started.wait(30)
        try:
            _wait_listening(self.host, self.port, 30)
        except OSError:
            self.stop()
            raise
        return self

    def wait_ready(self, timeout: float = 120.0) -> bool:
        """Block until every model is loaded (or ``timeout`` passes)."""
        return self.app.registry.wait_ready(timeout)

    def stop(self) -> None:
        if self._loop is not None and self._granian is not None:
            try:  # requests in flight finish first (granian's own stop does not wait)
                asyncio.run_coroutine_threadsafe(
                    self.front.drain(self.app.settings.shutdown_grace_s), self._loop).result()
            except RuntimeError:  # the loop already ended
                pass
            self._loop.call_soon_threadsafe(self._granian.stop)
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.front.pool.shutdown(wait=False)
        self.app.stop_side_servers()
        self.app.registry.close()

    def __enter__(self) -> RunningServer[App]:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _wait_listening(host: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.02)
    raise OSError(f"the server did not start listening on {host}:{port}")
