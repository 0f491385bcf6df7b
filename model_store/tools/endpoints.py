"""The graph tensors a frozen model takes and gives, and the aliases they get in ``model.json``.

On the command line an input or output is ``NODE``, ``NODE:INDEX`` or ``ALIAS=NODE[:INDEX]``.
Without an explicit alias, the node name is made plain: the ``--scope`` prefix is dropped, then
the last path component is used when no other tensor of the same group ends the same way
(``model_a/images`` -> ``images``); otherwise the whole name with ``/`` replaced by ``_``
(``model_a_logits``). Every alias matches ``^[A-Za-z_][A-Za-z0-9_.\\-]{0,127}$``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..errors import ConversionError
from ..store import ModelSignature, TensorSpec, from_tf
from .tf_failures import one_line

_ALIAS = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")
_NODE = re.compile(r"^[A-Za-z0-9_.][A-Za-z0-9_.\-/>]*$")


@dataclass(frozen=True)
class Endpoint:
    """A graph tensor named as an input or output, with the alias the user gave, if any."""

    tensor: str
    alias: str | None = None

    @property
    def node(self) -> str:
        return self.tensor.rsplit(":", 1)[0]

    @property
    def index(self) -> int:
        return int(self.tensor.rsplit(":", 1)[1])


def parse_endpoint(text: str) -> Endpoint:
    """``NODE``, ``NODE:INDEX`` or ``ALIAS=NODE[:INDEX]``; ``ConversionError`` if malformed."""
    alias, sep, rest = text.strip().partition("=")
    if not sep:
        alias, rest = "", alias
    alias, rest = alias.strip(), rest.strip()
    node, colon, index = rest.partition(":")
    if not node or not _NODE.match(node) or (colon and not index.isdigit()):
        raise ConversionError(f"not a graph node name: {text!r} (use NODE, NODE:INDEX or "
                              "ALIAS=NODE)")
    if sep and not _ALIAS.match(alias):
        raise ConversionError(f"alias {alias!r} is not a plain name (letters, digits, '_', '.', "
                              "'-'; not starting with a digit)")
    return Endpoint(f"{node}:{index or 0}", alias or None)


def parse_endpoints(items: Iterable[str]) -> tuple[Endpoint, ...]:
    """Parse names given as repeated options and/or comma-separated lists."""
    return tuple(parse_endpoint(part) for item in items for part in item.split(",")
                 if part.strip())


def sanitize_alias(text: str) -> str:
    """A name made to match the alias pattern: other characters become ``_``."""
    plain = re.sub(r"[^A-Za-z0-9_.\-]", "_", text) or "_"
    if not re.match(r"[A-Za-z_]", plain[0]):
        plain = "_" + plain
    return plain[:128]


def _base_name(endpoint: Endpoint, scope: str | None) -> str:
    node = endpoint.node
    if scope and node.startswith(scope.rstrip("/") + "/"):
        node = node[len(scope.rstrip("/")) + 1:]
    return node if endpoint.index == 0 else f"{node}_{endpoint.index}"


def assign_aliases(endpoints: Sequence[Endpoint], scope: str | None = None) -> list[str]:
    """The alias of each endpoint: its own, else its short name when unambiguous, else a
    sanitized full name; made unique within the group."""
    bases = [_base_name(e, scope) for e in endpoints]
    shorts = [b.rsplit("/", 1)[-1] for b in bases]
    explicit = [e.alias for e in endpoints if e.alias]
    if len(set(explicit)) != len(explicit):
        raise ConversionError(f"duplicate aliases in {explicit}")
    taken = set(explicit)
    aliases: list[str] = []
    for e, base, short in zip(endpoints, bases, shorts):
        if e.alias:
            if not _ALIAS.match(e.alias):
                raise ConversionError(f"alias {e.alias!r} is not a plain name (letters, digits, "
                                      "'_', '.', '-'; not starting with a digit)")
            aliases.append(e.alias)
            continue
        candidate = sanitize_alias(short if shorts.count(short) == 1 else base.replace("/", "_"))
        unique, n = candidate, 2
        while unique in taken:
            unique, n = f"{candidate}_{n}", n + 1
        taken.add(unique)
        aliases.append(unique)
    return aliases


def spec_of(alias: str, tensor: Any) -> TensorSpec:
    """The ``TensorSpec`` of a graph tensor: dtype name, shape with -1 / None for unknowns."""
    try:
        dtype = from_tf(tensor.dtype)
    except ValueError as exc:
        raise ConversionError(f"tensor {tensor.name} ({alias}): {exc}") from None
    shape = tensor.shape
    dims = None if shape.rank is None else tuple(-1 if d is None else int(d) for d in
                                                  shape.as_list())
    return TensorSpec(alias, tensor.name, dtype, dims)


def signature_from_graph_def(graph_def: Any, inputs: Sequence[Endpoint],
                             outputs: Sequence[Endpoint], *, scope: str | None = None,
                             labels: Sequence[str] = (), description: str = "",
                             extra: Mapping[str, Any] | None = None) -> ModelSignature:
    """Import ``graph_def`` into a fresh graph and describe ``inputs``/``outputs`` from it."""
    import tensorflow as tf

    graph = tf.Graph()
    try:
        with graph.as_default():
            tf.compat.v1.import_graph_def(graph_def, name="")
    except (ValueError, tf.errors.OpError) as exc:
        raise ConversionError(f"the frozen graph does not import: {one_line(exc)}") from exc
    groups = []
    for group in (inputs, outputs):
        specs = []
        for endpoint, alias in zip(group, assign_aliases(group, scope)):
            try:
                tensor = graph.get_tensor_by_name(endpoint.tensor)
            except (KeyError, ValueError):
                raise ConversionError(
                    f"tensor {endpoint.tensor} is not in the frozen graph") from None
            specs.append(spec_of(alias, tensor))
        groups.append(tuple(specs))
    if not groups[0]:
        raise ConversionError("the outputs depend on no placeholder: nothing to feed; name "
                              "the inputs with --input")
    return ModelSignature(groups[0], groups[1], tuple(labels), description,
                          extra=dict(extra or {}))

