"""The models being served: every stored version loaded, with its state, gate and batcher.

``ModelRegistry.load_all()`` loads every version in the store (in a background thread when the
server starts, so ``/healthz`` answers at once and ``/readyz`` once loading is done);
``reload()`` picks up versions added or removed since, never dropping a served version because a
new one failed to load.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from ..errors import ModelNotFoundError, ModelStoreError, UnavailableError
from ..store import (
    BatchingConfig,
    ModelRepository,
    ModelSignature,
    StoredVersion,
    validate_name,
    validate_version,
)
from .batching import DynamicBatcher
from .loader import LoadedModel, WeightsOptions
from .session_pool import AdmissionGate, PoolLimits

log = logging.getLogger(__name__)


class ModelState(enum.StrEnum):
    """Lifecycle of one model version, as ``GetServerStatus`` reports it."""

    LOADING = "LOADING"
    AVAILABLE = "AVAILABLE"
    FAILED = "FAILED"


@dataclass(frozen=True)
class RegistrySettings:
    """How versions are loaded and run (built by the composition root from the settings)."""

    instances: int = 1
    limits: PoolLimits = field(default_factory=PoolLimits)
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    #: Overrides every model's ``batching`` from ``model.json`` when not None.
    batching: BatchingConfig | None = None
    #: Turn batching off everywhere, whatever ``model.json`` says.
    disable_batching: bool = False
    warm_up: bool = True
    #: How weights are held: large constants as variables (see ``graph_weights``).
    weights: WeightsOptions = field(default_factory=WeightsOptions)


class ServedModel:
    """One loaded version: validates requests and runs them through its gate (and batcher)."""

    def __init__(self, loaded: LoadedModel, settings: RegistrySettings) -> None:
        self.loaded = loaded
        self.name = loaded.name
        self.version = loaded.version
        self.signature: ModelSignature = loaded.signature
        self.gate = AdmissionGate(f"model {self.name} v{self.version}", settings.limits)
        cfg = settings.batching if settings.batching is not None else self.signature.batching
        self.batcher: DynamicBatcher | None = None
        if cfg is not None and cfg.enabled and not settings.disable_batching:
            if self.signature.batchable:
                self.batcher = DynamicBatcher(loaded, self.gate, cfg)
            else:
                log.warning("batching asked for %s v%d, but its tensors have no batch "
                            "dimension: batching stays off", self.name, self.version)

    def predict(self, feeds: Mapping[str, np.ndarray], output_filter: Sequence[str] | None = None,
                deadline: float | None = None) -> dict[str, np.ndarray]:
        """Check ``feeds`` against the signature and run the model; outputs by alias."""
        specs = self.signature.output_specs(list(output_filter) if output_filter else None)
        self.signature.check_inputs(feeds)
        if self.batcher is not None:
            return self.batcher.submit(feeds, specs, deadline)
        return self.gate.call(lambda: self.loaded.run(feeds, specs), deadline)

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()
        self.loaded.close()


@dataclass
class VersionEntry:
    """A version's state in the registry."""

    stored: StoredVersion
    state: ModelState = ModelState.LOADING
    served: ServedModel | None = None
    error: str = ""
    signature: ModelSignature | None = None
    loaded_at: float = 0.0
    #: Resident memory the load added, measured (RSS after the load minus before; approximate
    #: when requests run meanwhile); 0 until AVAILABLE.
    memory_bytes: int = 0
    #: Bytes of the constants held as variables (the weights, estimated from their shapes).
    weights_bytes: int = 0
    #: Seconds from reading the graph to the end of the warm-up run.
    load_seconds: float = 0.0


class ModelRegistry:
    """All versions of all models in one store, by name and version."""

    def __init__(self, repository: ModelRepository,
                 settings: RegistrySettings | None = None) -> None:
        self.repository = repository
        self.settings = settings or RegistrySettings()
        self._entries: dict[tuple[str, int], VersionEntry] = {}
        self._lock = threading.RLock()
        self._reload_lock = threading.Lock()
        self._loaded_once = threading.Event()

    # -- loading -----------------------------------------------------------------------------
    def load_all(self) -> None:
        """Load every version in the store; same as ``reload()`` the first time."""
        self.reload()

    def start_loading(self) -> threading.Thread:
        """Load in a background thread; ``ready`` turns true when it is done."""
        t = threading.Thread(target=self._load_safely, name="tfsoap-loader", daemon=True)
        t.start()
        return t

    def _load_safely(self) -> None:
        try:
            self.reload()
        except ModelStoreError as exc:
            log.error("loading the model store failed: %s", exc)
            self._loaded_once.set()

    def reload(self) -> dict[str, list[int]]:
        """Load versions new in the store and unload versions gone from it.

        A version that fails to load is marked FAILED; versions already served stay served.
        Returns the versions by state after the reload.
        """
        with self._reload_lock:
            on_disk = {(v.name, v.version): v for v in self.repository.all_versions()}
            with self._lock:
                gone = [k for k in self._entries if k not in on_disk]
                new = [v for k, v in on_disk.items() if k not in self._entries]
                for key in gone:
                    entry = self._entries.pop(key)
                    if entry.served is not None:
                        entry.served.close()
                    log.info("unloaded model %s version %d", *key)
                for stored in new:
                    self._entries[(stored.name, stored.version)] = VersionEntry(stored)
            for stored in sorted(new, key=lambda v: (v.name, v.version)):
                self._load(stored)
            self._loaded_once.set()
            counts: dict[str, list[int]] = {}
            for entry in self.entries():
                counts.setdefault(entry.state.value, []).append(entry.stored.version)
            return counts

    def _load(self, stored: StoredVersion) -> None:
        started = time.monotonic()
        entry = self._entries[(stored.name, stored.version)]
        try:
            signature = stored.read_signature()
            entry.signature = signature
            loaded = LoadedModel(stored, signature, instances=self.settings.instances,
                                 intra_op_threads=self.settings.intra_op_threads,
                                 inter_op_threads=self.settings.inter_op_threads,
                                 weights=self.settings.weights)
            if self.settings.warm_up:
                loaded.warm_up()
            served = ServedModel(loaded, self.settings)
        except ModelStoreError as exc:
            with self._lock:
                entry.state, entry.error = ModelState.FAILED, str(exc)
            log.error("model %s version %d failed to load: %s", stored.name, stored.version, exc)
            return
        except Exception as exc:  # TensorFlow can raise anything on a broken graph
            with self._lock:
                entry.state, entry.error = ModelState.FAILED, f"{type(exc).__name__}: {exc}"
            log.exception("model %s version %d failed to load", stored.name, stored.version)
            return
        with self._lock:
            entry.served, entry.state, entry.loaded_at = served, ModelState.AVAILABLE, time.time()
            entry.memory_bytes, entry.weights_bytes = loaded.memory_bytes, loaded.weights_bytes
            entry.load_seconds = loaded.load_seconds
        log.info("loaded model %s version %d in %.2fs (resident +%.1f MiB)", stored.name,
                 stored.version, time.monotonic() - started, loaded.memory_bytes / 2**20)

    def wait_ready(self, timeout: float) -> bool:
        """Block until the first load finished and ``ready`` is true, or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        self._loaded_once.wait(timeout)
        while not self.ready and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.ready

    # -- lookups -----------------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """True once loading finished and every model has a servable version."""
        if not self._loaded_once.is_set():
            return False
        with self._lock:
            names = {k[0] for k in self._entries}
            return all(any(e.state is ModelState.AVAILABLE for e in self._versions_of(n))
                       for n in names) and not any(
                e.state is ModelState.LOADING for e in self._entries.values())

    def entries(self) -> list[VersionEntry]:
        with self._lock:
            return [self._entries[k] for k in sorted(self._entries)]

    def _versions_of(self, name: str) -> list[VersionEntry]:
        return [e for (n, _), e in sorted(self._entries.items()) if n == name]

    def model_names(self) -> list[str]:
        with self._lock:
            return sorted({k[0] for k in self._entries})

    def get(self, name: str, version: int | None = None) -> ServedModel:
        """The served version asked for, or the latest available one when ``version`` is None."""
        entry = self.latest_entry(name, version)
        if entry.served is not None:
            return entry.served
        what = f"model {name!r}" if version is None else f"model {name!r} version {version}"
        with self._lock:
            loading = entry.state is ModelState.LOADING or version is None and any(
                e.state is ModelState.LOADING for e in self._versions_of(name))
        if loading:
            raise UnavailableError(f"{what} is still loading; retry later")
        raise UnavailableError(f"{what} failed to load: {entry.error or 'unknown error'}")

    def latest_entry(self, name: str, version: int | None = None) -> VersionEntry:
        """The entry for metadata: the asked version, else the latest available (or latest)."""
        validate_name(name)
        with self._lock:
            entries = self._versions_of(name)
            if not entries:
                raise ModelNotFoundError(f"model {name!r} is not served here")
            if version is None:
                available = [e for e in entries if e.state is ModelState.AVAILABLE]
                return available[-1] if available else entries[-1]
            validate_version(version)
            for e in entries:
                if e.stored.version == version:
                    return e
            raise ModelNotFoundError(
                f"model {name!r} has no version {version}; it has "
                f"{[e.stored.version for e in entries]}")

    def close(self) -> None:
        with self._lock:
            for entry in self._entries.values():
                if entry.served is not None:
                    entry.served.close()
            self._entries.clear()

