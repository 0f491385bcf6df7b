"""Load one frozen model version into its own ``tf.Graph`` and run it.

TensorFlow 2.x is used through ``tf.compat.v1`` in graph mode: a frozen ``GraphDef`` is imported
into a fresh graph and run by ``Session`` objects. ``Session.run`` is thread-safe and releases the
GIL, so one session per model serves concurrent requests; ``instances`` > 1 is an option for
models whose ops do not parallelise. Before the import, the graph's large constants become
variables initialised once per session (``graph_weights``): the weights are held about once
instead of four or five times, and what loading used is handed back to the system.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..errors import InferenceError, ModelLoadError
from ..store import ModelSignature, StoredVersion, TensorSpec, numpy_dtype
from .graph_weights import (
    MovedWeights,
    initialise,
    move_large_constants,
    release_memory,
    resident_bytes,
)

log = logging.getLogger(__name__)


def _tf() -> Any:
    import tensorflow as tf  # imported lazily: listing a store needs no TensorFlow

    return tf


def session_config(intra_op_threads: int = 0, inter_op_threads: int = 0) -> Any:
    """A ``ConfigProto`` for serving sessions (0 lets TensorFlow choose)."""
    tf = _tf()
    return tf.compat.v1.ConfigProto(intra_op_parallelism_threads=intra_op_threads,
                                    inter_op_parallelism_threads=inter_op_threads,
                                    allow_soft_placement=True)


def _op_error_summary(message: str) -> str:
    """The line of a TensorFlow error message that says what went wrong (no graph dumps)."""
    skip = ("graph execution error", "detected at node", "[[", "stack trace", "node:",
            "original stack trace", "file ")
    for line in message.splitlines():
        text = line.strip()
        if text and not text.lower().startswith(skip):
            return text[:300]
    return "TensorFlow raised an error while running the graph"


def _session_callable(session: Any, feeds: list[Any], fetches: list[Any]) -> Callable[..., Any]:
    """A function running ``fetches`` from positional ``feeds`` arrays in ``session``.

    TensorFlow's ``make_callable`` with a ``feed_list`` is ``Session.run`` with a feed dict: about
    0.1 ms of Python per run, holding the GIL, which is most of a small model's run. A callable
    made from ``CallableOptions`` (C++ ``Session::MakeCallable``, what Keras's v1 backend uses)
    skips it. Where TensorFlow refuses one (a tensor both fed and fetched) or lacks the private
    API, ``make_callable`` it is.
    """
    make = getattr(session, "_make_callable_from_options", None)
    if make is not None:
        from tensorflow.core.protobuf import config_pb2

        options = config_pb2.CallableOptions(feed=[t.name for t in feeds],
                                             fetch=[t.name for t in fetches])
        try:
            return make(options)  # type: ignore[no-any-return]
        except Exception as exc:  # TensorFlow says which; Session.run handles every case
            log.debug("no fast callable for %s: %s", options.fetch, exc)
    return session.make_callable(fetches, feed_list=feeds)  # type: ignore[no-any-return]


def _file_size(stored: StoredVersion) -> int:
    try:
        return stored.graph_path.stat().st_size
    except OSError:  # reading it will say what is wrong
        return 0


def _parse_graph(stored: StoredVersion, graph_bytes: bytes | bytearray | None,
                 weights: WeightsOptions) -> tuple[Any, MovedWeights]:
    """Read and parse the version's ``GraphDef`` and move its large constants into variables.

    A function of its own so that no local keeps the file bytes or a sub-message of the parsed
    proto (which keeps its whole arena, the full weights, alive) once the graph is imported.
    A ``bytearray`` is emptied once parsed: the caller's reference then holds nothing.
    """
    tf = _tf()
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(graph_bytes if graph_bytes is not None
                                  else stored.read_graph_bytes())
    except Exception as exc:  # protobuf raises its own DecodeError
        raise ModelLoadError(f"{stored.graph_path} is not a GraphDef: {exc}") from None
    finally:
        if isinstance(graph_bytes, bytearray):
            graph_bytes.clear()
    moved = MovedWeights()
    if weights.as_variables:
        try:
            moved = move_large_constants(graph_def, weights.min_bytes)
        except (ValueError, TypeError) as exc:  # a constant whose bytes do not fit its shape
            raise ModelLoadError(f"{stored.graph_path} has a malformed constant: {exc}") from None
    return graph_def, moved


@dataclass(frozen=True)
class WeightsOptions:
    """How a version's weights are held (see ``graph_weights``)."""

    #: Large constants become variables initialised once (False: the frozen graph as it is).
    as_variables: bool = True
    #: Constants of at least this many bytes become variables; smaller ones stay constants.
    min_bytes: int = 1024 * 1024
    #: Log a line per loading step for graphs at least this large.
    log_progress_above_bytes: int = 64 * 1024 * 1024


class _Progress:
    """Log lines for each step of loading a big model (loads of hundreds of MB take seconds)."""

    def __init__(self, what: str, size: int, enabled: bool, started: float) -> None:
        self.what, self.enabled, self.started = what, enabled, started
        if enabled:
            log.info("loading %s: %.1f MiB frozen graph", what, size / 2**20)

    def step(self, done: str) -> None:
        if self.enabled:
            log.info("loading %s: %s after %.1fs (resident %.0f MiB)", self.what, done,
                     time.monotonic() - self.started, resident_bytes() / 2**20)


class LoadedModel:
    """A frozen model version imported into its own graph, with ``instances`` sessions.

    With ``weights.as_variables`` (the default) the graph's large constants are held once, as
    variables whose buffers every session shares; ``memory_bytes`` is the resident memory the
    load added (measured; the first load in a process also carries TensorFlow's first-session
    setup) and ``weights_bytes`` the bytes moved into variables.

    ``graph_bytes``: the ``model.pb`` bytes when the caller has read them already (the registry
    hashes what it loads). Pass a ``bytearray`` to let the load free them as soon as they are
    parsed (it is emptied; its size counts as memory held before the load).
    """

    def __init__(self, stored: StoredVersion, signature: ModelSignature | None = None,
                 instances: int = 1, intra_op_threads: int = 0, inter_op_threads: int = 0,
                 graph_bytes: bytes | bytearray | None = None,
                 weights: WeightsOptions | None = None) -> None:
        tf = _tf()
        weights = weights or WeightsOptions()
        started = time.monotonic()
        release_memory()  # a baseline without freed heap that the load's own trims would return
        rss_before = resident_bytes()
        if isinstance(graph_bytes, bytearray):  # freed below: measure as if read here
            rss_before = max(0, rss_before - len(graph_bytes))
        self.name = stored.name
        self.version = stored.version
        self.signature = signature if signature is not None else stored.read_signature()
        size = len(graph_bytes) if graph_bytes is not None else _file_size(stored)
        progress = _Progress(f"model {self.name} v{self.version}", size,
                             size >= weights.log_progress_above_bytes, started)
        graph_def, moved = _parse_graph(stored, graph_bytes, weights)
        del graph_bytes
        progress.step(f"parsed, {moved.count} constants ({moved.nbytes / 2**20:.1f} MiB) "
                      "to variables")
        self.graph = tf.Graph()
        try:
            with self.graph.as_default():
                tf.compat.v1.import_graph_def(graph_def, name="")
        except (ValueError, tf.errors.OpError) as exc:
            raise ModelLoadError(f"cannot import {stored.graph_path}: {exc}") from None
        finally:
            del graph_def
            release_memory()
        progress.step("graph imported")
        self._tensors = {}
        for spec in self.signature.inputs + self.signature.outputs:
            try:
                self._tensors[spec.name] = self.graph.get_tensor_by_name(spec.name)
            except (KeyError, ValueError) as exc:
                raise ModelLoadError(
                    f"model {self.name} v{self.version}: tensor {spec.name!r} of "
                    f"{spec.alias!r} is not in the graph ({exc})") from None
        self.graph.finalize()
        config = session_config(intra_op_threads, inter_op_threads)
        self._sessions = [tf.compat.v1.Session(graph=self.graph, config=config)
                          for _ in range(max(1, instances))]
        try:
            for session in self._sessions:
                initialise(session, moved)
        except tf.errors.OpError as exc:
            self.close()
            raise ModelLoadError(f"model {self.name} v{self.version}: cannot initialise its "
                                 f"weights: {_op_error_summary(exc.message)}") from None
        self.weights_bytes = moved.nbytes
        moved.values.clear()
        del moved
        release_memory()
        if self.weights_bytes:
            progress.step("weights initialised")
        self._next = itertools.count()
        #: numpy dtype of each input placeholder: feeds must match it exactly
        self._feed_dtypes = [np.dtype(self._tensors[t.name].dtype.as_numpy_dtype)
                             for t in self.signature.inputs]
        self._callables: dict[tuple[str, ...], list[Callable[..., Any]]] = {}
        self._lock = threading.Lock()
        self._op_error = tf.errors.OpError
        self._rss_before = rss_before
        #: resident memory the load added (set again after warm-up)
        self.memory_bytes = max(0, resident_bytes() - rss_before)
        self.load_seconds = time.monotonic() - started
        self._started = started
        self._progress = progress

    @property
    def instances(self) -> int:
        return len(self._sessions)

    def _callable(self, outputs: Sequence[TensorSpec]) -> Callable[..., Any]:
        key = tuple(t.name for t in outputs)
        fns = self._callables.get(key)
        if fns is None:
            with self._lock:
                fns = self._callables.get(key)
                if fns is None:
                    feeds = [self._tensors[t.name] for t in self.signature.inputs]
                    fetches = [self._tensors[t.name] for t in outputs]
                    fns = [_session_callable(s, feeds, fetches) for s in self._sessions]
                    self._callables[key] = fns
        return fns[next(self._next) % len(fns)] if len(fns) > 1 else fns[0]

    def run(self, feeds: Mapping[str, np.ndarray],
            outputs: Sequence[TensorSpec] | None = None) -> dict[str, np.ndarray]:
        """Run the graph on ``feeds`` (by input alias); return the outputs by alias.

        The feeds are assumed checked against the signature already.
        """
        wanted = tuple(outputs) if outputs else self.signature.outputs
        fn = self._callable(wanted)
        args = [feeds[t.alias] for t in self.signature.inputs]
        for i, dt in enumerate(self._feed_dtypes):
            if args[i].dtype != dt:
                args[i] = np.asarray(args[i], dtype=dt)
        try:
            results = fn(*args)
        except self._op_error as exc:
            raise InferenceError(f"model {self.name} v{self.version} failed: "
                                 f"{_op_error_summary(exc.message)}") from None
        out: dict[str, np.ndarray] = {}
        for spec, value in zip(wanted, results):
            arr = np.asarray(value)
            if spec.dtype == "DT_STRING":
                arr = arr.astype(object)
            elif arr.dtype != numpy_dtype(spec.dtype):
                arr = arr.astype(numpy_dtype(spec.dtype))
            out[spec.alias] = arr
        return out

    def warm_up(self) -> None:
        """Run once on zeros of the signature's shapes, unknown dimensions at 1, so the first
        request does not pay for TensorFlow's lazy setup; a failure is logged, not fatal (a
        model may need real inputs).

        Then ``memory_bytes`` and ``load_seconds`` are measured again, first run included.
        """
        feeds: dict[str, np.ndarray] = {}
        for spec in self.signature.inputs:
            if spec.shape is None:
                feeds = {}
                break
            shape = tuple(1 if d == -1 else d for d in spec.shape)
            dt = numpy_dtype(spec.dtype)
            feeds[spec.alias] = (np.full(shape, b"", dtype=object) if spec.dtype == "DT_STRING"
                                 else np.zeros(shape, dtype=dt))
        if feeds or not self.signature.inputs:
            try:
                self.run(feeds)
            except InferenceError as exc:
                log.warning("warm-up of %s v%d failed: %s", self.name, self.version, exc)
        release_memory()
        self.memory_bytes = max(0, resident_bytes() - self._rss_before)
        self.load_seconds = time.monotonic() - self._started
        self._progress.step("warmed up")

    def close(self) -> None:
        for s in self._sessions:
            s.close()
