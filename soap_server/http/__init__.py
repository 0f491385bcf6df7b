"""The HTTP layer: the WSGI front (health probes, WSDL, body limits, request ids, routing to the
SOAP fast path or Spyne) and the HTTP server that runs it.
"""

from .server import RunningServer
from .wsgi import BodyRefused, TfsoapWsgi

__all__ = ["BodyRefused", "RunningServer", "TfsoapWsgi"]
