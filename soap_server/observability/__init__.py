"""Seeing what the server does: Prometheus metrics, logs, and the request context they share.

``metrics`` (``Metrics``: the registry's observer and the request counters; the multiprocess
hooks), ``logs`` (``configure_logging``: text or JSON lines), ``context`` (the peer and client
deadline of the request being served).
"""

from .context import client_deadline, parse_timeout_ms, request_peer, request_scope
from .logs import (
    ACCESS_LOGGER,
    JsonFormatter,
    access_line,
    configure_logging,
    wait_logs_written,
)
from .metrics import Metrics, mark_process_dead, prepare_multiprocess

__all__ = [
    "ACCESS_LOGGER", "JsonFormatter", "Metrics", "access_line", "client_deadline",
    "configure_logging", "mark_process_dead", "parse_timeout_ms", "prepare_multiprocess",
    "request_peer", "request_scope", "wait_logs_written",
]
