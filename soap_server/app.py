"""The composition root: settings -> store, registry, dataplane, Spyne app, WSGI, HTTP server
(cheroot, in ``http_server``)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from spyne import Application
from spyne import const as spyne_const
from spyne.server.wsgi import WsgiApplication

from model_store import ModelRepository, bundled_store_path
from model_store.serving import ModelRegistry, PoolLimits, RegistrySettings, WeightsOptions
from model_store.store import BatchingConfig

from . import __version__
from .dataplane import DataPlane
from .http import RunningServer, TfsoapWsgi
from .settings import Settings
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
        weights=WeightsOptions(settings.weights_as_variables,
                               settings.weights_as_variables_min_bytes,
                               settings.log_progress_above_bytes))


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
                      large_body_slots=max(2, os.cpu_count() or 2))
    return ServerApp(settings, registry, dataplane, spyne_app, wsgi)


def start_server(settings: Settings) -> RunningServer[ServerApp]:
    """Build and start a server in this process (tests and ``tfsoap serve`` use this)."""
    return RunningServer(build_app(settings)).start()
