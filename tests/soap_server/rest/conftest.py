"""A small HTTP helper for TF Serving's REST API on the test server (127.0.0.1 only)."""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit


def rest_call(url: str, method: str, path: str, body: Any = None, raw: bytes | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], dict[str, str]]:
    """``(status, JSON answer, headers by lower-case name)`` of one request; the answer must be
    a JSON object."""
    parts = urlsplit(url)
    assert parts.hostname == "127.0.0.1"
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        conn.request(method, path, body=data, headers={"Content-Type": "application/json",
                                                       **(headers or {})})
        resp = conn.getresponse()
        payload = resp.read()
        assert resp.getheader("Content-Type") == "application/json", payload[:200]
        return resp.status, json.loads(payload), {k.lower(): v for k, v in resp.getheaders()}
    finally:
        conn.close()
