"""The store on disk: versioned folders of frozen models, their signatures and dtypes.

``<store>/<model>/<version>/model.pb`` (frozen GraphDef) and ``model.json`` (the signature).
Nothing here imports TensorFlow: listing a store or reading a signature is cheap.
"""

from .dtypes import NUMPY_BY_DTYPE, SUPPORTED_DTYPES, dtype_name, from_tf, numpy_dtype
from .repository import (
    GRAPH_FILE,
    SIGNATURE_FILE,
    ModelRepository,
    StoredVersion,
    validate_name,
    validate_version,
)
from .signature import BatchingConfig, ModelSignature, TensorSpec

__all__ = [
    "GRAPH_FILE", "NUMPY_BY_DTYPE", "SIGNATURE_FILE", "SUPPORTED_DTYPES", "BatchingConfig",
    "ModelRepository", "ModelSignature", "StoredVersion", "TensorSpec", "dtype_name", "from_tf",
    "numpy_dtype", "validate_name", "validate_version",
]
