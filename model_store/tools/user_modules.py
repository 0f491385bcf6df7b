"""Import code the user supplies: graph builders (``MODULE:CALLABLE``) and Keras custom objects.

A module is imported by its dotted name from the current working folder or ``sys.path`` (the
current folder is put first on ``sys.path`` for the import, as ``python -m`` does). A file path
ending in ``.py`` is accepted too and imported under its stem name.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Mapping

from ..errors import ConversionError
from .tf_failures import one_line


def import_user_module(spec: str) -> ModuleType:
    """Import ``spec`` (``package.module`` or ``path/to/module.py``); ``ConversionError`` if not."""
    spec = spec.strip()
    if not spec:
        raise ConversionError("empty module name")
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        if spec.endswith(".py"):
            return _import_file(Path(spec))
        return importlib.import_module(spec)
    except ConversionError:
        raise
    except ImportError as exc:
        raise ConversionError(f"cannot import module {spec!r}: {one_line(exc)}") from exc
    except Exception as exc:  # the user's module raised while being imported
        raise ConversionError(f"module {spec!r} failed while importing: "
                              f"{type(exc).__name__}: {one_line(exc)}") from exc


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise ConversionError(f"no such module file: {path}")
    name = path.stem
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ConversionError(f"cannot import {path} as a module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


def load_callable(spec: str) -> Callable[..., Any]:
    """The callable named by ``MODULE:CALLABLE`` (``CALLABLE`` may be dotted: ``Class.build``)."""
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise ConversionError(f"builder {spec!r} must be MODULE:CALLABLE")
    target: Any = import_user_module(module_name)
    for attr in attr_path.split("."):
        try:
            target = getattr(target, attr)
        except AttributeError:
            raise ConversionError(f"module {module_name!r} has no {attr_path!r}") from None
    if not callable(target):
        raise ConversionError(f"{spec!r} is not callable")
    return target  # type: ignore[no-any-return]


def custom_objects_of(spec: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """Keras ``custom_objects`` from a module name or a mapping.

    A module's ``CUSTOM_OBJECTS`` dict is used when it has one; otherwise its public classes
    and functions defined in the module itself (not imported into it).
    """
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        return dict(spec)
    module = import_user_module(spec)
    declared = getattr(module, "CUSTOM_OBJECTS", None)
    if declared is not None:
        if not isinstance(declared, Mapping):
            raise ConversionError(f"{spec}.CUSTOM_OBJECTS must be a dict of name -> object")
        return dict(declared)
    return {name: obj for name, obj in vars(module).items()
            if not name.startswith("_")
            and (inspect.isclass(obj) or inspect.isfunction(obj))
            and getattr(obj, "__module__", None) == module.__name__}
