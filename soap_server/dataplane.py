"""Transport-free use cases under the SOAP operations: predict, metadata, list, status.

Everything here takes and returns plain Python and numpy values, so it is tested without HTTP.
Each call logs one line with the operation, model, version, duration, outcome and request id.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterator, Sequence, Union

import numpy as np

from model_store.errors import InvalidInputError, ModelStoreError, UnavailableError
from model_store.serving import ModelRegistry, ModelState, ServedModel
from model_store.store import BatchingConfig, ModelSignature

from .observability import access_line, client_deadline, request_peer
from .outcomes import outcome_of
from .security import ANONYMOUS, OPEN_POLICY, AccessPolicy, Caller

log = logging.getLogger(__name__)


#: called as each request ends: (operation, model, version, outcome, seconds)
RequestRecorder = Callable[[str, str, "int | None", str, float], None]
#: Inputs by alias, or a function giving them from the served version's signature.
#: Calls a function in a thread that may block; awaits its result (the HTTP front's pool).
RunBlocking = Callable[[Callable[[], Any]], Awaitable[Any]]
Inputs = Union[Sequence[tuple[str, np.ndarray]],
               Callable[[ModelSignature], Sequence[tuple[str, np.ndarray]]]]


def _feeds(inputs: Sequence[tuple[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``inputs`` by alias; ``InvalidInputError`` when one is given twice."""
    feeds: dict[str, np.ndarray] = {}
    for alias, value in inputs:
        if alias in feeds:
            raise InvalidInputError(f"input {alias!r} is given twice")
        feeds[alias] = value
    return feeds


@dataclass
class PredictResult:
    """Outputs by alias, in signature order, and the version that answered."""

    model_name: str
    version: int
    outputs: list[tuple[str, np.ndarray]]


@dataclass
class ModelMetadata:
    """What ``GetModelMetadata`` answers."""

    model_name: str
    version: int
    versions: list[int]
    state: str
    signature: ModelSignature | None
    batching: BatchingConfig | None
    error: str = ""


@dataclass
class ModelSummaryInfo:
    name: str
    latest_version: int
    versions: list[int]
    state: str
    description: str


@dataclass
class VersionStatus:
    model_name: str
    version: int
    state: str
    error: str
    completed: int
    rejected: int
    content_hash: str = ""
    loaded_at: float = 0.0
    load_seconds: float = 0.0
    #: resident memory the load added (measured RSS delta); 0 until loaded
    memory_bytes: int = 0
    #: bytes of the constants held as variables (from their shapes)
    weights_bytes: int = 0


@dataclass
class ServerStatus:
    server_version: str
    uptime_seconds: float
    ready: bool
    models: list[VersionStatus] = field(default_factory=list)


class DataPlane:
    """The operations of ``PredictService``, over a ``ModelRegistry``."""

    def __init__(self, registry: ModelRegistry, server_version: str,
                 request_timeout_s: float = 30.0, access_log: bool = True,
                 recorders: Sequence[RequestRecorder] = (),
                 access: AccessPolicy = OPEN_POLICY) -> None:
        self.registry = registry
        self.access = access
        self.server_version = server_version
        self.request_timeout_s = request_timeout_s
        self.started = time.monotonic()
        #: write one log line per request (logger ``soap_server.dataplane``)
        self.access_log = access_log
        #: metrics and anything else counting requests
        self.recorders = list(recorders)

    @contextmanager
    def _logged(self, op: str, request_id: str, model: str = "-", version: int | None = None,
                caller: Caller = ANONYMOUS) -> Iterator[dict[str, object]]:
        started = time.perf_counter()
        info: dict[str, object] = {"version": version}
        outcome = "ok"
        try:
            yield info
        except BaseException as exc:
            outcome = outcome_of(exc)
            raise
        finally:
            seconds = time.perf_counter() - started
            answered = info.get("version")
            if self.access_log:
                access_line(request_id, op, model, answered, seconds, outcome,
                            request_peer.get(), caller.name)
            for record in self.recorders:
                record(op, model, answered if isinstance(answered, int) else None, outcome,
                       seconds)

    def _resolve(self, model_name: str, version: int | None, version_label: str) -> int:
        """The version ``version_label`` names; a request may give a version or a label, not
        both (TF Serving's ``model_spec`` holds one of them)."""
        if version is not None:
            raise InvalidInputError(f"give a version ({version}) or a version label "
                                    f"({version_label[:64]!r}), not both")
        return self.registry.resolve_label(model_name, version_label)

    def predict(self, model_name: str, version: int | None,
                inputs: Inputs, output_filter: Sequence[str] | None,
                request_id: str = "-", caller: Caller = ANONYMOUS,
                version_label: str | None = None) -> PredictResult:
        """Run ``model_name`` (latest version unless ``version``) on ``inputs`` by alias.

        Version 0 means the latest too: versions are positive, and some SOAP toolkits (Mono's
        svcutil) always send an optional ``long`` field, as 0 when it was not set.
        ``version_label`` (TF Serving's ``stable``, ``canary``...) names the version instead.
        ``inputs`` may be a function of the served version's signature, for protocols whose
        values take their dtype from it (TF Serving's JSON numbers)."""
        version = version or None
        with self._logged("Predict", request_id, model_name, version, caller) as info:
            version, deadline = self._admit(model_name, version, version_label, caller, info)
            feeds = None if callable(inputs) else _feeds(inputs)
            # the lease keeps the version open until its answer is back, even if a reload
            # retires it meanwhile
            with self.registry.lease(model_name, version) as served:
                info["version"] = served.version
                if callable(inputs):  # a protocol that decodes against the signature (REST)
                    feeds = _feeds(inputs(served.signature))
                assert feeds is not None
                outputs = served.predict(feeds, output_filter, deadline)
            return PredictResult(served.name, served.version, list(outputs.items()))

    async def predict_async(self, model_name: str, version: int | None,
                            inputs: Sequence[tuple[str, np.ndarray]],
                            output_filter: Sequence[str] | None, request_id: str = "-",
                            caller: Caller = ANONYMOUS, version_label: str | None = None, *,
                            run_blocking: RunBlocking) -> PredictResult:
        """``predict`` on an event loop, with the same checks, outcomes and log line. A
        batched model's request waits for its batch without holding a thread; any other
        (batching off, or a request no other could join) runs in ``run_blocking``, which
        calls a function in a thread that may block and awaits its result."""
        version = version or None
        with self._logged("Predict", request_id, model_name, version, caller) as info:
            version, deadline = self._admit(model_name, version, version_label, caller, info)
            feeds = _feeds(inputs)
            with self.registry.lease(model_name, version) as served:
                info["version"] = served.version
                outputs = await _batched(served, feeds, output_filter, deadline, run_blocking)
            return PredictResult(served.name, served.version, list(outputs.items()))

    def _admit(self, model_name: str, version: int | None, version_label: str | None,
               caller: Caller, info: dict[str, object]) -> tuple[int | None, float]:
        """Check that ``caller`` may call the model; the version asked for (a label
        resolved) and the request's deadline (``request_timeout_s``, or the client's own
        if sooner)."""
        self.access.check_model(caller, model_name)
        if version_label:  # a label names a version; then the same lease as a number
            version = info["version"] = self._resolve(model_name, version, version_label)
        deadline = time.monotonic() + self.request_timeout_s
        asked = client_deadline.get()
        if asked is not None and asked < deadline:
            deadline = asked
        return version, deadline

    def metadata(self, model_name: str, version: int | None,
                 request_id: str = "-", caller: Caller = ANONYMOUS,
                 version_label: str | None = None) -> ModelMetadata:
        """The signature, labels and versions of a model (latest servable unless ``version``
        or ``version_label``; 0 means the latest too)."""
        version = version or None
        with self._logged("GetModelMetadata", request_id, model_name, version,
                          caller) as info:
            self.access.check_model(caller, model_name)
            if version_label:
                version = self._resolve(model_name, version, version_label)
            entry = self.registry.latest_entry(model_name, version)
            info["version"] = entry.stored.version
            versions = [e.stored.version for e in self.registry.entries()
                        if e.stored.name == model_name]
            signature = entry.signature
            batching = None
            if entry.served is not None:
                signature = entry.served.signature
                if entry.served.batcher is not None:
                    batching = entry.served.batcher.config
            if signature is None and entry.state is not ModelState.LOADING:
                try:
                    signature = entry.stored.read_signature()
                except ModelStoreError:
                    signature = None
            return ModelMetadata(model_name, entry.stored.version, versions, entry.state.value,
                                 signature, batching, entry.error)

    def list_models(self, request_id: str = "-",
                    caller: Caller = ANONYMOUS) -> list[ModelSummaryInfo]:
        """Every model served that ``caller`` may call, with its versions and the state of the
        default one."""
        with self._logged("ListModels", request_id, caller=caller):
            out = []
            for name in self.registry.model_names():
                if not self.access.may_call(caller, name):
                    continue
                entry = self.registry.latest_entry(name)
                versions = [e.stored.version for e in self.registry.entries()
                            if e.stored.name == name]
                sig = entry.signature
                out.append(ModelSummaryInfo(name, entry.stored.version, versions,
                                            entry.state.value,
                                            sig.description if sig is not None else ""))
            return out

    def model_status(self, model_name: str, version: int | None = None,
                     version_label: str | None = None, request_id: str = "-",
                     caller: Caller = ANONYMOUS) -> list[VersionStatus]:
        """The state of every version of ``model_name`` (or of the one version asked for, by
        number or label): TF Serving's ``GetModelStatus``."""
        version = version or None
        with self._logged("GetModelStatus", request_id, model_name, version, caller) as info:
            self.access.check_model(caller, model_name)
            if version_label:
                version = info["version"] = self._resolve(model_name, version, version_label)
            if version is not None:
                entries = [self.registry.latest_entry(model_name, version)]
            else:
                self.registry.latest_entry(model_name)  # ModelNotFoundError when unknown
                entries = [e for e in self.registry.entries() if e.stored.name == model_name]
            out = []
            for e in entries:
                gate = e.served.gate if e.served is not None else None
                out.append(VersionStatus(e.stored.name, e.stored.version, e.state.value,
                                         e.error, gate.completed if gate else 0,
                                         gate.rejected if gate else 0))
            return out

    def status(self, request_id: str = "-", caller: Caller = ANONYMOUS) -> ServerStatus:
        """Server version, uptime, readiness and the state of every model version."""
        with self._logged("GetServerStatus", request_id, caller=caller):
            self.access.check_status(caller)
            models = []
            for e in self.registry.entries():
                gate = e.served.gate if e.served is not None else None
                models.append(VersionStatus(e.stored.name, e.stored.version, e.state.value,
                                            e.error, gate.completed if gate else 0,
                                            gate.rejected if gate else 0, e.content_hash,
                                            e.loaded_at, e.load_seconds, e.memory_bytes,
                                            e.weights_bytes))
            return ServerStatus(self.server_version, time.monotonic() - self.started,
                                self.registry.ready, models)


async def _batched(served: ServedModel, feeds: dict[str, np.ndarray],
                   output_filter: Sequence[str] | None, deadline: float,
                   run_blocking: RunBlocking) -> dict[str, np.ndarray]:
    """``served.predict`` from an event loop: queued for a batch, with the batcher's worker
    waking this loop when the outputs are ready; withdrawn if the deadline passes first."""
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def notify() -> None:  # in the batcher's worker thread
        loop.call_soon_threadsafe(_wake, waiter)

    ticket = served.predict_nowait(feeds, output_filter, notify)
    if ticket is None:
        return await run_blocking(lambda: served.predict(feeds, output_filter, deadline))
    if not waiter.done():
        done, _ = await asyncio.wait((waiter,), timeout=max(0.0, deadline - time.monotonic()))
        if not done:
            assert served.batcher is not None
            if served.batcher.withdraw(ticket):
                raise UnavailableError(f"model {served.name} is overloaded: the request was "
                                       "not batched within its deadline; retry later")
            await waiter  # it runs already: its outputs come
    return ticket.outcome()


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
