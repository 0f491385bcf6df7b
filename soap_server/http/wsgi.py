"""The WSGI front: health probes, the WSDL, the body size limit and request ids, then Spyne.

Routes: ``GET /healthz`` (200 once the process serves), ``GET /readyz`` (200 once a model can
serve, 503 before), ``GET /metrics`` (Prometheus), ``POST /admin/reload`` (the store reload
pass; loopback-only by default), ``GET /?wsdl`` or ``/PredictService.wsdl`` (the WSDL with
``public_url`` as its address, or else the address the client used), ``POST /`` (SOAP). A body
over the limit is refused with a ``Client.RequestTooLarge`` fault before it is read; anything
that escapes Spyne becomes a ``Server.Internal`` fault, never an HTML error page.
``/v1/models/...`` goes to TF Serving's REST API (``rest``), whose bodies are read the same way
and whose refusals are TF Serving's JSON errors (``refusal``).

Plain ``Predict`` requests take ``protocol.PredictFastPath`` instead of Spyne's pipeline. Its
XML tree and the request bytes are dropped as soon as the tensors are decoded, so a request
waiting for the model holds only its arrays; and requests of at least ``LARGE_BODY`` bytes
parse and decode a few at a time (``large_body_slots``), so many concurrent big typed requests
do not each hold a document tree of several megabytes at once.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import re
import threading
from typing import Any, Callable, Iterable

from ..dataplane import RunBlocking
from ..observability import parse_timeout_ms, request_scope
from ..outcomes import AUTHENTICATION_FAILED, NOT_AUTHORIZED, AuthenticationFailedError
from ..security import ANONYMOUS, CALLER_KEY, OPEN_POLICY, AccessPolicy, Caller, Guard
from ..soap import (
    INTERNAL,
    MALFORMED_REQUEST,
    REQUEST_ID_KEY,
    REQUEST_TOO_LARGE,
    TRIM_FROM,
    PredictCall,
    PredictFastPath,
    collect_after_big_request,
    fault_envelope,
    read_username_token,
)

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
_RID = re.compile(r"^[A-Za-z0-9._:\-]{1,64}$")
_XML = "text/xml; charset=utf-8"
#: Bodies from this size on are parsed and decoded under ``large_body_slots``.
LARGE_BODY = 64 * 1024
#: TF Serving's REST API: ``(method, path, body or BodyRefused, request id) -> (status, JSON)``.
RestHandler = Callable[[str, str, "bytes | BodyRefused", str, Caller], tuple[str, bytes]]


class BodyRefused(Exception):
    """A request body not read: its outcome code and the contract words saying why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class TfsoapWsgi:
    """The whole HTTP surface of the server as one WSGI callable."""

    def __init__(self, spyne_wsgi: Callable[..., Iterable[bytes]],
                 wsdl_for: Callable[[str], bytes], is_ready: Callable[[], bool],
                 max_body_bytes: int, fast_predict: PredictFastPath | None = None,
                 large_body_slots: int = 2, public_url: str = "",
                 metrics: Callable[[], tuple[bytes, str]] | None = None,
                 admin_reload: Callable[[], Any] | None = None,
                 admin_mode: str = "loopback", guard: Guard | None = None,
                 access: AccessPolicy = OPEN_POLICY,
                 certificate_caller: Caller | None = None,
                 rest: RestHandler | None = None) -> None:
        self.spyne_wsgi = spyne_wsgi
        #: TF Serving's REST API at ``/v1/``
        self.rest = rest
        #: ``GET /metrics``: the exposition text and its content type
        self.metrics = metrics
        #: ``POST /admin/reload``: the registry's reload pass; ``admin_mode`` says who may
        self.admin_reload = admin_reload
        self.admin_mode = admin_mode
        #: checks credentials when a users file is set; ``access`` says what a caller may do
        self.guard = guard
        self.access = access
        #: the caller of an HTTPS request without a password (``tls_client_role``: mutual TLS
        #: with certificates required vouched for it), or None
        self.certificate_caller = certificate_caller
        self.wsdl_for = wsdl_for
        self.is_ready = is_ready
        self.max_body_bytes = max_body_bytes
        self.fast_predict = fast_predict
        self.public_url = public_url
        self._large_body = threading.BoundedSemaphore(max(1, large_body_slots))
        # request ids: a random prefix per server and a counter (no random syscall per request)
        self._rid_prefix = os.urandom(4).hex()
        self._rid_counter = itertools.count(1)
        self._wsdl_cache: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def request_id(self, environ: dict[str, Any]) -> str:
        """The request's id: the client's ``X-Request-ID`` when it is a plain token, else ours.
        Kept in ``environ`` so every layer logs the same one."""
        rid = environ.get(REQUEST_ID_KEY)
        if rid:
            return str(rid)
        rid = environ.get("HTTP_X_REQUEST_ID", "")
        if not _RID.match(rid):
            rid = "%s%08x" % (self._rid_prefix, next(self._rid_counter) & 0xFFFFFFFF)
        environ[REQUEST_ID_KEY] = rid
        return str(rid)

    def probe(self, method: str, path: str,
              rid: str) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """The answer to a health probe (``/healthz``, ``/readyz``), or None for other paths.
        Cheap and lock-free, so the front answers probes without waiting for a thread."""
        if method not in ("GET", "HEAD") or path not in ("/healthz", "/readyz"):
            return None
        data: dict[str, Any]
        if path == "/healthz":
            status, data = 200, {"status": "ok"}
        else:
            ready = self.is_ready()
            status, data = (200 if ready else 503), {"ready": ready}
        body = (json.dumps(data) + "\n").encode()
        return status, [("content-type", "application/json"), ("x-request-id", rid)], body

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        rid = self.request_id(environ)
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        query = environ.get("QUERY_STRING", "")
        try:
            if self.is_rest(method, path):
                with request_scope(environ.get("REMOTE_ADDR", ""), parse_timeout_ms(
                        environ.get("HTTP_X_REQUEST_TIMEOUT_MS", ""))):
                    return self._rest(environ, start_response, method, path, rid)
            if method in ("GET", "HEAD"):
                probe = self.probe(method, path, rid)
                if probe is not None:
                    status, headers, body = probe
                    start_response(f"{status} {'OK' if status == 200 else 'Service Unavailable'}",
                                   headers + [("Content-Length", str(len(body)))])
                    return [body]
                if path == "/metrics" and self.metrics is not None:
                    denied = self.role_gate(environ, start_response, rid,
                                            self.access.metrics_role)
                    if denied is not None:
                        return denied
                    body, content_type = self.metrics()
                    start_response("200 OK", [("Content-Type", content_type),
                                              ("Content-Length", str(len(body))),
                                              ("X-Request-ID", rid)])
                    return [body]
                if query.lower().split("=")[0] == "wsdl" or path.endswith(".wsdl"):
                    return self._wsdl(environ, start_response, rid)
                return self._plain(start_response, "404 Not Found",
                                   "tfsoap PredictService: POST SOAP 1.1 requests here; the "
                                   "WSDL is at ?wsdl\n", rid)
            if method != "POST":
                log.info("request_id=%s op=- outcome=%s method=%s", rid, MALFORMED_REQUEST,
                         method[:16])
                return self._fault(start_response, MALFORMED_REQUEST,
                                   f"HTTP method {method} is not supported; use POST", rid,
                                   "405 Method Not Allowed")
            if path == "/admin/reload":
                return self._admin_reload(environ, start_response, rid)
            with request_scope(environ.get("REMOTE_ADDR", ""),
                               parse_timeout_ms(environ.get("HTTP_X_REQUEST_TIMEOUT_MS", ""))):
                return self._soap(environ, start_response, rid)
        except Exception:  # the last line of defence: a fault, never an HTML page
            log.exception("request %s failed outside Spyne", rid)
            return self._fault(start_response, INTERNAL,
                               f"internal server error (request id {rid})", rid)

    def _soap(self, environ: dict[str, Any], start_response: StartResponse,
              rid: str) -> Iterable[bytes]:
        try:
            body = self._read_body(environ, rid)
        except BodyRefused as exc:
            return self._fault(start_response, exc.code, exc.message, rid,
                               close=exc.code == REQUEST_TOO_LARGE)
        if self.guard is not None or self.certificate_caller is not None:
            denied = self._authenticate(environ, body, start_response, rid)
            if denied is not None:
                return denied
        fast = self.fast_predict
        if fast is not None and fast.enabled():
            if len(body) >= LARGE_BODY:
                with self._large_body:
                    call = fast.decode(body, environ.get("CONTENT_TYPE"), rid)
            else:
                call = fast.decode(body, environ.get("CONTENT_TYPE"), rid)
            if call is not None:
                del body  # from here on the request holds only its decoded arrays
                if isinstance(call, PredictCall):
                    ok, payload = fast.respond(call, rid, environ.get(CALLER_KEY, ANONYMOUS))
                else:
                    ok, payload = False, call
                start_response("200 OK" if ok else "500 Internal Server Error",
                               [("Content-Type", _XML), ("Content-Length", str(len(payload))),
                                ("X-Request-ID", rid)])
                return [payload]
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        captured: dict[str, Any] = {}

        def spyne_start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        chunks = b"".join(self.spyne_wsgi(environ, spyne_start))
        if len(body) >= TRIM_FROM:
            collect_after_big_request()
        headers = [(k, v) for k, v in captured.get("headers", [])
                   if k.lower() not in ("content-length", "content-type")]
        headers += [("Content-Type", _XML), ("Content-Length", str(len(chunks))),
                    ("X-Request-ID", rid)]
        start_response(captured.get("status", "500 Internal Server Error"), headers)
        return [chunks]

    async def predict_on_loop(self, environ: dict[str, Any], body: bytes, rid: str,
                              run_blocking: RunBlocking
                              ) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """A small ``Predict`` answered on the HTTP front's event loop, as ``__call__``
        would answer it: decoded and encoded here, waiting for its batch without a thread
        (``DataPlane.predict_async``). None for anything else, which ``__call__`` answers in
        a thread: another operation or path, a body of ``LARGE_BODY`` or more (parsed under
        ``large_body_slots``), or a server with callers to authenticate (a password check
        takes milliseconds by design, too long for the loop)."""
        fast = self.fast_predict
        if (fast is None or len(body) >= LARGE_BODY or self.guard is not None
                or self.certificate_caller is not None or not fast.enabled()):
            return None
        path = environ["PATH_INFO"]
        if path == "/admin/reload" or self.is_rest("POST", path):
            return None
        with request_scope(environ.get("REMOTE_ADDR", ""),
                           parse_timeout_ms(environ.get("HTTP_X_REQUEST_TIMEOUT_MS", ""))):
            call = fast.decode(body, environ.get("CONTENT_TYPE"), rid)
            if call is None:
                return None
            if isinstance(call, PredictCall):
                del body  # from here on the request holds only its decoded arrays
                ok, payload = await fast.respond_async(call, rid, ANONYMOUS, run_blocking)
            else:
                ok, payload = False, call
        return (200 if ok else 500), [("content-type", _XML), ("x-request-id", rid)], payload

    def _admin_reload(self, environ: dict[str, Any], start_response: StartResponse,
                      rid: str) -> Iterable[bytes]:
        """Run the reload pass now and answer the versions by state (JSON)."""
        peer = environ.get("REMOTE_ADDR", "")
        if self.admin_reload is None or self.admin_mode == "off":
            return self._plain(start_response, "404 Not Found", "admin reload is off\n", rid)
        if self.admin_mode == "loopback" and peer not in ("127.0.0.1", "::1"):
            log.warning("admin reload refused for %s (admin_reload=loopback)", peer)
            return self._plain(start_response, "403 Forbidden",
                               "admin reload is allowed from loopback only\n", rid)
        log.info("admin reload requested by %s (request id %s)", peer, rid)
        counts = self.admin_reload()
        return self._json(start_response, "200 OK", {"reloaded": True, "versions": counts}, rid)

    def _authenticate(self, environ: dict[str, Any], body: bytes, start_response: StartResponse,
                      rid: str) -> list[bytes] | None:
        """Put the request's ``Caller`` in ``environ`` (HTTP Basic and/or a UsernameToken in
        the SOAP header), or answer the fault: 401 with a Basic challenge when the request had
        no credentials (clients that wait for the challenge then send them), 500 with the same
        fault when they were wrong (so SOAP toolkits raise their typed fault). A request with
        no credentials over HTTPS is the ``certificate_caller`` when there is one. With
        ``trusted_proxies`` set, a client certificate a trusted proxy names in its headers is a
        credential too (``security.client_certs``)."""
        secure = environ.get("wsgi.url_scheme") == "https"
        try:
            if self.guard is None:
                raise AuthenticationFailedError(missing=True)
            peer, proxies, certificate = environ.get("REMOTE_ADDR") or "-", self.guard.proxies, None
            if proxies is not None:  # a client certificate a trusted TLS proxy verified
                certificate = proxies.certificate(peer, _header(environ, proxies.verify_header),
                                                  _header(environ, proxies.subject_header))
            environ[CALLER_KEY] = self.guard.authenticate(
                environ.get("HTTP_AUTHORIZATION"), read_username_token(body), peer, secure, rid,
                certificate)
            return None
        except AuthenticationFailedError as exc:
            if exc.missing and secure and self.certificate_caller is not None:
                environ[CALLER_KEY] = self.certificate_caller
                return None
            if self.guard is None:  # no users file: only certificates identify callers
                environ[CALLER_KEY] = ANONYMOUS
                return None
            if not exc.missing:
                return self._fault(start_response, AUTHENTICATION_FAILED, exc.message, rid)
            payload = fault_envelope(AUTHENTICATION_FAILED, exc.message, rid)
            start_response("401 Unauthorized", [
                ("Content-Type", _XML), ("Content-Length", str(len(payload))),
                ("WWW-Authenticate", 'Basic realm="tfsoap", charset="UTF-8"'),
                ("X-Request-ID", rid)])
            return [payload]

    def role_gate(self, environ: dict[str, Any], start_response: StartResponse, rid: str,
                  role: str) -> list[bytes] | None:
        """For HTTP routes other than SOAP (``/metrics`` with ``metrics_role``): None when the
        request may pass (no users file, no ``role``, or Basic credentials of a user holding
        it), else the answer to send (401 challenge, or the fault)."""
        if (self.guard is None and self.certificate_caller is None) or not role:
            return None
        denied = self._authenticate(environ, b"", start_response, rid)
        if denied is not None:
            return denied
        if role in environ[CALLER_KEY].roles:
            return None
        return self._fault(start_response, NOT_AUTHORIZED,
                           "the caller may not read this resource", rid, "403 Forbidden")

    def _read_body(self, environ: dict[str, Any], rid: str) -> bytes:
        """The request body, at most ``max_body_bytes`` (SOAP and REST read it the same way);
        ``BodyRefused`` for a bad Content-Length or a body over the limit (drained first)."""
        length_text = environ.get("CONTENT_LENGTH") or ""
        limit = self.max_body_bytes
        stream = environ["wsgi.input"]
        if length_text:
            try:
                length = int(length_text)
            except ValueError:
                log.info("request_id=%s op=- outcome=%s", rid, MALFORMED_REQUEST)
                raise BodyRefused(MALFORMED_REQUEST, "invalid Content-Length") from None
            if length > limit:
                _drain(stream, length)
                raise self._too_large(length, rid)
            return stream.read(length) if length > 0 else b""
        # chunked or unknown length: read at most one byte past the limit
        body: bytes = stream.read(limit + 1)
        if len(body) > limit:
            _drain(stream, None)
            raise self._too_large(None, rid)
        return body

    def _too_large(self, length: int | None, rid: str) -> BodyRefused:
        size = f"{length} bytes" if length is not None else "the request body"
        log.info("request_id=%s op=- outcome=%s size=%s", rid, REQUEST_TOO_LARGE, size)
        return BodyRefused(REQUEST_TOO_LARGE,
                           f"{size} is over the limit of {self.max_body_bytes} bytes")

    def is_rest(self, method: str, path: str) -> bool:
        """Whether the request is for TF Serving's REST API (``/v1/...``)."""
        return self.rest is not None and path.startswith("/v1/") and method in ("GET", "POST")

    def refusal(self, method: str, path: str, code: str, message: str,
                rid: str) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """A REST request's answer when the HTTP front refuses it before it runs (body too
        large or late, server busy): TF Serving's JSON error and status (413, 400, 503);
        None for the other paths, which get a SOAP fault."""
        if self.rest is None or not self.is_rest(method, path):
            return None
        status, payload = self.rest(method, path, BodyRefused(code, message), rid, ANONYMOUS)
        return int(status.split(" ", 1)[0]), [("content-type", "application/json"),
                                              ("x-request-id", rid)], payload

    def _rest(self, environ: dict[str, Any], start_response: StartResponse, method: str,
              path: str, rid: str) -> Iterable[bytes]:
        """TF Serving's REST API (``/v1/models/...``), translated by ``self.rest``."""
        assert self.rest is not None
        caller = ANONYMOUS
        if self.guard is not None or self.certificate_caller is not None:
            denied = self._rest_caller(environ, rid)
            if isinstance(denied, tuple):
                status, extra = denied
                payload = (json.dumps({"error": "authentication failed"}) + "\n").encode()
                start_response(status, [("Content-Type", "application/json"),
                                        ("Content-Length", str(len(payload))),
                                        ("X-Request-ID", rid), *extra])
                return [payload]
            caller = denied
        body: bytes | BodyRefused = b""
        if method == "POST":
            try:
                body = self._read_body(environ, rid)
            except BodyRefused as exc:
                body = exc
        status, payload = self.rest(method, path, body, rid, caller)
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload))),
                   ("X-Request-ID", rid)]
        if isinstance(body, BodyRefused):
            headers.append(("Connection", "close"))
        start_response(status, headers)
        return [payload]

    def _rest_caller(self, environ: dict[str, Any],
                     rid: str) -> Caller | tuple[str, list[tuple[str, str]]]:
        """The REST request's caller (HTTP Basic, or a client certificate), checked as for SOAP;
        or the status and headers of the refusal (401, with the Basic challenge when the
        request carried no credentials)."""
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            captured["status"], captured["headers"] = status, headers
            return lambda data: None

        if self._authenticate(environ, b"", capture, rid) is None:
            caller: Caller = environ[CALLER_KEY]
            return caller
        challenge = [h for h in captured.get("headers", []) if h[0] == "WWW-Authenticate"]
        return "401 Unauthorized", challenge

    def _wsdl(self, environ: dict[str, Any], start_response: StartResponse,
              rid: str) -> Iterable[bytes]:
        address = self.public_url or _base_url(environ)
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


def _header(environ: dict[str, Any], name: str) -> str | None:
    """A request header by its name (``X-SSL-Client-S-DN``), as WSGI keeps it."""
    value = environ.get("HTTP_" + name.upper().replace("-", "_"))
    return None if value is None else str(value)


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
