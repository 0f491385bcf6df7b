"""The HTTP layer: the HTTP server (granian, worker processes), the HTTP front (RSGI: body
limits and deadlines, admission, health probes on the event loop) and the WSGI surface behind it
(WSDL, request ids, routing to the SOAP fast path or Spyne).
"""

from .front import HttpFront
from .server import (
    RELOAD_FILE_ENV,
    ReloadWatcher,
    RunningServer,
    http_front,
    request_reload,
    scheme_of,
    serve_forever,
    stop_with_parent,
    url_of,
)
from .wsgi import BodyRefused, TfsoapWsgi

__all__ = ["RELOAD_FILE_ENV", "HttpFront", "BodyRefused", "ReloadWatcher", "RunningServer",
           "TfsoapWsgi", "http_front", "request_reload", "scheme_of", "serve_forever",
           "stop_with_parent", "url_of"]
