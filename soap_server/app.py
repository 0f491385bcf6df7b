"""The composition root: settings -> store, registry, dataplane, Spyne app, WSGI, HTTP server
(cheroot, in ``http_server``)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from spyne import Application
from spyne import const as spyne_const
from spyne.server.wsgi import WsgiApplication

from model_store import ModelRepository, bundled_store_path
from model_store.serving import ModelRegistry, PoolLimits, RegistrySettings
from model_store.store import BatchingConfig

from . import __version__
from .dataplane import DataPlane
from .http import RunningServer, TfsoapWsgi
from .rest import RestApi
from .settings import Settings, parse_version_labels
from .soap import (
    PLACEHOLDER_ADDRESS,
    SERVICE_NAME,
    TNS,
    PredictFastPath,
    PredictService,
    TfsoapSoap11,
    build_wsdl,
    spyne_hooks,
)

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
        batching=override, disable_batching=not settings.batching,
        version_labels=parse_version_labels(settings.version_labels))


@dataclass
class ServerApp:
    """Everything the server is made of, joined."""

    settings: Settings
    registry: ModelRegistry
    dataplane: DataPlane
    spyne_app: Application
    wsgi: TfsoapWsgi
    side_servers: list[Any] = field(default_factory=list)

    def start_side_servers(self) -> None:
        """Start the servers beside the HTTP one: TF Serving's gRPC API when ``grpc_port``
        is set. ``GrpcUnavailableError`` (one line) when its package is missing."""
        if self.settings.grpc_port and not self.side_servers:
            from .grpc import start_grpc_server

            self.side_servers.append(start_grpc_server(
                self.dataplane, self.settings.host, self.settings.grpc_port,
                self.settings.max_body_bytes))

    def stop_side_servers(self) -> None:
        while self.side_servers:
            self.side_servers.pop().stop()


def build_app(settings: Settings) -> ServerApp:
    """Join the parts; models are not loaded yet (call ``registry.start_loading()``)."""
    store = settings.model_store or bundled_store_path()
    registry = ModelRegistry(ModelRepository(store), registry_settings(settings))
    dataplane = DataPlane(registry, __version__, settings.request_timeout_s)
    spyne_app = build_spyne_app()
    spyne_app.dataplane = dataplane
    # Spyne runs a full gc.collect() at most once a second when a request ends, to close
    # uploaded files early; with TensorFlow loaded that takes about 200 ms holding the GIL and
    # stalls every request in flight. Python's own generational collector stays on.
    spyne_const.MIN_GC_INTERVAL = float("inf")
    spyne_wsgi = WsgiApplication(spyne_app, max_content_length=settings.max_body_bytes + 1)
    for name in ("spyne.server._base", "spyne.application", "spyne.protocol.xml",
                 "spyne.model.complex"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # we log each request ourselves
    fast_predict = PredictFastPath(dataplane, spyne_app.in_protocol.parser_kwargs,
                                   enabled=lambda: not spyne_hooks(spyne_app, [spyne_wsgi]))
    wsgi = TfsoapWsgi(spyne_wsgi, lambda address: build_wsdl(spyne_app, address),
                      lambda: registry.ready, settings.max_body_bytes, fast_predict,
                      large_body_slots=max(2, os.cpu_count() or 2),
                      rest=RestApi(dataplane, large_json_slots=max(2, os.cpu_count() or 2)))
    return ServerApp(settings, registry, dataplane, spyne_app, wsgi)


def start_server(settings: Settings) -> RunningServer[ServerApp]:
    """Build and start a server in this process (tests and ``tfsoap serve`` use this)."""
    running = RunningServer(build_app(settings)).start()
    try:
        running.app.start_side_servers()
    except BaseException:
        running.stop()
        raise
    return running
