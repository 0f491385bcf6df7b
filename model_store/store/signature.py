"""``model.json``: what a stored model takes and gives; the checks made before TF sees a request.

Example::

    {"format": 1,
     "description": "8x8 digits classifier",
     "inputs":  [{"alias": "images", "name": "images:0", "dtype": "DT_FLOAT", "shape": [-1, 64]}],
     "outputs": [{"alias": "probabilities", "name": "probs:0", "dtype": "DT_FLOAT",
                  "shape": [-1, 10]}],
     "labels": ["0", "1", "..."],
     "batching": {"max_batch_size": 32, "batch_timeout_ms": 2, "max_enqueued_batches": 64}}

``shape`` uses -1 for an unknown dimension and ``null`` for an unknown rank.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np

from ..errors import InvalidInputError, ModelLoadError
from .dtypes import NUMPY_BY_DTYPE, dtype_name

FORMAT_VERSION = 1
_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: the public alias, the graph tensor name, dtype and shape."""

    alias: str
    name: str
    dtype: str
    shape: tuple[int, ...] | None

    def to_json(self) -> dict[str, Any]:
        return {"alias": self.alias, "name": self.name, "dtype": self.dtype,
                "shape": None if self.shape is None else list(self.shape)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TensorSpec:
        try:
            alias, name, dtype = str(data["alias"]), str(data["name"]), str(data["dtype"])
            raw_shape = data.get("shape")
        except (KeyError, TypeError) as exc:
            raise ModelLoadError(f"tensor entry {data!r} lacks {exc}") from None
        if dtype not in NUMPY_BY_DTYPE:
            raise ModelLoadError(f"tensor {alias!r} has unsupported dtype {dtype!r}")
        if not _ALIAS.match(alias):
            raise ModelLoadError(f"tensor alias {alias!r} is not a plain name")
        shape = None if raw_shape is None else tuple(int(d) for d in raw_shape)
        if shape is not None and any(d < -1 for d in shape):
            raise ModelLoadError(f"tensor {alias!r} has an invalid shape {list(shape)}")
        return cls(alias, name if ":" in name else name + ":0", dtype, shape)

    @property
    def batched(self) -> bool:
        """True when the first dimension is unknown, i.e. a batch dimension."""
        return bool(self.shape) and self.shape is not None and self.shape[0] == -1

    def check(self, value: np.ndarray) -> None:
        """Raise ``InvalidInputError`` unless ``value`` fits this spec's dtype, rank and dims."""
        got = dtype_name(value.dtype)
        if got != self.dtype:
            raise InvalidInputError(
                f"input {self.alias!r} must have dtype {self.dtype}, got {got}")
        if self.shape is None:
            return
        if value.ndim != len(self.shape):
            raise InvalidInputError(
                f"input {self.alias!r} must have rank {len(self.shape)} "
                f"(shape {list(self.shape)}), got shape {list(value.shape)}")
        for axis, (want, have) in enumerate(zip(self.shape, value.shape)):
            if want != -1 and want != have:
                raise InvalidInputError(
                    f"input {self.alias!r} must have shape {list(self.shape)}, "
                    f"got {list(value.shape)} (dimension {axis} is {have}, not {want})")


@dataclass(frozen=True)
class BatchingConfig:
    """Dynamic batching settings, named as TF Serving and Triton users know them."""

    max_batch_size: int = 0
    batch_timeout_ms: float = 2.0
    max_enqueued_batches: int = 64

    @property
    def enabled(self) -> bool:
        return self.max_batch_size > 1

    def to_json(self) -> dict[str, Any]:
        return {"max_batch_size": self.max_batch_size, "batch_timeout_ms": self.batch_timeout_ms,
                "max_enqueued_batches": self.max_enqueued_batches}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> BatchingConfig | None:
        if data is None:
            return None
        try:
            cfg = cls(int(data.get("max_batch_size", 0)),
                      float(data.get("batch_timeout_ms", 2.0)),
                      int(data.get("max_enqueued_batches", 64)))
        except (TypeError, ValueError) as exc:
            raise ModelLoadError(f"invalid batching settings {data!r}: {exc}") from None
        if cfg.max_batch_size < 0 or cfg.batch_timeout_ms < 0 or cfg.max_enqueued_batches < 1:
            raise ModelLoadError(f"invalid batching settings {data!r}")
        return cfg


@dataclass(frozen=True)
class ModelSignature:
    """The content of ``model.json``."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    labels: tuple[str, ...] = ()
    description: str = ""
    batching: BatchingConfig | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.inputs or not self.outputs:
            raise ModelLoadError("a signature needs at least one input and one output")
        for group in (self.inputs, self.outputs):
            aliases = [t.alias for t in group]
            if len(set(aliases)) != len(aliases):
                raise ModelLoadError(f"duplicate tensor aliases in {aliases}")

    def input(self, alias: str) -> TensorSpec:
        for spec in self.inputs:
            if spec.alias == alias:
                return spec
        raise InvalidInputError(
            f"unknown input {alias!r}; this model takes {[t.alias for t in self.inputs]}")

    def output_specs(self, wanted: list[str] | None = None) -> tuple[TensorSpec, ...]:
        """The outputs to compute: all of them, or the ones ``wanted`` names, in that order."""
        if not wanted:
            return self.outputs
        by_alias = {t.alias: t for t in self.outputs}
        unknown = [w for w in wanted if w not in by_alias]
        if unknown:
            raise InvalidInputError(
                f"unknown output(s) {unknown}; this model gives {list(by_alias)}")
        return tuple(by_alias[w] for w in dict.fromkeys(wanted))

    def check_inputs(self, feeds: Mapping[str, np.ndarray]) -> None:
        """Raise ``InvalidInputError`` unless ``feeds`` has every input, each fitting its spec."""
        for alias in feeds:
            self.input(alias)
        missing = [t.alias for t in self.inputs if t.alias not in feeds]
        if missing:
            raise InvalidInputError(f"missing required input(s) {missing}")
        for spec in self.inputs:
            spec.check(feeds[spec.alias])
        batched = [t for t in self.inputs if t.batched]
        sizes = {feeds[t.alias].shape[0] for t in batched}
        if len(sizes) > 1:
            raise InvalidInputError(
                f"inputs {[t.alias for t in batched]} disagree on the batch size: {sorted(sizes)}")

    @property
    def batchable(self) -> bool:
        """True when every input and output has a leading batch dimension."""
        return all(t.batched for t in self.inputs + self.outputs)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"format": FORMAT_VERSION, "description": self.description,
                                "inputs": [t.to_json() for t in self.inputs],
                                "outputs": [t.to_json() for t in self.outputs]}
        if self.labels:
            data["labels"] = list(self.labels)
        if self.batching is not None:
            data["batching"] = self.batching.to_json()
        data.update(self.extra)
        return data

    def dumps(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModelSignature:
        if not isinstance(data, Mapping):
            raise ModelLoadError("model.json must hold a JSON object")
        known = {"format", "description", "inputs", "outputs", "labels", "batching"}
        try:
            return cls(
                inputs=tuple(TensorSpec.from_json(t) for t in data.get("inputs", [])),
                outputs=tuple(TensorSpec.from_json(t) for t in data.get("outputs", [])),
                labels=tuple(str(x) for x in data.get("labels", []) or []),
                description=str(data.get("description", "") or ""),
                batching=BatchingConfig.from_json(data.get("batching")),
                extra={k: v for k, v in data.items() if k not in known},
            )
        except (TypeError, AttributeError) as exc:
            raise ModelLoadError(f"malformed model.json: {exc}") from None

    @classmethod
    def loads(cls, text: str) -> ModelSignature:
        try:
            return cls.from_json(json.loads(text))
        except json.JSONDecodeError as exc:
            raise ModelLoadError(f"model.json is not valid JSON: {exc}") from None
