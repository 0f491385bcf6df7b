"""Which stored versions of a model are served: TF Serving's version policies.

``all`` serves every version in the store, ``latest: N`` the N highest, ``specific: [..]`` the
listed ones. The default comes from the settings; a model overrides it with a ``version_policy``
key in the ``model.json`` of its highest version (``{"latest": 2}``, ``{"specific": [1, 3]}``,
``"all"`` or the settings' text form ``"latest:2"``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence


@dataclass(frozen=True)
class VersionPolicy:
    """``kind`` is ``all``, ``latest`` (the ``count`` highest) or ``specific`` (``versions``)."""

    kind: str = "all"
    count: int = 1
    versions: tuple[int, ...] = ()

    def select(self, available: Sequence[int]) -> set[int]:
        """The versions of ``available`` this policy serves."""
        if self.kind == "latest":
            return set(sorted(available)[-self.count:])
        if self.kind == "specific":
            return set(available) & set(self.versions)
        return set(available)

    def __str__(self) -> str:
        if self.kind == "latest":
            return f"latest:{self.count}"
        if self.kind == "specific":
            return "specific:" + ",".join(str(v) for v in self.versions)
        return "all"

    @classmethod
    def parse(cls, value: Any) -> VersionPolicy:
        """From ``"all"``, ``"latest:N"``, ``"specific:1,2"`` or the JSON object forms;
        ``ValueError`` says what is wrong."""
        if isinstance(value, dict) and len(value) == 1:
            (kind, arg), = value.items()
        elif isinstance(value, str):
            kind, _, text = value.strip().partition(":")
            arg = text.strip() or None
        else:
            raise ValueError(f"version policy must be all, latest:N or specific:V,..., "
                             f"not {value!r}")
        kind = str(kind).strip().lower()
        try:
            if kind == "all":
                return cls("all")
            if kind == "latest":
                count = 1 if arg in (None, {}) else int(arg)
                if count < 1:
                    raise ValueError
                return cls("latest", count=count)
            if kind == "specific":
                items = arg.split(",") if isinstance(arg, str) else list(arg or [])
                versions = tuple(sorted({int(v) for v in items}))
                if not versions or min(versions) < 1:
                    raise ValueError
                return cls("specific", versions=versions)
        except (TypeError, ValueError):
            pass
        raise ValueError(f"version policy must be all, latest:N (N >= 1) or specific:V,... "
                         f"(positive versions), not {value!r}")
