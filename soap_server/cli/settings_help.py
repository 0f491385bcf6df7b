"""``tfsoap serve --help`` text from the docstring under each ``Settings`` field.

``soap_server/settings.py`` documents every field with a string right below it; Python keeps no
such attribute docstrings at run time, so they are read from the module's source with ``ast``.
One place to write a setting's meaning, and the flag's help cannot drift from it.
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import MISSING, Field
from functools import lru_cache
from typing import Any

from .. import settings as settings_module


@lru_cache(maxsize=1)
def field_docs() -> dict[str, str]:
    """Field name -> its docstring, on one line, without reStructuredText backquotes."""
    tree = ast.parse(inspect.getsource(settings_module))
    cls = next(node for node in tree.body
               if isinstance(node, ast.ClassDef) and node.name == "Settings")
    docs: dict[str, str] = {}
    for stmt, after in zip(cls.body, cls.body[1:]):
        if (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                and isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                and isinstance(after.value.value, str)):
            text = " ".join(after.value.value.split())
            docs[stmt.target.id] = re.sub(r"``([^`]*)``", r"\1", text)
    return docs


def help_for(f: Field[Any]) -> str:
    """The flag's help: the field's docstring and its default (argparse-escaped)."""
    default = f.default if f.default is not MISSING else None
    shown = "empty" if default == "" else str(default)
    doc = field_docs().get(f.name, "")
    text = f"{doc} (default: {shown})" if doc else f"(default: {shown})"
    return text.replace("%", "%%")
