"""Who the caller is, and what its roles let it do: per-model roles, the status and metrics
roles. Transport-free: the dataplane asks, every protocol gets the same answer.

A model with roles named in the settings may be called by a caller holding one of them; a model
not named may be called by every caller (every authenticated one, once a users file is set).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from ..outcomes import NotAuthorizedError
from ..settings import Settings, SettingsError
from .users import valid_name

#: Where the HTTP front leaves the ``Caller`` of a request in the WSGI environ.
CALLER_KEY = "tfsoap.caller"


@dataclass(frozen=True)
class Caller:
    """An authenticated user (or the anonymous caller when no users file is set)."""

    name: str
    roles: frozenset[str]
    method: str = "anonymous"
    """How it proved who it is: ``basic``, ``wsse-text``, ``wsse-digest``, ``certificate`` (a
    trusted proxy's verified client certificate), ``tls-client`` or ``anonymous``."""


ANONYMOUS = Caller("-", frozenset())


def parse_model_roles(text: str) -> dict[str, frozenset[str]]:
    """``model=role1|role2;other=role3`` (the ``model_roles`` setting) as a mapping."""
    out: dict[str, frozenset[str]] = {}
    for part in filter(None, (p.strip() for p in text.split(";"))):
        model, sep, roles = part.partition("=")
        names = [r.strip() for r in roles.split("|") if r.strip()]
        if not sep or not model.strip() or not all(valid_name(r) for r in names):
            raise SettingsError(f"model_roles: {part!r} is not model=role1|role2")
        out[model.strip()] = frozenset(names)
    return out


class AccessPolicy:
    """Which roles may call which model, read the server status and read the metrics."""

    def __init__(self, model_roles: Mapping[str, frozenset[str]], status_role: str = "",
                 metrics_role: str = "") -> None:
        self.model_roles = dict(model_roles)
        self.status_role = status_role
        self.metrics_role = metrics_role

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessPolicy:
        return cls(parse_model_roles(settings.model_roles), settings.status_role,
                   settings.metrics_role)

    def may_call(self, caller: Caller, model: str) -> bool:
        """Whether ``caller`` may call (and describe) ``model``."""
        allowed = self.model_roles.get(model)
        return allowed is None or bool(allowed & caller.roles)

    def check_model(self, caller: Caller, model: str) -> None:
        """``NotAuthorizedError`` unless ``caller`` may call ``model``."""
        if not self.may_call(caller, model):
            raise NotAuthorizedError(f"the caller may not use model {model!r}")

    def check_status(self, caller: Caller) -> None:
        """``NotAuthorizedError`` unless ``caller`` may read the server status."""
        if self.status_role and self.status_role not in caller.roles:
            raise NotAuthorizedError("the caller may not read the server status")

    def may_read_metrics(self, caller: Caller) -> bool:
        """For ``/metrics``: with ``metrics_role`` set, only callers holding it."""
        return not self.metrics_role or self.metrics_role in caller.roles


OPEN_POLICY = AccessPolicy({})
