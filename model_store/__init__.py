"""tfsoap's TensorFlow side: the versioned store of frozen models, and the pool that runs them.

Nothing here imports Spyne or anything SOAP. TensorFlow is imported lazily, so listing a store or
reading a signature needs no TensorFlow.
"""

from .errors import (
    ConversionError,
    InferenceError,
    InvalidInputError,
    InvalidModelNameError,
    ModelLoadError,
    ModelNotFoundError,
    ModelStoreError,
    StoreError,
    UnavailableError,
)
from .repository import ModelRepository, StoredVersion, validate_name
from .signature import BatchingConfig, ModelSignature, TensorSpec

__all__ = [
    "BatchingConfig", "ConversionError", "InferenceError", "InvalidInputError",
    "InvalidModelNameError", "ModelLoadError", "ModelNotFoundError", "ModelRepository",
    "ModelSignature", "ModelStoreError", "StoreError", "StoredVersion", "TensorSpec",
    "UnavailableError", "validate_name", "bundled_store_path",
]


def bundled_store_path() -> str:
    """The folder of the demo store that ships with the package (model ``digits``)."""
    from pathlib import Path

    return str(Path(__file__).resolve().parent / "demo_store")
