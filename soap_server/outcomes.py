"""The stable outcome codes of a request, and the one table from errors to them.

The codes are the SOAP contract's fault codes: ``Client.<Code>`` (the caller's mistake) or
``Server.<Code>`` (ours). Every protocol reports them (the SOAP fault's ``faultcode`` and detail,
and the log line and metrics of every request); ``soap.faults`` builds SOAP faults from them.
"""

from __future__ import annotations

from model_store.errors import (
    InferenceError,
    InvalidInputError,
    ModelNotFoundError,
    UnavailableError,
)

MODEL_NOT_FOUND = "Client.ModelNotFound"
INVALID_INPUT = "Client.InvalidInput"
MALFORMED_REQUEST = "Client.MalformedRequest"
REQUEST_TOO_LARGE = "Client.RequestTooLarge"
UNAVAILABLE = "Server.Unavailable"
INFERENCE_ERROR = "Server.InferenceError"
INTERNAL = "Server.Internal"
#: SOAP 1.1's own fault codes (section 4.4.1), for envelopes this service cannot process at all;
#: not outcomes of an operation, so not in ``ALL_CODES`` (the clients' error tables).
MUST_UNDERSTAND = "MustUnderstand"
VERSION_MISMATCH = "VersionMismatch"
AUTHENTICATION_FAILED = "Client.AuthenticationFailed"
NOT_AUTHORIZED = "Client.NotAuthorized"
ALL_CODES = (MODEL_NOT_FOUND, INVALID_INPUT, MALFORMED_REQUEST, REQUEST_TOO_LARGE, UNAVAILABLE,
             INFERENCE_ERROR, INTERNAL, AUTHENTICATION_FAILED, NOT_AUTHORIZED)


class EdgeError(Exception):
    """Errors found at the SOAP edge, before a request reaches ``model_store``."""

    code = INTERNAL

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MalformedRequestError(EdgeError):
    """Not a well-formed SOAP request of this contract (bad XML, DOCTYPE, wrong element)."""

    code = MALFORMED_REQUEST


class RequestTooLargeError(EdgeError):
    """The request body is over the configured size limit."""

    code = REQUEST_TOO_LARGE


class MustUnderstandError(EdgeError):
    """A SOAP Header entry marked ``mustUnderstand`` that this service does not understand."""

    code = MUST_UNDERSTAND


class VersionMismatchError(EdgeError):
    """An envelope of another SOAP version (SOAP 1.2) or namespace."""

    code = VERSION_MISMATCH


class AuthenticationFailedError(EdgeError):
    """No credentials, wrong ones, an unknown user, a stale or replayed token, or a locked-out
    address: one message for all, so that nobody learns which user names exist."""

    code = AUTHENTICATION_FAILED

    def __init__(self, message: str = "authentication failed", missing: bool = False) -> None:
        super().__init__(message)
        #: True when the request carried no credentials at all (HTTP answers 401 and a challenge).
        self.missing = missing


class NotAuthorizedError(EdgeError):
    """A known caller asked for a model or an operation that none of its roles allows."""

    code = NOT_AUTHORIZED


#: The one table: error class -> fault code (first match wins, so subclasses go first).
FAULT_TABLE: tuple[tuple[type[Exception], str], ...] = (
    (ModelNotFoundError, MODEL_NOT_FOUND),
    (InvalidInputError, INVALID_INPUT),
    (UnavailableError, UNAVAILABLE),
    (InferenceError, INFERENCE_ERROR),
    (MalformedRequestError, MALFORMED_REQUEST),
    (RequestTooLargeError, REQUEST_TOO_LARGE),
    (MustUnderstandError, MUST_UNDERSTAND),
    (VersionMismatchError, VERSION_MISMATCH),
    (AuthenticationFailedError, AUTHENTICATION_FAILED),
    (NotAuthorizedError, NOT_AUTHORIZED),
)


def outcome_of(exc: BaseException) -> str:
    """The code of ``exc`` by the table (``Server.Internal`` if unmapped)."""
    for cls, code in FAULT_TABLE:
        if isinstance(exc, cls):
            return code
    named = getattr(exc, "code", None)
    return named if isinstance(named, str) and named in ALL_CODES else INTERNAL
