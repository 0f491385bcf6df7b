"""Put a frozen ``GraphDef`` into the store: optimise on request, write ``model.json``, report.

Every tool (``freeze``, ``convert-keras``, ``convert-savedmodel``) ends here. All checks run
before anything is written, and the write itself is ``ModelRepository.write_version`` (a
temporary folder renamed into place), so a failure leaves the store as it was.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

from ..errors import ConversionError, ModelStoreError
from ..store import (
    BatchingConfig,
    ModelRepository,
    ModelSignature,
    StoredVersion,
    validate_name,
    validate_version,
)
from .determinism import RUNS, default_values, describe_ops, random_ops, run_to_run_difference
from .endpoints import Endpoint, Renames, signature_from_graph_def

log = logging.getLogger(__name__)

Progress = Callable[[str], None]
#: Where to write: a repository, or the path of a store folder.
StoreLike = Union[ModelRepository, str, "os.PathLike[str]"]


def say(progress: Progress | None, message: str) -> None:
    """Report a step of a long operation to ``progress`` (or the log when None)."""
    if progress is not None:
        progress(message)
    else:
        log.info("%s", message)


def human_size(n: int) -> str:
    """``1536`` -> ``1.5 KB``."""
    size = float(n)
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


@dataclass(frozen=True)
class FrozenModel:
    """A frozen graph and what it was made from, not yet in the store."""

    graph_def: Any
    inputs: tuple[Endpoint, ...]
    outputs: tuple[Endpoint, ...]
    source: str
    source_kind: str
    source_bytes: int
    nodes_before: int
    scope: str | None = None
    defaults_kept: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FreezeReport:
    """What a freeze or conversion stored, and how the frozen graph compares with its source."""

    stored: StoredVersion
    signature: ModelSignature
    source: str
    source_kind: str
    source_bytes: int
    frozen_bytes: int
    nodes_before: int
    nodes_frozen: int
    nodes_optimized: int | None = None
    max_optimize_diff: float | None = None
    defaults_kept: tuple[str, ...] = ()
    seconds: float = 0.0
    #: The value each kept default holds, as text (``{"is_training": "True"}``).
    default_values: Mapping[str, str] = field(default_factory=dict)
    #: Lines the user must read: random ops kept, checks that could not run.
    warnings: tuple[str, ...] = ()

    @property
    def nodes_after(self) -> int:
        return self.nodes_optimized if self.nodes_optimized is not None else self.nodes_frozen

    @property
    def size_ratio(self) -> float:
        """Frozen bytes over source bytes (0.33: the frozen file is a third of the source)."""
        return self.frozen_bytes / self.source_bytes if self.source_bytes else float("nan")

    def lines(self) -> list[str]:
        """The short report the CLI prints."""
        nodes = f"{self.nodes_before} in the source graph -> {self.nodes_frozen} frozen"
        if self.nodes_optimized is not None:
            nodes += f" -> {self.nodes_optimized} optimized"
        out = [f"stored {self.stored.name} version {self.stored.version} in {self.stored.path}",
               f"  source   {self.source_kind} {self.source} ({human_size(self.source_bytes)})",
               f"  frozen   model.pb {human_size(self.frozen_bytes)} "
               f"({100 * self.size_ratio:.1f}% of the source)",
               f"  nodes    {nodes}"]
        for label, group in (("input ", self.signature.inputs), ("output", self.signature.outputs)):
            for t in group:
                shape = "unknown rank" if t.shape is None else list(t.shape)
                out.append(f"  {label}   {t.alias:<16} {t.name:<28} {t.dtype} {shape}")
        out += [f"  default  {name} = {self.default_values.get(name, '?')} (a "
                "PlaceholderWithDefault kept at its default value, not an input)"
                for name in self.defaults_kept]
        if self.max_optimize_diff is not None:
            out.append(f"  checked  optimized outputs match the frozen graph's "
                       f"(max abs diff {self.max_optimize_diff:.2g}; the frozen graph gave the "
                       "same outputs on two runs)")
        out += [f"  {line}" for line in self.warnings]
        out.append(f"  took     {self.seconds:.2f} s")
        return out

    def to_json(self) -> dict[str, Any]:
        return {"name": self.stored.name, "version": self.stored.version,
                "path": str(self.stored.path), "source": self.source,
                "source_kind": self.source_kind, "source_bytes": self.source_bytes,
                "frozen_bytes": self.frozen_bytes, "nodes_before": self.nodes_before,
                "nodes_frozen": self.nodes_frozen, "nodes_optimized": self.nodes_optimized,
                "signature": self.signature.to_json(), "seconds": self.seconds,
                "default_values": dict(self.default_values), "warnings": list(self.warnings)}


def read_labels(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """Labels from a text file, one per line (blank lines at the ends ignored)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConversionError(f"cannot read labels file {path}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from exc
    labels = tuple(line.strip() for line in text.strip().splitlines())
    if not labels:
        raise ConversionError(f"labels file {path} is empty")
    return labels


def check_target(store: StoreLike, name: str, version: int | None) -> ModelRepository:
    """The repository for ``store``, after checking ``name`` and ``version`` can be written
    (run first, so a bad name fails before minutes of restoring)."""
    repo = store if isinstance(store, ModelRepository) else ModelRepository(store)
    try:
        validate_name(name)
        if version is not None:
            validate_version(version)
    except ModelStoreError as exc:
        raise ConversionError(exc.message) from exc
    if version is not None and (repo.root / name / str(version)).exists():
        raise ConversionError(f"model {name!r} already has version {version} in {repo.root}: "
                              "leave out --version to add the next free one, or pick another")
    return repo


def check_random_ops(graph_def: Any, signature: ModelSignature, allow: bool,
                     progress: Progress | None) -> tuple[list[str], list[str]]:
    """``(random op names, report lines)``; ``ConversionError`` when random ops make the
    outputs vary between runs (or cannot be shown not to) and ``allow`` is false."""
    found = random_ops(graph_def)
    if not found:
        return [], []
    say(progress, f"{len(found)} random op(s) on the output path: running the graph "
                  f"{RUNS} times on the same inputs")
    diff = run_to_run_difference(graph_def, signature.inputs, signature.outputs)
    ops = describe_ops(found)
    if diff == 0.0:
        return [n for n, _ in found], [
            f"note     random op(s) {ops} are on the output path, but {RUNS} runs on the same "
            "inputs agreed (dropout at rate 0, say): kept"]
    why = "could not be run on sample inputs to check them" if diff is None else \
        f"make two runs on the same inputs differ by up to {diff:.3g}"
    if not allow:
        raise ConversionError(
            f"the outputs depend on random op(s) {ops}, which {why}: identical requests would "
            "get different answers. Freeze an inference graph (--builder, or name the "
            "training switch with --input), or pass --allow-random-ops to store it anyway")
    warning = f"WARNING  random op(s) {ops} {why}; stored anyway (--allow-random-ops): " \
              "identical requests will get different answers"
    say(progress, warning)
    return [n for n, _ in found], [warning]


def publish(frozen: FrozenModel, store: StoreLike, name: str, *,
            version: int | None = None, labels: Sequence[str] = (), description: str = "",
            optimize: bool = False, progress: Progress | None = None,
            started: float | None = None, allow_random_ops: bool = False,
            batching: BatchingConfig | None = None,
            renames: Renames | None = None) -> FreezeReport:
    """Write ``frozen`` as a new version of ``name``; the store is unchanged on any failure.

    Random ops on the output path are refused unless ``allow_random_ops`` (see
    ``determinism``); ``batching`` goes into ``model.json`` as the version's batching section;
    ``renames`` changes the aliases the tool chose.
    """
    from .optimize import optimize_graph_def, verify_same_outputs

    started = time.monotonic() if started is None else started
    repo = check_target(store, name, version)
    source = {"kind": frozen.source_kind, "file": frozen.source.rstrip("/").rsplit("/", 1)[-1],
              **frozen.extra}
    if frozen.scope:
        source["scope"] = frozen.scope
    defaults = default_values(frozen.graph_def, frozen.defaults_kept)
    if frozen.defaults_kept:
        source["defaults_kept"] = list(frozen.defaults_kept)
        source["default_values"] = defaults
    extra = {"source": source}

    def describe(graph_def: Any) -> ModelSignature:
        sig = signature_from_graph_def(graph_def, frozen.inputs, frozen.outputs,
                                       scope=frozen.scope, labels=labels,
                                       description=description, extra=extra)
        if renames is not None:
            sig = renames.apply(sig)
        if batching is not None and batching.enabled and not sig.batchable:
            unbatched = [t.alias for t in sig.inputs + sig.outputs if not t.batched]
            raise ConversionError(f"batching needs a leading batch dimension (-1) on every "
                                  f"input and output; {unbatched} have none")
        return sig if batching is None else replace(sig, batching=batching)

    signature = describe(frozen.graph_def)
    randoms, warnings = check_random_ops(frozen.graph_def, signature, allow_random_ops, progress)
    varies = bool(randoms) and warnings[0].startswith("WARNING")
    if varies:
        source["random_ops"] = randoms
    graph_def, nodes_optimized, diff = frozen.graph_def, None, None
    if optimize:
        say(progress, f"optimizing {len(graph_def.node)} nodes")
        graph_def = optimize_graph_def(graph_def, [e.node for e in frozen.inputs],
                                       [e.node for e in frozen.outputs])
        source["optimized"] = True
        signature = describe(graph_def)
        if varies:
            warnings.append("WARNING  the optimized graph was not checked against the frozen "
                            "one: their outputs are random")
        else:
            diff = verify_same_outputs(frozen.graph_def, graph_def, signature.inputs,
                                       signature.outputs)
        nodes_optimized = len(graph_def.node)
    graph_bytes = graph_def.SerializeToString()
    say(progress, f"writing {human_size(len(graph_bytes))} to {repo.root / name}")
    try:
        stored = repo.write_version(name, graph_bytes, signature, version)
    except ModelStoreError as exc:
        raise ConversionError(exc.message) from exc
    return FreezeReport(stored, signature, frozen.source, frozen.source_kind,
                        frozen.source_bytes, len(graph_bytes), frozen.nodes_before,
                        len(frozen.graph_def.node), nodes_optimized, diff, frozen.defaults_kept,
                        time.monotonic() - started, defaults, tuple(warnings))
