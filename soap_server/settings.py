"""The one settings object: defaults, then a TOML config file, then ``TFSOAP_*`` environment
variables, then command-line flags. Built once by the CLI and passed down; nothing reads the
environment at import time.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from model_store.serving import VersionPolicy

ENV_PREFIX = "TFSOAP_"


class SettingsError(ValueError):
    """A setting with a value of the wrong type or out of range."""


@dataclass(frozen=True)
class Settings:
    """Everything the server can be told. Each field is also ``TFSOAP_<FIELD>`` in the
    environment and ``--<field>`` (with dashes) on the command line."""

    model_store: str = ""
    """Folder of the model store; empty means the bundled demo store."""
    follow_symlinks: str = "inside"
    """Symbolic links in the model store: ``inside`` follows those that stay in the store and
    skips (with a WARNING) those that lead out of it; ``never`` skips every one."""
    host: str = "127.0.0.1"
    """Address to listen on; ``0.0.0.0`` for every interface."""
    port: int = 8080
    """TCP port to listen on; 0 picks a free one."""
    threads: int = 64
    """Threads per worker process that run requests (decode, model run, encode); connections
    that are idle or still sending hold none."""
    workers: int = 1
    """Worker processes on the one port, each with its own registry, sessions and a copy of
    every model's weights (see docs/deploying.md to size it); crashed workers are restarted."""
    max_body_bytes: int = 32 * 1024 * 1024
    """Largest request body accepted; bigger ones get ``Client.RequestTooLarge`` as soon as the
    bytes received pass it (also for chunked bodies)."""
    header_timeout_s: float = 5.0
    """Time a connection has to send a request's line and headers (also between keep-alive
    requests); a connection that is silent or trickles is closed when it passes."""
    body_timeout_s: float = 30.0
    """Time a request has to send its whole body once its headers arrived; past it the request
    gets ``Client.MalformedRequest`` (HTTP 408) and the connection is closed."""
    max_header_bytes: int = 64 * 1024
    """Largest request line plus headers (431 or 414 above it); at least 8192."""
    max_connections: int = 4096
    """Open connections per worker process; more wait in the listen queue (a log line says so)."""
    max_pending_requests: int = 256
    """Requests per worker process that may wait for or run in the application at once; more
    get ``Server.Unavailable`` (HTTP 503) at once, so what is accepted keeps a bounded latency."""
    max_buffered_body_bytes: int = 256 * 1024 * 1024
    """Request bodies per worker process held in memory while they arrive; a request that would
    pass it gets ``Server.Unavailable`` (HTTP 503)."""
    public_url: str = ""
    """The service's address as clients reach it (``https://soap.example.com/``), written into
    the WSDL; empty: the address the client used, from its ``Host`` header when that is plain."""
    shutdown_grace_s: float = 30.0
    """On SIGTERM: how long requests in flight may take to finish before the worker exits."""
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
    """TensorFlow intra-op threads per session (0: TensorFlow's choice, one per core; with N
    ``workers``, each worker's share of the cores)."""
    inter_op_threads: int = 0
    """TensorFlow inter-op threads per session (0: TensorFlow's choice, one per core; with N
    ``workers``, each worker's share of the cores)."""
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
    # -- lifecycle and observability (docs/operations.md) --
    poll_interval_s: float = 2.0
    """Seconds between polls of the model store for added, removed and changed versions; 0
    turns polling off (SIGHUP and ``POST /admin/reload`` still reload)."""
    version_policy: str = "all"
    """Versions served per model unless its ``model.json`` says: ``all``, ``latest:N`` or
    ``specific:V,V``. ``all`` keeps 0.1's behaviour (clients may pin any stored version)."""
    require_models: str = ""
    """Comma-separated models that must have a servable version before ``/readyz`` is 200."""
    admin_reload: str = "loopback"
    """``POST /admin/reload``: ``off``, ``loopback`` (only from 127.0.0.1 / ::1) or ``on``."""
    log_format: str = "text"
    """Server log lines as ``text`` or ``json`` (one JSON object per line)."""
    access_log: bool = True
    """One log line per request (request id, operation, model, version, duration, outcome,
    peer, user), written in batches by the log handler's own thread: under 1% of a
    request's CPU (docs/operations.md). Off: count requests with ``/metrics`` alone."""
    metrics: bool = True
    """Serve Prometheus metrics at ``GET /metrics``."""
    # -- security (docs/security.md) --
    users_file: str = ""
    """TOML file of users, password hashes and roles (``tfsoap users``); empty: anonymous
    calls are accepted (and a WARNING says so at start)."""
    allow_password_text_over_http: bool = False
    """Accept passwords sent as such (HTTP Basic, UsernameToken ``PasswordText``) over plain
    HTTP; off, they are only accepted over TLS. For tests, and behind a proxy that ends TLS."""
    model_roles: str = ""
    """Roles that may call each model, ``model=role1|role2;other=role3``; the TOML file's
    ``[models.<name>] roles = [...]`` tables become this. A model not named: every caller."""
    status_role: str = ""
    """Role needed for ``GetServerStatus``; empty: every authenticated caller."""
    metrics_role: str = ""
    """Role needed to read ``/metrics``; empty: open like the health probes."""
    token_max_age_s: float = 300.0
    """Oldest UsernameToken ``Created`` (and ``wsu:Timestamp``) accepted; nonces are kept as
    long, so a replay inside the window is refused."""
    clock_skew_s: float = 60.0
    """How far in the future a token's ``Created`` may be (the callers' clocks drift)."""
    nonce_cache_size: int = 100_000
    """Most UsernameToken nonces remembered; when full of unexpired ones, digest logins are
    refused until some expire (fails closed rather than forgetting a nonce)."""
    lockout_failures: int = 10
    """Failed logins from one address within ``lockout_window_s`` after which its requests get
    ``Client.AuthenticationFailed`` without a check; 0 turns the lockout off."""
    lockout_window_s: float = 300.0
    """The window of the lockout, in seconds."""
    auth_cache_s: float = 60.0
    """How long a verified user name and password skip the slow scrypt check (kept in memory as
    a keyed SHA-256, never the password); 0: check every request."""
    tls_cert: str = ""
    """PEM certificate (with its chain) the server presents; with ``tls_key`` set, the server
    speaks only HTTPS on its port (TLS in granian's rustls)."""
    tls_key: str = ""
    """The unencrypted PEM private key of ``tls_cert`` (PKCS#8, or PKCS#1 RSA or SEC1 EC);
    readable by the server's user only."""
    tls_client_ca: str = ""
    """PEM certificate(s) of the CA that client certificates must chain to (mutual TLS, with
    ``tls_client_auth``)."""
    tls_client_auth: str = "none"
    """Client certificates: ``none``; ``optional`` (a client may send none, but one it sends
    must chain to ``tls_client_ca``); ``required`` (no valid certificate, no connection)."""
    tls_min_version: str = "1.2"
    """Oldest TLS version accepted: ``1.2`` or ``1.3``."""
    tls_client_role: str = ""
    """With ``tls_client_auth = required``: the role of a caller that sends no password (its
    certificate authenticated it). The server cannot see the certificate itself, so every
    holder of a certificate from ``tls_client_ca`` gets this one role; empty: certificate
    holders must still send a password when a users file is set."""
    trusted_proxies: str = ""
    """IP addresses or CIDR networks (comma-separated; a list in the TOML file) of TLS-terminating
    reverse proxies whose requests may name a verified client certificate in the two headers
    below, which then maps to a user by its subject (``cert_subjects`` in the users file). Empty:
    off. The headers from any other peer are ignored (with a WARNING), never trusted."""
    client_cert_verify_header: str = "X-SSL-Client-Verify"
    """The header in which a trusted proxy says whether it verified the client's certificate
    (nginx ``$ssl_client_verify``: ``SUCCESS``, ``NONE`` or ``FAILED:reason``)."""
    client_cert_subject_header: str = "X-SSL-Client-S-DN"
    """The header in which a trusted proxy passes the verified certificate's subject as RFC 4514
    text (nginx ``$ssl_client_s_dn``)."""
    version_labels: str = ""
    """TF Serving's version labels as ``model:label=version`` separated by commas
    (``digits:stable=1,digits:canary=2``); they win over a ``version_labels`` object in a
    model's ``model.json``. REST reaches them at ``/v1/models/{name}/labels/{label}``."""
    grpc_port: int = 0
    """Port of TF Serving's gRPC API (``PredictionService``, ``ModelService``); 0 leaves it off.
    TF Serving's own port is 8500. Needs ``tensorflow-serving-api`` (see the docs)."""

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
        for name in ("threads", "max_body_bytes", "max_concurrent_runs", "instances", "workers",
                     "max_connections", "max_pending_requests", "max_buffered_body_bytes"):
            if getattr(self, name) < 1:
                raise SettingsError(f"{name} must be at least 1")
        for name in ("header_timeout_s", "body_timeout_s"):
            if not 0 < getattr(self, name) <= 60:
                raise SettingsError(f"{name} must be above 0 and at most 60")
        if self.shutdown_grace_s < 0:
            raise SettingsError("shutdown_grace_s must be 0 or more")
        if self.max_header_bytes < 8192:
            raise SettingsError("max_header_bytes must be at least 8192")
        if self.public_url and not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", self.public_url):
            raise SettingsError(f"public_url must be an http(s) URL, got {self.public_url!r}")
        if self.max_queued < 0:
            raise SettingsError("max_queued must be 0 or more")
        if self.weights_as_variables_min_bytes < 1:
            raise SettingsError("weights_as_variables_min_bytes must be at least 1")
        if self.request_timeout_s <= 0:
            raise SettingsError("request_timeout_s must be positive")
        if self.poll_interval_s < 0:
            raise SettingsError("poll_interval_s must be 0 (off) or more")
        try:
            VersionPolicy.parse(self.version_policy)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
        for name, allowed in (("admin_reload", ("off", "loopback", "on")),
                              ("log_format", ("text", "json")),
                              ("follow_symlinks", ("never", "inside"))):
            if getattr(self, name) not in allowed:
                raise SettingsError(f"{name} must be one of {', '.join(allowed)}")
        if self.lockout_failures < 0 or self.nonce_cache_size < 1:
            raise SettingsError("lockout_failures must be 0 or more, nonce_cache_size 1 or more")
        if min(self.token_max_age_s, self.lockout_window_s) <= 0 or \
                min(self.clock_skew_s, self.auth_cache_s) < 0:
            raise SettingsError("token_max_age_s and lockout_window_s must be positive, "
                                "clock_skew_s and auth_cache_s 0 or more")
        self._check_tls()
        if not 0 <= self.grpc_port <= 65535:
            raise SettingsError(f"grpc_port {self.grpc_port} is out of range")
        if self.grpc_port and (self.users_file or self.tls_cert):
            raise SettingsError("grpc_port cannot be used with users_file or TLS yet: TF "
                                "Serving's gRPC API here has no authentication or TLS")
        parse_version_labels(self.version_labels)
        self._check_proxies()
        return self

    def _check_proxies(self) -> None:
        networks = parse_networks(self.trusted_proxies)
        for name in ("client_cert_verify_header", "client_cert_subject_header"):
            if not re.match(r"^[A-Za-z0-9][A-Za-z0-9-]{0,63}$", getattr(self, name)):
                raise SettingsError(f"{name} must be a header name (letters, digits, dashes)")
        if networks and not self.users_file:
            raise SettingsError("trusted_proxies maps certificate subjects to users: it needs "
                                "users_file")

    def _check_tls(self) -> None:
        if bool(self.tls_cert) != bool(self.tls_key):
            raise SettingsError("tls_cert and tls_key go together: give both or neither")
        for name, allowed in (("tls_client_auth", ("none", "optional", "required")),
                              ("tls_min_version", ("1.2", "1.3"))):
            if getattr(self, name) not in allowed:
                raise SettingsError(f"{name} must be one of {', '.join(allowed)}")
        if self.tls_client_auth != "none" and not (self.tls_cert and self.tls_client_ca):
            raise SettingsError(f"tls_client_auth = {self.tls_client_auth} needs tls_cert, "
                                "tls_key and tls_client_ca")
        if self.tls_client_ca and self.tls_client_auth == "none":
            raise SettingsError("tls_client_ca is set but tls_client_auth is none: say "
                                "optional or required")
        if self.tls_client_role and self.tls_client_auth != "required":
            raise SettingsError("tls_client_role needs tls_client_auth = required (with "
                                "optional, a request may come without a certificate)")

    @property
    def required_models(self) -> tuple[str, ...]:
        """``require_models`` as a tuple of names."""
        return tuple(n.strip() for n in self.require_models.split(",") if n.strip())


def parse_version_labels(text: str) -> dict[str, dict[str, int]]:
    """``digits:stable=1,digits:canary=2`` as ``{"digits": {"stable": 1, "canary": 2}}``."""
    out: dict[str, dict[str, int]] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        model, _, rest = item.partition(":")
        label, _, version = rest.partition("=")
        if not (model and label and version.isdigit() and int(version) > 0):
            raise SettingsError(f"version_labels entry {item!r} is not model:label=version")
        out.setdefault(model.strip(), {})[label.strip()] = int(version)
    return out


def parse_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """``trusted_proxies`` (addresses or CIDR networks, comma-separated) as networks;
    ``SettingsError`` naming the first entry that is neither."""
    out = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise SettingsError(f"trusted_proxies: {item!r} is not an IP address or a CIDR "
                                "network") from None
    return tuple(out)


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
        if isinstance(raw, list):  # a TOML list for a comma-separated setting
            return ",".join(str(item) for item in raw)
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
    out = {k.replace("-", "_"): v for k, v in table.items() if k != "models"}
    if "models" in table or "models" in data:
        out["model_roles"] = _model_roles(table.get("models", data.get("models")), path)
    return out


def _model_roles(models: Any, path: str | os.PathLike[str]) -> str:
    """``[models.<name>] roles = [...]`` tables as the ``model_roles`` setting's text."""
    if not isinstance(models, dict):
        raise SettingsError(f"config file {path}: [models] must be a table of tables")
    parts = []
    for name, table in models.items():
        roles = table.get("roles") if isinstance(table, dict) else None
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise SettingsError(f"config file {path}: [models.{name}] roles must be a list "
                                "of strings")
        parts.append(f"{name}={'|'.join(roles)}")
    return ";".join(parts)


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
