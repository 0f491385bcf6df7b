"""TF Serving's REST API (``/v1/models/...``) on the SOAP port, over the same dataplane.

``api.RestApi`` routes and answers; ``json_tensors`` turns TF Serving's JSON tensors (row and
columnar formats, ``{"b64": ...}``) into numpy arrays of the signature's dtypes and back.
"""

from .api import HTTP_STATUS, RestApi, metadata_json
from .json_tensors import DEFAULT_SIGNATURE

__all__ = ["DEFAULT_SIGNATURE", "HTTP_STATUS", "RestApi", "metadata_json"]
