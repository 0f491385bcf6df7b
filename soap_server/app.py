"""The composition root: settings -> store, registry, dataplane, Spyne app, WSGI, HTTP server.

The HTTP server is cheroot (CherryPy's WSGI server): a production-grade HTTP/1.1 server with
keep-alive, a bounded worker thread pool, graceful shutdown and built-in TLS, pure Python and on
PyPI. A thread pool fits this service: ``Session.run`` releases the GIL, so threads waiting on
TensorFlow cost nothing, and the admission gate in front of each model bounds the work.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from spyne import Application
from spyne.server.wsgi import WsgiApplication

from model_store import ModelRepository, bundled_store_path
from model_store.registry import ModelRegistry, RegistrySettings
from model_store.session_pool import PoolLimits
from model_store.signature import BatchingConfig

from . import __version__
from .dataplane import DataPlane
from .namespaces import PLACEHOLDER_ADDRESS, SERVICE_NAME, TNS
from .protocol import TfsoapSoap11
from .service import PredictService
from .settings import Settings
from .wsdl import build_wsdl
from .wsgi import TfsoapWsgi

log = logging.getLogger(__name__)


def build_spyne_app() -> Application:
    """The Spyne application of the contract (no models needed: used to write the WSDL too)."""
    app = Application([PredictService], tns=TNS, name=SERVICE_NAME,
                      in_protocol=TfsoapSoap11(validator="soft"), out_protocol=TfsoapSoap11())
    return app


def contract_wsdl(address: str = PLACEHOLDER_ADDRESS) -> bytes:
    """The WSDL document with ``address`` as the endpoint (``tfsoap wsdl`` writes this)."""
    spyne_app = build_spyne_app()
    WsgiApplication(spyne_app)  # sets the SOAP-over-HTTP transport on the interface
    return build_wsdl(spyne_app, address)


def registry_settings(settings: Settings) -> RegistrySettings:
    override = None
    if settings.max_batch_size > 0 or settings.batch_timeout_ms >= 0 \
            or settings.max_enqueued_batches > 0:
        base = BatchingConfig()
        override = BatchingConfig(
            max_batch_size=settings.max_batch_size or base.max_batch_size,
            batch_timeout_ms=settings.batch_timeout_ms if settings.batch_timeout_ms >= 0
            else base.batch_timeout_ms,
            max_enqueued_batches=settings.max_enqueued_batches or base.max_enqueued_batches)
    return RegistrySettings(
        instances=settings.instances,
        limits=PoolLimits(settings.max_concurrent_runs, settings.max_queued,
                          settings.request_timeout_s),
        intra_op_threads=settings.intra_op_threads, inter_op_threads=settings.inter_op_threads,
        batching=override, disable_batching=not settings.batching)


@dataclass
class ServerApp:
    """Everything the server is made of, joined."""

    settings: Settings
    registry: ModelRegistry
    dataplane: DataPlane
    spyne_app: Application
    wsgi: TfsoapWsgi


def build_app(settings: Settings) -> ServerApp:
    """Join the parts; models are not loaded yet (call ``registry.start_loading()``)."""
    store = settings.model_store or bundled_store_path()
    registry = ModelRegistry(ModelRepository(store), registry_settings(settings))
    dataplane = DataPlane(registry, __version__, settings.request_timeout_s)
    spyne_app = build_spyne_app()
    spyne_app.dataplane = dataplane
    spyne_wsgi = WsgiApplication(spyne_app, max_content_length=settings.max_body_bytes + 1)
    for name in ("spyne.server._base", "spyne.application", "spyne.protocol.xml",
                 "spyne.model.complex"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # we log each request ourselves
    wsgi = TfsoapWsgi(spyne_wsgi, lambda address: build_wsdl(spyne_app, address),
                      lambda: registry.ready, settings.max_body_bytes)
    return ServerApp(settings, registry, dataplane, spyne_app, wsgi)


class RunningServer:
    """A cheroot server serving a ``ServerApp``; ``start()`` returns once it listens."""

    def __init__(self, server_app: ServerApp) -> None:
        from cheroot import wsgi as cheroot_wsgi

        s = server_app.settings
        self.app = server_app
        self.server = cheroot_wsgi.Server((s.host, s.port), server_app.wsgi, numthreads=s.threads,
                                          server_name="tfsoap", timeout=60)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.server.bind_addr[1])

    @property
    def url(self) -> str:
        host = self.server.bind_addr[0]
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/"

    def start(self, load_models: bool = True) -> "RunningServer":
        """Listen and serve in a background thread; models load in another."""
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

    def __enter__(self) -> "RunningServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def start_server(settings: Settings) -> RunningServer:
    """Build and start a server in this process (tests and ``tfsoap serve`` use this)."""
    return RunningServer(build_app(settings)).start()
