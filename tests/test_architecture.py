"""The layer rules, read from the source (every import statement, also those inside functions):

- ``model_store`` never imports ``soap_server``, Spyne, lxml or zeep;
- nothing under ``soap_server`` imports TensorFlow; the one exception is TF Serving's protobuf
  modules (``tensorflow_serving.apis.*_pb2``, ``*_pb2_grpc``) in ``soap_server.grpc``: importing
  them runs the ``tensorflow`` package's ``__init__`` (their ``tensorflow.core`` messages live
  there), which the server process has loaded for ``model_store.serving`` anyway; nothing there
  calls TensorFlow (tensors are converted with numpy);
- no import cycles between the project's modules (counting imports at module level, where a
  cycle breaks the import itself or makes its order matter);
- one package reaches into another only through its ``__init__`` (the names it exports) or its
  ``errors`` module: ``soap_server`` imports ``model_store.serving``, never
  ``model_store.serving.registry``; ``soap_server.http`` imports ``soap_server.soap``, never
  ``soap_server.soap.protocol``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("model_store", "soap_server")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((REPO / pkg).rglob("*.py"))}


def _in_type_checking(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports(name: str, path: Path) -> list[tuple[str, bool, int]]:
    """(imported module, at module level, line) for every import in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)) and _in_type_checking(node, parents):
            continue
        top_level = parents.get(node) is tree
        if isinstance(node, ast.Import):
            out += [(a.name, top_level, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((target, top_level, node.lineno))
            for alias in node.names:  # ``from . import tools`` imports the module ``tools``
                out.append((f"{target}.{alias.name}", top_level, node.lineno))
    return out


ALL = modules()
IMPORTS = {name: imports(name, path) for name, path in ALL.items()}


def _starts(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix + ".")


@pytest.mark.parametrize("forbidden", ["soap_server", "spyne", "lxml", "zeep", "tfsoap_client"])
def test_model_store_never_imports_the_soap_side(forbidden: str) -> None:
    bad = [f"{m}:{line} imports {t}" for m, imps in IMPORTS.items() if _starts(m, "model_store")
           for t, _, line in imps if _starts(t, forbidden)]
    assert not bad, bad


def test_soap_server_never_imports_tensorflow() -> None:
    bad = [f"{m}:{line} imports {t}" for m, imps in IMPORTS.items() if _starts(m, "soap_server")
           for t, _, line in imps if _starts(t, "tensorflow") or _starts(t, "keras")]
    assert not bad, bad


def test_only_soap_server_grpc_imports_tf_serving_protobufs() -> None:
    bad = [f"{m}:{line} imports {t}" for m, imps in IMPORTS.items()
           for t, _, line in imps if _starts(t, "tensorflow_serving")
           and not (_starts(m, "soap_server.grpc") and (
               t == "tensorflow_serving.apis"
               or _starts(t, "tensorflow_serving.apis") and t.endswith(("_pb2", "_pb2_grpc"))))]
    assert not bad, bad


def test_no_import_cycles_between_modules() -> None:
    graph = {m: sorted({t for t, top, _ in imps if top and t in ALL and t != m})
             for m, imps in IMPORTS.items()}
    # a package's __init__ importing its own submodules is how it exports them, not a cycle
    for m, targets in graph.items():
        graph[m] = [t for t in targets if not _starts(t, m) or ALL[m].name != "__init__.py"]
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles


def _subpackage(module: str) -> str:
    """The package a module belongs to at the level that has boundaries: ``model_store.store``,
    ``soap_server.http``, or the top package for its own top-level modules."""
    parts = module.split(".")
    if len(parts) >= 2 and (REPO / parts[0] / parts[1]).is_dir():
        return ".".join(parts[:2])
    return parts[0]


def test_packages_meet_only_through_their_exports() -> None:
    bad = []
    for m, imps in IMPORTS.items():
        home = _subpackage(m)
        for target, _, line in imps:
            if target not in ALL or ALL[target].name == "__init__.py":
                continue
            there = _subpackage(target)
            if there == home or target.endswith(".errors"):
                continue
            if there == target.split(".")[0] and home.split(".")[0] == there:
                continue  # a subpackage may use its own top package's modules (settings, app)
            bad.append(f"{m}:{line} reaches into {target} (use {there}'s exports)")
    assert not bad, "\n".join(bad)
