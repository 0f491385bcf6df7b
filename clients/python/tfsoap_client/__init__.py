"""Python client of tfsoap's ``PredictService`` (zeep + numpy; no TensorFlow needed)."""

from .client import (
    ModelMetadata,
    ModelSummary,
    PredictClient,
    PredictResult,
    ServerStatus,
    TensorInfo,
)
from .errors import (
    AuthenticationFailedError,
    ClientError,
    InferenceError,
    InternalServerError,
    InvalidInputError,
    MalformedRequestError,
    ModelNotFoundError,
    NotAuthorizedError,
    RequestTooLargeError,
    ServerFault,
    TransportError,
    UnavailableError,
)
from .tensors import from_wire, to_wire

__version__ = "0.1.0"

__all__ = [
    "AuthenticationFailedError", "ClientError", "InferenceError", "InternalServerError",
    "InvalidInputError", "MalformedRequestError", "ModelMetadata", "ModelNotFoundError",
    "ModelSummary", "NotAuthorizedError", "PredictClient", "PredictResult",
    "RequestTooLargeError", "ServerFault", "ServerStatus", "TensorInfo", "TransportError",
    "UnavailableError", "from_wire", "to_wire",
]
