"""The one settings object: defaults, then a TOML config file, then ``TFSOAP_*`` environment
variables, then command-line flags. Built once by the CLI and passed down; nothing reads the
environment at import time.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

ENV_PREFIX = "TFSOAP_"


class SettingsError(ValueError):
    """A setting with a value of the wrong type or out of range."""


@dataclass(frozen=True)
class Settings:
    """Everything the server can be told. Each field is also ``TFSOAP_<FIELD>`` in the
    environment and ``--<field>`` (with dashes) on the command line."""

    model_store: str = ""
    """Folder of the model store; empty means the bundled demo store."""
    host: str = "127.0.0.1"
    """Address to listen on; ``0.0.0.0`` for every interface."""
    port: int = 8080
    """TCP port to listen on; 0 picks a free one."""
    threads: int = 64
    """Worker threads of the HTTP server: the most connections served at once."""
    max_body_bytes: int = 32 * 1024 * 1024
    """Largest request body accepted; bigger ones get ``Client.RequestTooLarge``."""
    request_timeout_s: float = 30.0
    """How long a request may wait for a run slot before ``Server.Unavailable``."""
    max_concurrent_runs: int = 2
    """Runs in flight per model version (they share one session; each run uses every core)."""
    max_queued: int = 256
    """Requests that may wait per model version; more get ``Server.Unavailable`` at once."""
    instances: int = 1
    """Sessions per model version; they share the weights held as variables (each holds its
    own copy of the constants left in the graph)."""
    intra_op_threads: int = 0
    """TensorFlow intra-op threads per session (0: TensorFlow's choice)."""
    inter_op_threads: int = 0
    """TensorFlow inter-op threads per session (0: TensorFlow's choice)."""
    weights_as_variables: bool = True
    """Hold a frozen graph's large constants once, as variables (about 1.1x the frozen size
    instead of about 5x); off serves the frozen graph as it is. See docs/memory.md."""
    weights_as_variables_min_bytes: int = 1024 * 1024
    """Constants of at least this many bytes become variables; smaller ones stay constants."""
    log_progress_above_bytes: int = 64 * 1024 * 1024
    """Models whose ``model.pb`` is at least this large log a line per loading step."""
    batching: bool = True
    """Dynamic batching where ``model.json`` (or the settings below) turn it on."""
    max_batch_size: int = 0
    """Overrides every model's ``max_batch_size`` when above 0."""
    batch_timeout_ms: float = -1.0
    """Overrides every model's ``batch_timeout_ms`` when 0 or more."""
    max_enqueued_batches: int = 0
    """Overrides every model's ``max_enqueued_batches`` when above 0."""
    log_level: str = "INFO"
    """Python logging level of the server log."""

    def with_overrides(self, values: Mapping[str, Any]) -> Settings:
        """A copy with ``values`` (by field name, as strings or typed) applied and checked."""
        known = {f.name: f for f in fields(self)}
        changes: dict[str, Any] = {}
        for key, raw in values.items():
            if raw is None:
                continue
            if key not in known:
                raise SettingsError(f"unknown setting {key!r}")
            changes[key] = _coerce(key, known[key].type, raw)
        return dataclasses.replace(self, **changes).checked()

    def checked(self) -> Settings:
        if not 0 <= self.port <= 65535:
            raise SettingsError(f"port {self.port} is out of range")
        for name in ("threads", "max_body_bytes", "max_concurrent_runs", "instances"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1")
        if self.max_queued < 0:
            raise SettingsError("max_queued must be 0 or more")
        if self.weights_as_variables_min_bytes < 1:
            raise SettingsError("weights_as_variables_min_bytes must be at least 1")
        if self.request_timeout_s <= 0:
            raise SettingsError("request_timeout_s must be positive")
        return self


def _coerce(key: str, type_name: Any, raw: Any) -> Any:
    kind = str(type_name)
    try:
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        return str(raw)
    except (TypeError, ValueError):
        raise SettingsError(f"setting {key!r} must be {kind}, got {raw!r}") from None


def from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``TFSOAP_*`` variables as settings by field name."""
    names = {f.name for f in fields(Settings)}
    out = {}
    for key, value in environ.items():
        if key.startswith(ENV_PREFIX):
            name = key[len(ENV_PREFIX):].lower()
            if name in names:
                out[name] = value
    return out


def from_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Settings from a TOML file: top-level keys or a ``[tfsoap]`` table."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"cannot read config file {path}: {exc}") from None
    table = data.get("tfsoap", data)
    if not isinstance(table, dict):
        raise SettingsError(f"config file {path}: [tfsoap] must be a table")
    return {k.replace("-", "_"): v for k, v in table.items()}


def load_settings(cli: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None,
                  config_file: str | None = None) -> Settings:
    """Defaults < config file < environment < command line."""
    settings = Settings()
    env = os.environ if environ is None else environ
    config_file = config_file or env.get(ENV_PREFIX + "CONFIG")
    if config_file:
        settings = settings.with_overrides(from_file(config_file))
    settings = settings.with_overrides(from_environment(env))
    return settings.with_overrides(cli or {})
