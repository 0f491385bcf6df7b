"""The HTTP layer: the HTTP server (granian, worker processes), the ASGI front (body limits and
deadlines, admission, health probes on the event loop) and the WSGI surface behind it (WSDL,
request ids, routing to the SOAP fast path or Spyne).
"""

from .asgi import AsgiFront
from .server import (
    RELOAD_FILE_ENV,
    ReloadWatcher,
    RunningServer,
    asgi_front,
    request_reload,
    scheme_of,
    serve_forever,
    stop_with_parent,
    url_of,
)
from .wsgi import BodyRefused, TfsoapWsgi

__all__ = ["RELOAD_FILE_ENV", "AsgiFront", "BodyRefused", "ReloadWatcher", "RunningServer",
           "TfsoapWsgi", "asgi_front", "request_reload", "scheme_of", "serve_forever",
           "stop_with_parent", "url_of"]
