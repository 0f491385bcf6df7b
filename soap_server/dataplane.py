"""Transport-free use cases under the SOAP operations: predict, metadata, list, status.

Everything here takes and returns plain Python and numpy values, so it is tested without HTTP.
Each call logs one line with the operation, model, version, duration, outcome and request id.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from model_store.errors import InvalidInputError, ModelStoreError
from model_store.serving import ModelRegistry, ModelState
from model_store.store import BatchingConfig, ModelSignature

from .outcomes import outcome_of

log = logging.getLogger(__name__)


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
    #: resident memory the load added (measured RSS delta); None unless AVAILABLE
    memory_bytes: int | None = None
    load_seconds: float | None = None


@dataclass
class ServerStatus:
    server_version: str
    uptime_seconds: float
    ready: bool
    models: list[VersionStatus] = field(default_factory=list)


class DataPlane:
    """The operations of ``PredictService``, over a ``ModelRegistry``."""

    def __init__(self, registry: ModelRegistry, server_version: str,
                 request_timeout_s: float = 30.0) -> None:
        self.registry = registry
        self.server_version = server_version
        self.request_timeout_s = request_timeout_s
        self.started = time.monotonic()

    @contextmanager
    def _logged(self, op: str, request_id: str, model: str = "-",
                version: int | None = None) -> Iterator[dict[str, object]]:
        started = time.perf_counter()
        info: dict[str, object] = {"version": version}
        outcome = "ok"
        try:
            yield info
        except BaseException as exc:
            outcome = outcome_of(exc)
            raise
        finally:
            log.info("request_id=%s op=%s model=%s version=%s duration_ms=%.2f outcome=%s",
                     request_id, op, model, info.get("version") or "-",
                     (time.perf_counter() - started) * 1000, outcome)

    def predict(self, model_name: str, version: int | None,
                inputs: Sequence[tuple[str, np.ndarray]], output_filter: Sequence[str] | None,
                request_id: str = "-") -> PredictResult:
        """Run ``model_name`` (latest version unless ``version``) on ``inputs`` by alias.

        Version 0 means the latest too: versions are positive, and some SOAP toolkits (Mono's
        svcutil) always send an optional ``long`` field, as 0 when it was not set."""
        version = version or None
        with self._logged("Predict", request_id, model_name, version) as info:
            feeds: dict[str, np.ndarray] = {}
            for alias, value in inputs:
                if alias in feeds:
                    raise InvalidInputError(f"input {alias!r} is given twice")
                feeds[alias] = value
            served = self.registry.get(model_name, version)
            info["version"] = served.version
            deadline = time.monotonic() + self.request_timeout_s
            outputs = served.predict(feeds, output_filter, deadline)
            return PredictResult(served.name, served.version, list(outputs.items()))

    def metadata(self, model_name: str, version: int | None,
                 request_id: str = "-") -> ModelMetadata:
        """The signature, labels and versions of a model (latest servable unless ``version``;
        0 means the latest too)."""
        version = version or None
        with self._logged("GetModelMetadata", request_id, model_name, version) as info:
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

    def list_models(self, request_id: str = "-") -> list[ModelSummaryInfo]:
        """Every model served, with its versions and the state of the default one."""
        with self._logged("ListModels", request_id):
            out = []
            for name in self.registry.model_names():
                entry = self.registry.latest_entry(name)
                versions = [e.stored.version for e in self.registry.entries()
                            if e.stored.name == name]
                sig = entry.signature
                out.append(ModelSummaryInfo(name, entry.stored.version, versions,
                                            entry.state.value,
                                            sig.description if sig is not None else ""))
            return out

    def status(self, request_id: str = "-") -> ServerStatus:
        """Server version, uptime, readiness and the state of every model version."""
        with self._logged("GetServerStatus", request_id):
            models = []
            for e in self.registry.entries():
                gate = e.served.gate if e.served is not None else None
                loaded = e.served is not None
                models.append(VersionStatus(e.stored.name, e.stored.version, e.state.value,
                                            e.error, gate.completed if gate else 0,
                                            gate.rejected if gate else 0,
                                            e.memory_bytes if loaded else None,
                                            round(e.load_seconds, 3) if loaded else None))
            return ServerStatus(self.server_version, time.monotonic() - self.started,
                                self.registry.ready, models)
