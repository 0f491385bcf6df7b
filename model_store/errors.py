"""The one error tree of ``model_store``; no transport words in it.

Every error carries a stable ``code`` (a short CamelCase word) and a human ``message``. The
serving edge (``soap_server.soap.faults``) maps these classes to protocol faults in one table.

::

    ModelStoreError
    ├── ModelNotFoundError          unknown model name or version
    ├── InvalidModelNameError       not a plain identifier (a kind of ModelNotFoundError)
    ├── InvalidInputError           a request that does not match the model's signature
    ├── UnavailableError            overloaded: queue full or deadline passed while queued
    ├── InferenceError              TensorFlow failed while running a model
    ├── ModelLoadError              a stored model version that cannot be loaded
    ├── StoreError                  the store on disk is unreadable or cannot be written
    └── ConversionError             restore / freeze / convert / inspect failed (one clear line)
"""

from __future__ import annotations


class ModelStoreError(Exception):
    """Base of every error raised by ``model_store``."""

    code = "Internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ModelNotFoundError(ModelStoreError):
    """The named model, or the named version of it, is not in the store or not servable."""

    code = "ModelNotFound"


class InvalidModelNameError(ModelNotFoundError):
    """A model name that is not a plain identifier; refused before any path is built."""

    code = "ModelNotFound"


class InvalidInputError(ModelStoreError):
    """Request inputs that do not match the model's signature (names, dtype, shape, count)."""

    code = "InvalidInput"


class UnavailableError(ModelStoreError):
    """The model is overloaded or not ready: the queue is full or the deadline passed."""

    code = "Unavailable"


class InferenceError(ModelStoreError):
    """TensorFlow raised while running the model on inputs that passed validation."""

    code = "InferenceError"


class ModelLoadError(ModelStoreError):
    """A stored model version could not be loaded (bad ``model.pb`` or ``model.json``)."""

    code = "ModelLoadError"


class StoreError(ModelStoreError):
    """The store folder cannot be read or written."""

    code = "StoreError"


class ConversionError(ModelStoreError):
    """Restoring, freezing, converting or inspecting a model failed; the message says why."""

    code = "ConversionError"
