"""The WSGI front: health probes, the WSDL, the body size limit and request ids, then Spyne.

Routes: ``GET /healthz`` (200 once the process serves), ``GET /readyz`` (200 once every model is
loaded, 503 before), ``GET /?wsdl`` or ``/PredictService.wsdl`` (the WSDL with the address the
client used), ``POST /`` (SOAP). A body over the limit is refused with a
``Client.RequestTooLarge`` fault before it is read; anything that escapes Spyne becomes a
``Server.Internal`` fault, never an HTML error page.
"""

from __future__ import annotations

import io
import json
import logging
import re
import threading
import uuid
from typing import Any, Callable, Iterable

from .faults import INTERNAL, MALFORMED_REQUEST, REQUEST_TOO_LARGE, fault_envelope
from .protocol import REQUEST_ID_KEY

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
_RID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
_XML = "text/xml; charset=utf-8"


class TfsoapWsgi:
    """The whole HTTP surface of the server as one WSGI callable."""

    def __init__(self, spyne_wsgi: Callable[..., Iterable[bytes]],
                 wsdl_for: Callable[[str], bytes], is_ready: Callable[[], bool],
                 max_body_bytes: int) -> None:
        self.spyne_wsgi = spyne_wsgi
        self.wsdl_for = wsdl_for
        self.is_ready = is_ready
        self.max_body_bytes = max_body_bytes
        self._wsdl_cache: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        rid = environ.get("HTTP_X_REQUEST_ID", "")
        if not _RID.match(rid):
            rid = uuid.uuid4().hex[:16]
        environ[REQUEST_ID_KEY] = rid
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        query = environ.get("QUERY_STRING", "")
        try:
            if method in ("GET", "HEAD"):
                if path == "/healthz":
                    return self._json(start_response, "200 OK", {"status": "ok"}, rid)
                if path == "/readyz":
                    ready = self.is_ready()
                    return self._json(start_response, "200 OK" if ready else "503 Service "
                                      "Unavailable", {"ready": ready}, rid)
                if query.lower().split("=")[0] == "wsdl" or path.endswith(".wsdl"):
                    return self._wsdl(environ, start_response, rid)
                return self._plain(start_response, "404 Not Found",
                                   "tfsoap PredictService: POST SOAP 1.1 requests here; the "
                                   "WSDL is at ?wsdl\n", rid)
            if method != "POST":
                return self._fault(start_response, MALFORMED_REQUEST,
                                   f"HTTP method {method} is not supported; use POST", rid,
                                   "405 Method Not Allowed")
            return self._soap(environ, start_response, rid)
        except Exception:  # the last line of defence: a fault, never an HTML page
            log.exception("request %s failed outside Spyne", rid)
            return self._fault(start_response, INTERNAL,
                               f"internal server error (request id {rid})", rid)

    def _soap(self, environ: dict[str, Any], start_response: StartResponse,
              rid: str) -> Iterable[bytes]:
        length_text = environ.get("CONTENT_LENGTH") or ""
        limit = self.max_body_bytes
        stream = environ["wsgi.input"]
        if length_text:
            try:
                length = int(length_text)
            except ValueError:
                return self._fault(start_response, MALFORMED_REQUEST,
                                   "invalid Content-Length", rid)
            if length > limit:
                _drain(stream, length)
                return self._too_large(start_response, length, rid)
            body = stream.read(length) if length > 0 else b""
        else:  # chunked or unknown length: read at most one byte past the limit
            body = stream.read(limit + 1)
            if len(body) > limit:
                _drain(stream, None)
                return self._too_large(start_response, None, rid)
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        captured: dict[str, Any] = {}

        def spyne_start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        chunks = b"".join(self.spyne_wsgi(environ, spyne_start))
        headers = [(k, v) for k, v in captured.get("headers", [])
                   if k.lower() not in ("content-length", "content-type")]
        headers += [("Content-Type", _XML), ("Content-Length", str(len(chunks))),
                    ("X-Request-ID", rid)]
        start_response(captured.get("status", "500 Internal Server Error"), headers)
        return [chunks]

    def _too_large(self, start_response: StartResponse, length: int | None,
                   rid: str) -> Iterable[bytes]:
        size = f"{length} bytes" if length is not None else "the request body"
        log.info("request_id=%s op=- outcome=%s size=%s", rid, REQUEST_TOO_LARGE, size)
        return self._fault(start_response, REQUEST_TOO_LARGE,
                           f"{size} is over the limit of {self.max_body_bytes} bytes", rid,
                           close=True)

    def _wsdl(self, environ: dict[str, Any], start_response: StartResponse,
              rid: str) -> Iterable[bytes]:
        address = _base_url(environ)
        with self._lock:
            doc = self._wsdl_cache.get(address)
            if doc is None:
                doc = self.wsdl_for(address)
                if len(self._wsdl_cache) < 64:
                    self._wsdl_cache[address] = doc
        start_response("200 OK", [("Content-Type", _XML), ("Content-Length", str(len(doc))),
                                  ("X-Request-ID", rid)])
        return [doc]

    @staticmethod
    def _fault(start_response: StartResponse, code: str, message: str, rid: str,
               status: str = "500 Internal Server Error", close: bool = False) -> list[bytes]:
        body = fault_envelope(code, message, rid)
        headers = [("Content-Type", _XML), ("Content-Length", str(len(body))),
                   ("X-Request-ID", rid)]
        if close:
            headers.append(("Connection", "close"))
        start_response(status, headers)
        return [body]

    @staticmethod
    def _json(start_response: StartResponse, status: str, data: dict[str, Any],
              rid: str) -> list[bytes]:
        body = (json.dumps(data) + "\n").encode()
        start_response(status, [("Content-Type", "application/json"),
                                ("Content-Length", str(len(body))), ("X-Request-ID", rid)])
        return [body]

    @staticmethod
    def _plain(start_response: StartResponse, status: str, text: str, rid: str) -> list[bytes]:
        body = text.encode()
        start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                                ("Content-Length", str(len(body))), ("X-Request-ID", rid)])
        return [body]


def _drain(stream: Any, length: int | None, cap: int = 256 * 1024 * 1024) -> None:
    """Read and drop the rest of a refused body (up to ``cap`` bytes) so that the client,
    which is still sending, reads our fault instead of a reset connection."""
    left = cap if length is None else min(length, cap)
    while left > 0:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            return
        left -= len(chunk)


def _base_url(environ: dict[str, Any]) -> str:
    scheme = environ.get("wsgi.url_scheme", "http")
    host = environ.get("HTTP_HOST") or "%s:%s" % (environ.get("SERVER_NAME", "localhost"),
                                                   environ.get("SERVER_PORT", "80"))
    if not re.match(r"^[A-Za-z0-9.\-\[\]:]{1,255}$", host):
        host = "%s:%s" % (environ.get("SERVER_NAME", "localhost"),
                          environ.get("SERVER_PORT", "80"))
    path = environ.get("SCRIPT_NAME", "") + (environ.get("PATH_INFO", "") or "/")
    if path.endswith(".wsdl"):
        path = path.rsplit("/", 1)[0] + "/"
    return f"{scheme}://{host}{path}"
