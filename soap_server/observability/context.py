"""What the HTTP front knows of a request that the dataplane needs: the peer and the deadline.

The front sets them for the duration of one request (``request_scope``); the dataplane reads
them, so the protocols between (fast path, Spyne) do not carry them through every signature.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

#: the client's address, for the access log
request_peer: ContextVar[str] = ContextVar("tfsoap_request_peer", default="-")
#: a ``time.monotonic()`` deadline the client asked for (``X-Request-Timeout-Ms``), or None
client_deadline: ContextVar[float | None] = ContextVar("tfsoap_client_deadline", default=None)


def parse_timeout_ms(value: str) -> float | None:
    """Seconds from an ``X-Request-Timeout-Ms`` header value; None when absent or not a
    positive integer (a bad header is ignored rather than failing the request)."""
    text = value.strip()
    if not text.isdigit() or len(text) > 9:
        return None
    ms = int(text)
    return ms / 1000.0 if ms > 0 else None


@contextmanager
def request_scope(peer: str, timeout_s: float | None) -> Iterator[None]:
    """Set the peer and deadline for the ``with`` body, and reset them after (worker threads
    serve many requests)."""
    t1 = request_peer.set(peer or "-")
    t2 = client_deadline.set(time.monotonic() + timeout_s if timeout_s else None)
    try:
        yield
    finally:
        request_peer.reset(t1)
        client_deadline.reset(t2)
