"""Hooks through which the registry, gates and batchers report what happens to metrics.

``model_store`` knows nothing of Prometheus: it calls these methods and
``soap_server.observability`` implements them. The defaults do nothing, so a registry without an
observer pays one attribute lookup per event.
"""

from __future__ import annotations


class VersionObserver:
    """Events of one loaded version's gate and batcher (called on request threads: be quick)."""

    def queued(self, delta: int) -> None:
        """Requests waiting for this version went up or down by ``delta``."""

    def running(self, delta: int) -> None:
        """Runs in flight on this version went up or down by ``delta``."""

    def ran(self, seconds: float) -> None:
        """One model run (single or merged batch) took ``seconds``."""

    def batched(self, rows: int) -> None:
        """One run went through the batcher with ``rows`` rows."""


class RegistryObserver:
    """Lifecycle events of a ``ModelRegistry``."""

    def version(self, name: str, version: int) -> VersionObserver:
        """The observer of one version's runs (called once when it is loaded)."""
        return NULL_VERSION_OBSERVER

    def state(self, name: str, version: int, state: str | None) -> None:
        """A version changed state; ``None`` when it left the registry."""

    def loaded(self, name: str, version: int, seconds: float, memory_bytes: int = 0) -> None:
        """A version was loaded and warmed up in ``seconds``, adding ``memory_bytes`` resident
        (measured: the process's RSS after the load minus before)."""

    def reloaded(self, outcome: str) -> None:
        """A reload pass ended: ``ok`` or ``error`` (the store could not be read)."""


NULL_VERSION_OBSERVER = VersionObserver()
NULL_OBSERVER = RegistryObserver()
