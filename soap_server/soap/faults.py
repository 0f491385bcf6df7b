"""SOAP faults: the one table from error classes to fault codes, and the fault envelope.

Every fault has a ``faultcode`` ``Client.<Code>`` (the caller's mistake) or ``Server.<Code>``
(ours) and a ``detail`` holding a ``ServiceFault`` element with the same ``code``, a ``message``
and the ``request_id`` that the server log line for the request also carries. Anything not in
the table becomes ``Server.Internal`` with a generic message; its traceback goes to the log only.
"""

from __future__ import annotations

import logging
import re
from xml.sax.saxutils import escape as _escape

from spyne import Unicode
from spyne.model.fault import Fault

from ..outcomes import (  # noqa: F401  (re-exported: the fault codes are the contract's)
    ALL_CODES,
    FAULT_TABLE,
    INFERENCE_ERROR,
    INTERNAL,
    INVALID_INPUT,
    MALFORMED_REQUEST,
    MODEL_NOT_FOUND,
    REQUEST_TOO_LARGE,
    UNAVAILABLE,
    EdgeError,
    MalformedRequestError,
    RequestTooLargeError,
    outcome_of,
)
from .namespaces import SOAP_ENV, TNS

log = logging.getLogger(__name__)

class ServiceFault(Fault):
    """The fault detail declared in the WSDL for every operation."""

    __namespace__ = TNS
    __type_name__ = "ServiceFault"
    _type_info = [
        ("code", Unicode(min_occurs=1, nillable=False)),
        ("message", Unicode(min_occurs=1, nillable=False)),
        ("request_id", Unicode(min_occurs=1, nillable=False)),
    ]

    def __init__(self, code: str = INTERNAL, message: str = "", request_id: str = "") -> None:
        super().__init__(faultcode=code, faultstring=message)
        self.code = code
        self.message = message
        self.request_id = request_id


_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def escape(text: str) -> str:
    """``text`` as XML character data, with characters XML 1.0 cannot carry replaced."""
    return _escape(_NOT_XML.sub("\ufffd", text))


def fault_code(exc: BaseException) -> str:
    """The fault code of ``exc`` by the table (``Server.Internal`` if unmapped)."""
    if isinstance(exc, ServiceFault):
        return exc.code
    code = outcome_of(exc)
    if code != INTERNAL:
        return code
    if isinstance(exc, Fault):  # Spyne's own faults: its client faults are malformed requests
        return MALFORMED_REQUEST if str(exc.faultcode).startswith("Client") else INTERNAL
    return INTERNAL


def to_fault(exc: BaseException, request_id: str) -> ServiceFault:
    """Translate any exception into the ``ServiceFault`` the client gets."""
    if isinstance(exc, ServiceFault):
        if not exc.request_id:
            exc.request_id = request_id
        return exc
    code = fault_code(exc)
    if code == INTERNAL:
        log.error("request %s failed with an internal error", request_id,
                  exc_info=(type(exc), exc, exc.__traceback__))
        message = f"internal server error (request id {request_id})"
    elif isinstance(exc, Fault):
        message = str(exc.faultstring)
    else:
        message = str(exc)
    return ServiceFault(code, message[:2000], request_id)


def fault_envelope(code: str, message: str, request_id: str) -> bytes:
    """A complete SOAP 1.1 fault envelope."""
    return (
        "<?xml version='1.0' encoding='UTF-8'?>"
        f'<soap11env:Envelope xmlns:soap11env="{SOAP_ENV}"><soap11env:Body>'
        "<soap11env:Fault>"
        f"<faultcode>soap11env:{code}</faultcode>"
        f"<faultstring>{escape(message)}</faultstring>"
        f'<detail><ServiceFault xmlns="{TNS}"><code>{code}</code>'
        f"<message>{escape(message)}</message><request_id>{escape(request_id)}</request_id>"
        "</ServiceFault></detail>"
        "</soap11env:Fault></soap11env:Body></soap11env:Envelope>"
    ).encode()
