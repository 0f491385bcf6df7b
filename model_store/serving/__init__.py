"""Serving what the store holds: load a version into TensorFlow, bound and batch its runs.

``loader`` (one frozen graph in a session), ``session_pool`` (the admission gate: runs in
flight and the queue with its deadline), ``batching`` (the dynamic batcher), ``registry`` (the
versions of every model, their states, and reloads). TensorFlow is imported when a model loads.
"""

from .loader import WeightsOptions
from .registry import ModelRegistry, ModelState, RegistrySettings, ServedModel, VersionEntry
from .session_pool import AdmissionGate, PoolLimits

__all__ = [
    "AdmissionGate", "ModelRegistry", "ModelState", "PoolLimits", "RegistrySettings",
    "ServedModel", "VersionEntry", "WeightsOptions",
]
