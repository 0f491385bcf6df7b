"""The composition root: settings -> store, registry, dataplane, Spyne app, WSGI front, and
the HTTP server (granian, in ``http.server``) in this process or in worker processes."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from spyne import Application
from spyne import const as spyne_const
from spyne.server.wsgi import WsgiApplication

from model_store import ModelRepository, bundled_store_path
from model_store.serving import (
    ModelRegistry,
    PoolLimits,
    RegistrySettings,
    VersionPolicy,
    WeightsOptions,
)
from model_store.store import BatchingConfig

from . import __version__
from .dataplane import DataPlane
from .http import (
    RELOAD_FILE_ENV,
    HttpFront,
    ReloadWatcher,
    RunningServer,
    TfsoapWsgi,
    http_front,
    request_reload,
    serve_forever,
    stop_with_parent,
)
from .observability import Metrics, prepare_multiprocess, wait_logs_written
from .rest import RestApi
from .security import (
    AccessPolicy,
    Guard,
    UsersFileError,
    UserStore,
    certificate_caller,
    check_tls_files,
    load_users,
    security_warnings,
)
from .settings import Settings, SettingsError, parse_version_labels
from .soap import (
    PLACEHOLDER_ADDRESS,
    SERVICE_NAME,
    TNS,
    PredictFastPath,
    PredictService,
    TfsoapSoap11,
    build_wsdl,
    release_on_close,
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


def tf_threads(settings: Settings) -> tuple[int, int]:
    """TensorFlow's intra-op and inter-op threads per session. Set, they are taken as they
    are; left at 0 with one worker, TensorFlow chooses (one of each per core); left at 0 with
    N workers, each worker takes its share of the cores this process may run on, at least one:
    N processes each running a thread per core fight over the cores. Measured on 2 cores, CNN
    batch 1 (front_ab, 3 rounds): 2 workers with 1 thread each served 1.32x (8 clients) and
    1.34x (32 clients) the requests/s of 2 workers with TensorFlow's choice, at 30% less CPU
    per request."""
    if settings.workers <= 1:
        return settings.intra_op_threads, settings.inter_op_threads
    share = max(1, len(os.sched_getaffinity(0)) // settings.workers)
    return settings.intra_op_threads or share, settings.inter_op_threads or share


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
    intra, inter = tf_threads(settings)
    return RegistrySettings(
        instances=settings.instances,
        limits=PoolLimits(settings.max_concurrent_runs, settings.max_queued,
                          settings.request_timeout_s),
        intra_op_threads=intra, inter_op_threads=inter,
        batching=override, disable_batching=not settings.batching,
        poll_interval_s=settings.poll_interval_s,
        version_policy=VersionPolicy.parse(settings.version_policy),
        require_models=settings.required_models,
        version_labels=parse_version_labels(settings.version_labels),
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
    metrics: Metrics | None = None
    guard: Guard | None = None
    """Checks credentials when a users file is set; ``guard.reload()`` re-reads the file."""
    #: servers beside the HTTP one (TF Serving's gRPC API), each with ``stop(grace)``
    side_servers: list[Any] = field(default_factory=list)

    def drain(self, timeout: float) -> bool:
        """After the HTTP server stopped accepting: let requests holding a model version
        finish (up to ``timeout`` seconds), then close every session. True if all finished."""
        return self.registry.drain(timeout)

    def start_side_servers(self) -> None:
        """Start the servers beside the HTTP one: TF Serving's gRPC API when ``grpc_port``
        is set. ``GrpcUnavailableError`` (one line) when its package is missing. Each worker
        process runs its own on the same port (SO_REUSEPORT: the kernel spreads connections)."""
        if self.settings.grpc_port and not self.side_servers:
            from .grpc import start_grpc_server

            self.side_servers.append(start_grpc_server(
                self.dataplane, self.settings.host, self.settings.grpc_port,
                self.settings.max_body_bytes))

    def stop_side_servers(self, grace: float = 5.0) -> None:
        """Stop taking calls on the side servers and let those in flight finish (up to
        ``grace`` seconds)."""
        while self.side_servers:
            self.side_servers.pop().stop(grace)


def check_store(settings: Settings) -> str:
    """The model store's folder; a ``SettingsError`` if it is not one (a typo must stop the
    server at start, not leave it running with no models)."""
    store = settings.model_store or bundled_store_path()
    if not os.path.isdir(store):
        raise SettingsError(f"model store {store} is not a folder")
    return store


def build_app(settings: Settings) -> ServerApp:
    """Join the parts; models are not loaded yet (call ``registry.start_loading()``)."""
    store = check_store(settings)
    access = AccessPolicy.from_settings(settings)
    guard = Guard(UserStore(settings.users_file), settings) if settings.users_file else None
    for warning in security_warnings(settings):
        log.warning("security: %s", warning)
    metrics = Metrics() if settings.metrics else None
    registry = ModelRegistry(ModelRepository(store, settings.follow_symlinks),
                             registry_settings(settings),
                             **({"observer": metrics} if metrics else {}))
    dataplane = DataPlane(registry, __version__, settings.request_timeout_s,
                          access_log=settings.access_log,
                          recorders=[metrics.record] if metrics else [],
                          access=access)
    spyne_app = build_spyne_app()
    spyne_app.dataplane = dataplane
    # Spyne runs a full gc.collect() at most once a second when a request ends, to close
    # uploaded files early; with TensorFlow loaded that takes about 200 ms holding the GIL and
    # stalls every request in flight. Python's own generational collector stays on.
    spyne_const.MIN_GC_INTERVAL = float("inf")
    spyne_wsgi = WsgiApplication(spyne_app, max_content_length=settings.max_body_bytes + 1)
    release_on_close(spyne_wsgi)  # Spyne's contexts are cycles: free what they hold at once
    for name in ("spyne.server._base", "spyne.application", "spyne.protocol.xml",
                 "spyne.model.complex"):
        logging.getLogger(name).setLevel(logging.CRITICAL)  # we log each request ourselves
    fast_predict = PredictFastPath(dataplane, spyne_app.in_protocol.parser_kwargs,
                                   enabled=lambda: not spyne_hooks(spyne_app, [spyne_wsgi]))
    wsgi = TfsoapWsgi(spyne_wsgi, lambda address: build_wsdl(spyne_app, address),
                      lambda: registry.ready, settings.max_body_bytes, fast_predict,
                      large_body_slots=max(2, os.cpu_count() or 2),
                      public_url=settings.public_url,
                      metrics=metrics.exposition if metrics else None,
                      admin_reload=_reload_every_worker(registry, guard),
                      admin_mode=settings.admin_reload, guard=guard, access=access,
                      certificate_caller=certificate_caller(settings),
                      rest=RestApi(dataplane, large_json_slots=max(2, os.cpu_count() or 2)))
    return ServerApp(settings, registry, dataplane, spyne_app, wsgi, metrics, guard)


def _reload_every_worker(registry: ModelRegistry, guard: Guard | None = None
                         ) -> Callable[[], Any]:
    """An admin reload: this worker's pass now (users file and model store), and every other
    worker's through the reload file (a second pass over an unchanged store changes nothing)."""
    def reload() -> Any:
        reload_file = os.environ.get(RELOAD_FILE_ENV)
        if reload_file:
            request_reload(reload_file)
        return reload_here(registry, guard)()

    return reload


def reload_here(registry: ModelRegistry, guard: Guard | None) -> Callable[[], Any]:
    """One worker's reload pass (SIGHUP through ``ReloadWatcher``, or the admin route): the
    users file first (a malformed one keeps the users it had, and the log says so), then the
    model store; answers the store pass's version counts."""
    def reload() -> Any:
        if guard is not None:
            try:
                guard.reload()
            except UsersFileError as exc:
                log.error("users file not reloaded, the users already read stay: %s", exc)
        return registry.reload()

    return reload


def start_server(settings: Settings) -> RunningServer[ServerApp]:
    """Build and start a server in this process (tests and embedding use this)."""
    check_tls_files(settings)
    return RunningServer(build_app(settings)).start()


#: The environment variable that carries the settings to granian's worker processes.
WORKER_SETTINGS_ENV = "TFSOAP_WORKER_SETTINGS"


def worker_app() -> HttpFront:
    """One worker process's application (granian calls this factory in each worker): its own
    registry and sessions, models loading in the background, reloading when told."""
    # Forked from granian's manager, this process has its signal handlers until granian sets
    # the worker's own once this factory returns: while the models load, SIGTERM must end it
    # (it has served nothing yet) and SIGHUP is the manager's business.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    stop_with_parent()
    settings = Settings(**json.loads(os.environ[WORKER_SETTINGS_ENV])).checked()
    app = build_app(settings)
    app.registry.start_loading()
    # granian's worker takes connections only once this returns: after the first load pass,
    # so that with several workers (or one restarted after a crash) no request reaches a worker
    # whose models still load.
    app.registry.wait_ready(600)
    reload_file = os.environ.get(RELOAD_FILE_ENV)
    watcher = (ReloadWatcher(reload_file, reload_here(app.registry, app.guard)).start()
               if reload_file else None)
    try:  # gRPC (when grpc_port is set) listens, like HTTP, once the models are loaded
        app.start_side_servers()
    except Exception:  # serve() checked package and port: log it, keep HTTP up
        log.exception("worker %d cannot serve TF Serving's gRPC API", os.getpid())
    log.info("worker %d serving the model store %s", os.getpid(), app.registry.repository.root)

    def shutdown() -> None:
        if watcher is not None:
            watcher.stop()
        # granian stopped taking HTTP requests and finished those in flight; gRPC does the
        # same here, then the registry drains and closes the sessions
        deadline = time.monotonic() + settings.shutdown_grace_s
        app.stop_side_servers(settings.shutdown_grace_s)
        app.drain(max(0.0, deadline - time.monotonic()))
        log.info("worker %d stopped", os.getpid())
        wait_logs_written()  # a worker process exits without logging.shutdown()

    return http_front(app, on_shutdown=shutdown)


def check_before_workers(settings: Settings) -> None:
    """Refuse, in the main process, what would make every worker fail at start (a worker that
    cannot build its app crash-loops): a missing model store, a malformed users file or TLS
    files that cannot be used are one ``SettingsError``, which the CLI prints as one line."""
    check_store(settings)
    if settings.users_file:
        load_users(settings.users_file)
    check_tls_files(settings)


def serve(settings: Settings) -> None:
    """Serve ``settings`` with ``settings.workers`` worker processes until SIGTERM or SIGINT.
    What would make every worker fail is checked here first, as one error at start."""
    check_before_workers(settings)
    if settings.grpc_port:
        from .grpc import check_grpc_port

        check_grpc_port(settings.host, settings.grpc_port)
    os.environ[WORKER_SETTINGS_ENV] = json.dumps(dataclasses.asdict(settings))
    with tempfile.TemporaryDirectory(prefix="tfsoap-") as runtime_dir:
        if settings.metrics and settings.workers > 1:  # one /metrics scrape sees every worker
            metrics_dir = os.path.join(runtime_dir, "metrics")
            os.makedirs(metrics_dir)
            prepare_multiprocess(metrics_dir)
        serve_forever(settings, f"{__name__}:worker_app", runtime_dir)
