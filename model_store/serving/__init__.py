"""Serving what the store holds: load a version into TensorFlow, bound and batch its runs.

``loader`` (one frozen graph in a session), ``session_pool`` (the admission gate: runs in
flight and the queue with its deadline), ``batching`` (the dynamic batcher), ``registry`` (the
versions of every model, their states, reloads and drains), ``policy`` (which versions are
served), ``fingerprint`` (content hashes), ``observer`` (hooks for metrics). TensorFlow is
imported when a model loads.
"""

from .batching import BatchTicket
from .loader import WeightsOptions
from .observer import RegistryObserver, VersionObserver
from .policy import VersionPolicy
from .registry import (
    ModelRegistry,
    ModelState,
    RegistrySettings,
    ServedModel,
    VersionEntry,
    import_tensorflow,
)
from .session_pool import AdmissionGate, PoolLimits

__all__ = [
    "AdmissionGate", "BatchTicket", "ModelRegistry", "ModelState", "PoolLimits", "RegistryObserver",
    "RegistrySettings", "ServedModel", "VersionEntry", "VersionObserver", "VersionPolicy",
    "WeightsOptions", "import_tensorflow",
]
