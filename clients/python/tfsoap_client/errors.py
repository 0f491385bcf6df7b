"""The client's error tree, mirrored from the server's fault codes.

::

    ClientError                        base: code, message, request_id
    ├── ServerFault                    any SOAP fault the server answered
    │   ├── ModelNotFoundError         Client.ModelNotFound
    │   ├── InvalidInputError          Client.InvalidInput
    │   ├── MalformedRequestError      Client.MalformedRequest
    │   ├── RequestTooLargeError       Client.RequestTooLarge
    │   ├── AuthenticationFailedError  Client.AuthenticationFailed (no, wrong or stale credentials)
    │   ├── NotAuthorizedError         Client.NotAuthorized (the user's roles do not allow it)
    │   ├── UnavailableError           Server.Unavailable (retry later)
    │   ├── InferenceError             Server.InferenceError
    │   └── InternalServerError        Server.Internal, and any code not listed here
    └── TransportError                 no SOAP answer: connection refused, timeout, not SOAP
"""

from __future__ import annotations


class ClientError(Exception):
    """Base of every error the tfsoap client raises."""

    code = "Client.Error"

    def __init__(self, message: str, code: str | None = None, request_id: str = "") -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.request_id = request_id

    def __str__(self) -> str:
        rid = f" (request id {self.request_id})" if self.request_id else ""
        return f"{self.code}: {self.message}{rid}"


class ServerFault(ClientError):
    """The server answered with a SOAP fault."""


class ModelNotFoundError(ServerFault):
    code = "Client.ModelNotFound"


class InvalidInputError(ServerFault):
    code = "Client.InvalidInput"


class MalformedRequestError(ServerFault):
    code = "Client.MalformedRequest"


class RequestTooLargeError(ServerFault):
    code = "Client.RequestTooLarge"


class AuthenticationFailedError(ServerFault):
    code = "Client.AuthenticationFailed"


class NotAuthorizedError(ServerFault):
    code = "Client.NotAuthorized"


class UnavailableError(ServerFault):
    code = "Server.Unavailable"


class InferenceError(ServerFault):
    code = "Server.InferenceError"


class InternalServerError(ServerFault):
    code = "Server.Internal"


class TransportError(ClientError):
    """No SOAP answer came back: the server is down, too slow, or not a tfsoap server."""

    code = "Transport.Error"


FAULT_CLASSES: dict[str, type[ServerFault]] = {
    cls.code: cls for cls in (ModelNotFoundError, InvalidInputError, MalformedRequestError,
                              RequestTooLargeError, UnavailableError, InferenceError,
                              InternalServerError, AuthenticationFailedError, NotAuthorizedError)
}


def fault_class(code: str) -> type[ServerFault]:
    """The exception class for a fault code (``InternalServerError`` for unknown codes)."""
    return FAULT_CLASSES.get(code, InternalServerError)
