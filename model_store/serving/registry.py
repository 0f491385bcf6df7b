"""The models being served: the versions the policy selects, each with its state, gate, batcher.

One pass, ``ModelRegistry.reload()``, brings the registry in line with the store; the first
load, the poller (``poll_interval_s``), SIGHUP and the admin call all run it. A pass:

1. lists the store and applies each model's version policy (``policy``);
2. loads and warms up versions that are new, or whose files' content hash changed (``fingerprint``),
   while the old ones keep answering; then switches requests to them;
3. retires versions gone from the store (or from the policy), or replaced: a retired version takes
   no new request, finishes the ones it holds (running and queued), and only then closes its
   session (``_drain_later``). Requests hold a lease (``lease()``) while they use a version, so no
   request ever runs on a closed session.

A version that fails to load is FAILED with a one-line reason (no paths); the model keeps serving
its other versions, and a version whose changed files fail to load keeps serving its old content.
Every lifecycle event is one log line.
"""

from __future__ import annotations

import enum
import logging
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Sequence

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
from .batching import BatchTicket, DynamicBatcher
from .fingerprint import Fingerprint, content_hash, hash_files, stat_fingerprint
from .loader import LoadedModel, WeightsOptions
from .observer import NULL_OBSERVER, NULL_VERSION_OBSERVER, RegistryObserver, VersionObserver
from .policy import VersionPolicy
from .session_pool import AdmissionGate, PoolLimits

log = logging.getLogger(__name__)
_LABEL = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,63}$")


def import_tensorflow() -> None:
    """Finish importing TensorFlow in this thread. Code that imports TensorFlow's protobuf
    modules (TF Serving's gRPC API) calls this first: importing them while the loader thread
    is halfway through ``import tensorflow`` fails on a half-filled descriptor pool."""
    import tensorflow  # noqa: F401


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
    #: Seconds between store polls (0: no polling; reload on demand only).
    poll_interval_s: float = 0.0
    #: Which versions are served unless a model's ``model.json`` says otherwise.
    version_policy: VersionPolicy = field(default_factory=VersionPolicy)
    #: Models that must have a servable version before ``ready`` is true.
    require_models: tuple[str, ...] = ()
    #: TF Serving's ``version_labels`` by model (``{"digits": {"stable": 1}}``); they win over
    #: the ``version_labels`` object a model's ``model.json`` may declare.
    version_labels: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    #: How weights are held: large constants as variables (see ``graph_weights``).
    weights: WeightsOptions = field(default_factory=WeightsOptions)


class ServedModel:
    """One loaded version: validates requests and runs them through its gate (and batcher)."""

    def __init__(self, loaded: LoadedModel, settings: RegistrySettings,
                 observer: VersionObserver = NULL_VERSION_OBSERVER) -> None:
        self.loaded = loaded
        self.name = loaded.name
        self.version = loaded.version
        self.signature: ModelSignature = loaded.signature
        self.gate = AdmissionGate(f"model {self.name} v{self.version}", settings.limits,
                                  observer)
        cfg = settings.batching if settings.batching is not None else self.signature.batching
        self.batcher: DynamicBatcher | None = None
        if cfg is not None and cfg.enabled and not settings.disable_batching:
            if self.signature.batchable:
                self.batcher = DynamicBatcher(loaded, self.gate, cfg)
            else:
                log.warning("batching asked for %s v%d, but its tensors have no batch "
                            "dimension: batching stays off", self.name, self.version)
        # leases: requests using this version; it closes only once they are all gone
        self._idle = threading.Condition()
        self._users = 0
        self._retired = False
        self._closed = False

    def predict(self, feeds: Mapping[str, np.ndarray], output_filter: Sequence[str] | None = None,
                deadline: float | None = None) -> dict[str, np.ndarray]:
        """Check ``feeds`` against the signature and run the model; outputs by alias."""
        specs = self.signature.output_specs(list(output_filter) if output_filter else None)
        self.signature.check_inputs(feeds)
        if self.batcher is not None:
            return self.batcher.submit(feeds, specs, deadline)
        return self.gate.call(lambda: self.loaded.run(feeds, specs), deadline)

    def predict_nowait(self, feeds: Mapping[str, np.ndarray],
                       output_filter: Sequence[str] | None,
                       notify: Callable[[], None]) -> BatchTicket | None:
        """``predict`` for a caller that must not block (an event loop): check ``feeds`` and
        queue them for a batch (``DynamicBatcher.submit_nowait``). None when the request cannot
        be queued so (no batching, or a request no other could join): call ``predict`` from a
        thread that may block."""
        if self.batcher is None:
            return None
        specs = self.signature.output_specs(list(output_filter) if output_filter else None)
        self.signature.check_inputs(feeds)
        return self.batcher.submit_nowait(feeds, specs, notify)

    @property
    def in_use(self) -> int:
        """Requests holding a lease on this version."""
        return self._users

    def _acquire(self) -> None:
        with self._idle:
            self._users += 1

    def _release(self) -> None:
        with self._idle:
            self._users -= 1
            if self._users == 0:
                self._idle.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Block until no request holds a lease (or ``timeout`` passes); True if idle."""
        with self._idle:
            return self._idle.wait_for(lambda: self._users == 0, timeout)

    def close(self) -> None:
        """Close the batcher and sessions. Call only once ``wait_idle`` returned True."""
        with self._idle:
            if self._closed:
                return
            self._closed = True
        if self.batcher is not None:
            self.batcher.close()
        self.loaded.close()


@dataclass
class VersionEntry:
    """A version's state in the registry."""

    stored: StoredVersion
    state: ModelState = ModelState.LOADING
    served: ServedModel | None = None
    #: why it FAILED, or why changed files were not taken: one line, no paths
    error: str = ""
    signature: ModelSignature | None = None
    loaded_at: float = 0.0
    #: Seconds from reading the files to the end of the warm-up run.
    load_seconds: float = 0.0
    #: sha256 of the content being served (or that failed), hex
    content_hash: str = ""
    fingerprint: Fingerprint = None
    #: Resident memory the load added, measured (RSS after the load minus before; approximate
    #: when requests or other loads run meanwhile); 0 until AVAILABLE.
    memory_bytes: int = 0
    #: Bytes of the constants held as variables (the weights, estimated from their shapes).
    weights_bytes: int = 0


def one_line_reason(exc: BaseException, stored: StoredVersion, root: object) -> str:
    """The first line of ``exc``'s message with the store's paths taken out, at most 200 chars."""
    text = str(exc) or type(exc).__name__
    for path, short in ((stored.graph_path, "model.pb"), (stored.signature_path, "model.json"),
                        (stored.path, f"{stored.name}/{stored.version}"), (root, "<store>")):
        text = text.replace(str(path), short)
    line = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return line[:200]


class ModelRegistry:
    """All served versions of all models in one store, by name and version."""

    def __init__(self, repository: ModelRepository, settings: RegistrySettings | None = None,
                 observer: RegistryObserver = NULL_OBSERVER) -> None:
        self.repository = repository
        self.settings = settings or RegistrySettings()
        self.observer = observer
        self._entries: dict[tuple[str, int], VersionEntry] = {}
        self._lock = threading.RLock()
        self._reload_lock = threading.Lock()
        self._loaded_once = threading.Event()
        self._stop = threading.Event()
        self._closing = False
        self._draining: set[ServedModel] = set()
        self.reloads = 0

    # -- loading -----------------------------------------------------------------------------
    def load_all(self) -> None:
        """Load every version in the store; same as ``reload()`` the first time."""
        self.reload()

    def start_loading(self) -> threading.Thread:
        """Load in a background thread (``ready`` turns true when done), then poll the store
        every ``poll_interval_s`` until ``close()``."""
        t = threading.Thread(target=self._load_and_poll, name="tfsoap-loader", daemon=True)
        t.start()
        return t

    def _load_and_poll(self) -> None:
        self._reload_safely()
        interval = self.settings.poll_interval_s
        while interval > 0 and not self._stop.wait(interval):
            self._reload_safely()

    def _reload_safely(self) -> None:
        try:
            self.reload()
        except Exception:  # the poller must outlive any one bad pass
            log.exception("model store reload failed")
            self._loaded_once.set()

    def _policy_for(self, latest: StoredVersion) -> VersionPolicy:
        try:
            raw = latest.read_signature().extra.get("version_policy")
        except ModelStoreError:
            return self.settings.version_policy
        if raw is None:
            return self.settings.version_policy
        try:
            return VersionPolicy.parse(raw)
        except ValueError as exc:
            log.warning("model %s: ignoring version_policy in model.json of version %d: %s",
                        latest.name, latest.version, exc)
            return self.settings.version_policy

    def _wanted(self) -> dict[tuple[str, int], StoredVersion]:
        by_model: dict[str, list[StoredVersion]] = {}
        for v in self.repository.all_versions():
            by_model.setdefault(v.name, []).append(v)
        wanted = {}
        for name, versions in by_model.items():
            keep = self._policy_for(versions[-1]).select([v.version for v in versions])
            wanted.update({(name, v.version): v for v in versions if v.version in keep})
        return wanted

    def reload(self) -> dict[str, list[int]]:
        """Bring the registry in line with the store (see the module docstring).

        Returns the versions by state after the pass.
        """
        with self._reload_lock:
            if self._closing:
                return {}
            self.reloads += 1
            try:
                wanted = self._wanted()
            except ModelStoreError as exc:
                log.error("reload: cannot read the model store: %s", exc)
                self.observer.reloaded("error")
                self._loaded_once.set()
                return {}
            with self._lock:
                current = dict(self._entries)
                for key in wanted.keys() - current.keys():
                    self._entries[key] = VersionEntry(wanted[key])
            new = sorted(wanted.keys() - current.keys())
            gone = sorted(current.keys() - wanted.keys())
            changed = sorted(k for k in wanted.keys() & current.keys()
                             if self._content_changed(current[k]))
            for key in new:
                self.observer.state(key[0], key[1], ModelState.LOADING.value)
                self._load_into(self._entries[key])
            for key in changed:
                self._load_into(current[key], replacing=True)
            with self._lock:
                retired = [self._entries.pop(k) for k in gone]
            for entry in retired:
                self.observer.state(entry.stored.name, entry.stored.version, None)
                if entry.served is not None:
                    self._drain_later(entry.served, "removed")
                else:
                    log.info("model %s version %d removed", entry.stored.name,
                             entry.stored.version)
            first = not self._loaded_once.is_set()
            self._loaded_once.set()
            self.observer.reloaded("ok")
            counts: dict[str, list[int]] = {}
            for entry in self.entries():
                counts.setdefault(entry.state.value, []).append(entry.stored.version)
            if new or gone or changed or first:
                log.info("reload: %d new, %d changed, %d removed; %s", len(new), len(changed),
                         len(gone), " ".join(f"{k[0]}/{k[1]}={e.state.value}"
                                             for k, e in sorted(self._entries.items())) or
                         "no models")
            if not self._entries and first:
                log.warning("the model store %s holds no model version: not ready until one "
                            "appears", self.repository.root)
            return counts

    def _content_changed(self, entry: VersionEntry) -> bool:
        """True when the version's files hold other bytes than those last loaded (or tried)."""
        fp = stat_fingerprint(entry.stored)
        if fp is None or fp == entry.fingerprint:
            return False
        digest = hash_files(entry.stored)
        if digest is None:
            return False
        if digest == entry.content_hash:
            entry.fingerprint = fp  # touched, same bytes
            return False
        return True

    def _load_into(self, entry: VersionEntry, replacing: bool = False) -> None:
        """Load ``entry``'s files; on success switch requests to them and retire the old
        version; on failure mark it FAILED, or (when replacing a served one) keep serving."""
        stored = entry.stored
        started = time.monotonic()
        fp = stat_fingerprint(stored)
        digest = ""
        try:
            graph = bytearray(stored.read_graph_bytes())  # the loader empties it once parsed
            text = stored.signature_path.read_bytes()
            digest = content_hash(graph, text)
            signature = ModelSignature.loads(text.decode("utf-8"))
            loaded = LoadedModel(stored, signature, instances=self.settings.instances,
                                 intra_op_threads=self.settings.intra_op_threads,
                                 inter_op_threads=self.settings.inter_op_threads,
                                 graph_bytes=graph, weights=self.settings.weights)
            del graph
            if self.settings.warm_up:
                loaded.warm_up()
            served = ServedModel(loaded, self.settings,
                                 self.observer.version(stored.name, stored.version))
        except Exception as exc:  # TensorFlow can raise anything on a broken graph
            reason = one_line_reason(exc, stored, self.repository.root)
            with self._lock:
                entry.fingerprint, entry.content_hash = fp, digest
                if replacing and entry.served is not None:
                    entry.error = f"changed files failed to load; still serving the old: {reason}"
                else:
                    entry.state, entry.error = ModelState.FAILED, reason
            log.error("model %s version %d failed to load%s: %s", stored.name, stored.version,
                      " (the old content keeps serving)" if replacing and entry.served else "",
                      reason)
            if entry.state is ModelState.FAILED:
                self.observer.state(stored.name, stored.version, ModelState.FAILED.value)
            return
        seconds = time.monotonic() - started
        with self._lock:
            old = entry.served
            entry.served, entry.state, entry.error = served, ModelState.AVAILABLE, ""
            entry.signature, entry.loaded_at, entry.load_seconds = signature, time.time(), seconds
            entry.content_hash, entry.fingerprint = digest, fp
            entry.memory_bytes, entry.weights_bytes = loaded.memory_bytes, loaded.weights_bytes
        self.observer.loaded(stored.name, stored.version, seconds, loaded.memory_bytes)
        self.observer.state(stored.name, stored.version, ModelState.AVAILABLE.value)
        log.info("model %s version %d %s in %.2fs (sha256 %s, resident +%.1f MiB)", stored.name,
                 stored.version, "reloaded with changed files" if replacing else "loaded", seconds,
                 digest[:12], loaded.memory_bytes / 2**20)
        if old is not None:
            self._drain_later(old, "replaced")

    def _drain_later(self, served: ServedModel, why: str) -> None:
        """Close ``served`` once the requests it holds are done, in a thread of its own.

        It is already out of ``_entries``, so no new lease can reach it."""
        with self._lock:
            self._draining.add(served)

        def drain() -> None:
            held = served.in_use
            served.wait_idle()
            served.close()
            with self._lock:
                self._draining.discard(served)
            log.info("model %s version %d %s: drained (%d requests finished), closed",
                     served.name, served.version, why, held)

        threading.Thread(target=drain, name=f"tfsoap-drain-{served.name}", daemon=True).start()

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
        """True once the first pass is done and a model (every ``require_models`` one, if
        set) has a servable version."""
        if not self._loaded_once.is_set() or self._closing:
            return False
        with self._lock:
            servable = {n for (n, _), e in self._entries.items() if e.served is not None}
        if self.settings.require_models:
            return all(n in servable for n in self.settings.require_models)
        return bool(servable)

    def entries(self) -> list[VersionEntry]:
        with self._lock:
            return [self._entries[k] for k in sorted(self._entries)]

    def _versions_of(self, name: str) -> list[VersionEntry]:
        return [e for (n, _), e in sorted(self._entries.items()) if n == name]

    def model_names(self) -> list[str]:
        with self._lock:
            return sorted({k[0] for k in self._entries})

    def _servable(self, name: str, version: int | None) -> ServedModel:
        """The served version asked for (the latest servable when None); the lock is held."""
        entry = self.latest_entry(name, version)
        if entry.served is not None:
            return entry.served
        what = f"model {name!r}" if version is None else f"model {name!r} version {version}"
        loading = entry.state is ModelState.LOADING or version is None and any(
            e.state is ModelState.LOADING for e in self._versions_of(name))
        if loading:
            raise UnavailableError(f"{what} is still loading; retry later")
        raise ModelNotFoundError(f"{what} has no servable version: version "
                                 f"{entry.stored.version} failed to load ({entry.error})")

    def get(self, name: str, version: int | None = None) -> ServedModel:
        """The served version asked for, or the latest available one when ``version`` is None.

        Without a lease the version may be retired and closed while in use: requests use
        ``lease()``."""
        with self._lock:
            return self._servable(name, version)

    @contextmanager
    def lease(self, name: str, version: int | None = None) -> Iterator[ServedModel]:
        """The version to serve a request, kept open until the ``with`` block ends."""
        with self._lock:
            if self._closing:
                raise UnavailableError("the server is shutting down; retry on another instance")
            served = self._servable(name, version)
            served._acquire()  # under the registry lock: retiring takes it too
        try:
            yield served
        finally:
            served._release()

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

    def version_labels(self, name: str) -> dict[str, int]:
        """TF Serving's version labels of ``name``: the newest ``model.json`` that declares
        ``version_labels`` (``{"stable": 1, "canary": 2}``), overridden by the settings."""
        validate_name(name)
        with self._lock:
            entries = self._versions_of(name)
        if not entries:
            raise ModelNotFoundError(f"model {name!r} is not served here")
        labels: dict[str, int] = {}
        for entry in reversed(entries):
            declared = entry.signature.extra.get("version_labels") \
                if entry.signature is not None else None
            if isinstance(declared, Mapping):
                labels = {str(k): int(v) for k, v in declared.items()
                          if isinstance(v, int) and not isinstance(v, bool)}
                break
        labels.update(self.settings.version_labels.get(name, {}))
        return labels

    def resolve_label(self, name: str, label: str) -> int:
        """The version a label names; ``ModelNotFoundError`` for an unknown label."""
        labels = self.version_labels(name)
        if not _LABEL.match(label) or label not in labels:
            shown = label if _LABEL.match(label) else "(not a plain label)"
            raise ModelNotFoundError(f"model {name!r} has no version label {shown!r}; it has "
                                     f"{sorted(labels)}")
        return labels[label]

    # -- shutting down -----------------------------------------------------------------------
    def drain(self, timeout: float) -> bool:
        """Stop polling and taking requests, let the ones holding a version finish (up to
        ``timeout`` seconds), then close every session. True if all finished in time; versions
        still busy at the deadline are left open (closing them would fail their requests)."""
        self._stop.set()
        with self._lock:
            self._closing = True
            served = [e.served for e in self._entries.values() if e.served is not None]
            served += list(self._draining)
        deadline = time.monotonic() + timeout
        busy = 0
        for s in served:
            if s.wait_idle(max(0.0, deadline - time.monotonic())):
                s.close()
            else:
                busy += 1
        log.info("registry drained: %d versions closed, %d still busy", len(served) - busy, busy)
        return busy == 0

    def close(self, timeout: float = 30.0) -> None:
        """``drain(timeout)`` and forget every version."""
        self.drain(timeout)
        with self._lock:
            self._entries.clear()
