"""tfsoap's TensorFlow side; nothing here imports Spyne, lxml or anything SOAP.

- ``store``: the versioned store on disk, signatures and dtypes (no TensorFlow).
- ``serving``: loading a version into TensorFlow, the admission gate, batching, the registry.
- ``tools``: restore, freeze, convert, optimize, inspect: getting a trained model into the store.
- ``errors``: the one error tree; ``demo``: the bundled demo model's data.

TensorFlow is imported only when a model is loaded or a tool runs. The names below are what
other layers use; the model tools' functions are exported lazily (importing them needs no
TensorFlow either, but they are rarely needed by a server).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType
from typing import Any, Sequence

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
from .store import (
    BatchingConfig,
    ModelRepository,
    ModelSignature,
    StoredVersion,
    TensorSpec,
    validate_name,
)

__all__ = [
    "BatchingConfig", "ConversionError", "InferenceError", "InvalidInputError",
    "InvalidModelNameError", "ModelLoadError", "ModelNotFoundError", "ModelRepository",
    "ModelSignature", "ModelStoreError", "StoreError", "StoredVersion", "TensorSpec",
    "UnavailableError", "validate_name", "bundled_store_path",
    "convert_keras", "convert_savedmodel", "freeze_checkpoint", "freeze_restored",
    "inspect_model", "restore_scoped",
]

_TOOL_FUNCTIONS = ("convert_keras", "convert_savedmodel", "freeze_checkpoint", "freeze_restored",
                   "inspect_model", "restore_scoped")


def bundled_store_path() -> str:
    """The folder of the demo store that ships with the package (model ``digits``)."""
    from pathlib import Path

    return str(Path(__file__).resolve().parent / "demo_store")


def __getattr__(name: str) -> Any:
    if name in _TOOL_FUNCTIONS:
        from . import tools

        return getattr(tools, name)
    raise AttributeError(f"module 'model_store' has no attribute {name!r}")


# Version 0.1 documented ``model_store.freeze``, ``.convert``, ``.restore`` and ``.inspect``
# (and had every module at the top level). Those dotted names keep working: each is the same
# module object as its new home, so user code written against 0.1 does not break.
_MOVED = {
    **{m: "store." + m for m in ("repository", "signature", "dtypes")},
    **{m: "serving." + m for m in ("loader", "registry", "session_pool", "batching")},
    **{m: "tools." + m for m in ("checkpoint", "restore", "freeze", "convert", "optimize",
                                 "affine_folding", "inspect", "graph_reading", "graph_builder",
                                 "endpoints", "publish", "user_modules", "tf_failures")},
}


class _MovedModuleLoader(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: ModuleType) -> None:
        """The target module is already executed."""


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds ``model_store.<old name>`` as the module it moved to."""

    def find_spec(self, fullname: str, path: Sequence[str] | None,
                  target: ModuleType | None = None) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        if package != __name__ or name not in _MOVED:
            return None
        return importlib.machinery.ModuleSpec(
            fullname, _MovedModuleLoader(f"{__name__}.{_MOVED[name]}"))


if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())
