"""Shared fixtures: small real TensorFlow models written into a temporary store, and a real
tfsoap server on a free loopback port in this process.

``build_*`` helpers live in ``tests/models.py`` so benchmarks and other test packages reuse them.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from pathlib import Path  # noqa: E402
from typing import Iterator  # noqa: E402

import pytest  # noqa: E402

from model_store import ModelRepository, bundled_store_path  # noqa: E402

from .models import build_test_store  # noqa: E402


def in_ci() -> bool:
    """True on CI (``CI=true``), where interop tests must run rather than skip."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="session")
def test_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with the test models (see ``tests/models.py``), built once per session."""
    root = tmp_path_factory.mktemp("store")
    build_test_store(ModelRepository(root))
    return root


@pytest.fixture(scope="session")
def server(test_store: Path) -> Iterator[RunningServer]:  # noqa: F821
    """A real server on a free loopback port serving ``test_store`` and the demo model."""
    import shutil

    from soap_server.app import start_server
    from soap_server.settings import Settings

    shutil.copytree(Path(bundled_store_path()) / "digits", test_store / "digits",
                    dirs_exist_ok=True)
    srv = start_server(Settings(model_store=str(test_store), port=0, host="127.0.0.1",
                                threads=48, max_body_bytes=4 * 1024 * 1024,
                                request_timeout_s=20.0))
    assert srv.wait_ready(120), "test models did not load"
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def client(server: RunningServer) -> PredictClient:  # noqa: F821
    from tfsoap_client import PredictClient

    return PredictClient(server.url, timeout=30)
