"""The graph tensors a frozen model takes and gives, and the aliases they get in ``model.json``.

On the command line an input or output is ``NODE``, ``NODE:INDEX`` or ``ALIAS=NODE[:INDEX]``.
Without an explicit alias, the node name is made plain: the ``--scope`` prefix is dropped, then
the last path component is used when no other tensor of the same group ends the same way
(``model_a/images`` -> ``images``); otherwise the whole name with ``/`` replaced by ``_``
(``model_a_logits``). Every alias matches ``^[A-Za-z_][A-Za-z0-9_.\\-]{0,127}$``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
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



@dataclass(frozen=True)
class Renames:
    """Aliases to change after the tool named the inputs and outputs (``old -> new``), as
    ``--input-alias old=new`` and ``--output-alias old=new`` give them."""

    inputs: Mapping[str, str] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, inputs: Iterable[str] = (), outputs: Iterable[str] = ()) -> Renames:
        """From ``OLD=NEW`` items (repeated and/or comma-separated)."""
        def pairs(items: Iterable[str], flag: str) -> dict[str, str]:
            found: dict[str, str] = {}
            for part in (p.strip() for item in items for p in item.split(",")):
                if not part:
                    continue
                old, sep, new = (x.strip() for x in part.partition("="))
                if not sep or not old or not new:
                    raise ConversionError(f"{flag} takes OLD=NEW, got {part!r}")
                if not _ALIAS.match(new):
                    raise ConversionError(f"alias {new!r} is not a plain name (letters, "
                                          "digits, '_', '.', '-'; not starting with a digit)")
                found[old] = new
            return found
        return cls(pairs(inputs, "--input-alias"), pairs(outputs, "--output-alias"))

    def apply(self, signature: ModelSignature) -> ModelSignature:
        """``signature`` with the aliases renamed; ``ConversionError`` for an unknown one."""
        groups = []
        for kind, specs, renames in (("input", signature.inputs, self.inputs),
                                     ("output", signature.outputs, self.outputs)):
            have = [t.alias for t in specs]
            unknown = [old for old in renames if old not in have]
            if unknown:
                raise ConversionError(f"cannot rename {kind}(s) {unknown}: the {kind}s are "
                                      f"{have}")
            renamed = tuple(replace(t, alias=renames.get(t.alias, t.alias)) for t in specs)
            aliases = [t.alias for t in renamed]
            if len(set(aliases)) != len(aliases):
                raise ConversionError(f"renaming gives duplicate {kind} aliases: {aliases}")
            groups.append(renamed)
        return replace(signature, inputs=groups[0], outputs=groups[1])
