"""The SOAP contract: types, the codec between XML and numpy, the fast Predict path, faults,
the WSDL, and the Spyne service.

``types`` and ``service`` declare the contract to Spyne (which writes the WSDL and routes the
operations); ``codec`` reads and writes tensors straight from and to the XML, with
``value_lists`` reading big typed value lists from the request bytes; ``protocol`` is
the Predict fast path from request bytes to response bytes; ``faults`` maps ``model_store``'s
errors to SOAP faults in one table; ``wsdl`` post-processes Spyne's WSDL for Java and .NET
toolchains; ``namespaces`` holds the contract's names. No TensorFlow, no HTTP.
"""

from .envelope import TRIM_FROM, collect_after_big_request
from .faults import (
    INTERNAL,
    MALFORMED_REQUEST,
    REQUEST_TOO_LARGE,
    MalformedRequestError,
    ServiceFault,
    fault_code,
    fault_envelope,
    to_fault,
)
from .namespaces import PLACEHOLDER_ADDRESS, SERVICE_NAME, TNS
from .protocol import (
    REQUEST_ID_KEY,
    PredictCall,
    PredictFastPath,
    TfsoapSoap11,
    release_on_close,
    spyne_hooks,
)
from .service import PredictService
from .wsdl import build_wsdl
from .wssecurity import read_username_token

__all__ = [
    "INTERNAL", "MALFORMED_REQUEST", "PLACEHOLDER_ADDRESS", "REQUEST_ID_KEY", "REQUEST_TOO_LARGE",
    "SERVICE_NAME", "TNS", "MalformedRequestError", "PredictCall", "PredictFastPath",
    "PredictService", "ServiceFault", "TfsoapSoap11", "build_wsdl", "fault_code",
    "TRIM_FROM", "collect_after_big_request", "fault_envelope", "read_username_token",
    "release_on_close", "spyne_hooks", "to_fault",
]
