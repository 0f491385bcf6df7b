"""Fixtures for the model_store tests: small real TF models, trained once per session.

TensorFlow's C++ logs are silenced by ``TF_CPP_MIN_LOG_LEVEL=2`` only if it is set before the
process starts (``TF_CPP_MIN_LOG_LEVEL=2 pytest``); the setdefault below helps older TFs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Callable

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from soap_server.cli import main as tfsoap_main  # noqa: E402

from . import builders  # noqa: E402

Snapshot = dict[str, bytes | None]


def snapshot(root: Path) -> Snapshot | None:
    """Every folder and file under ``root`` with the files' bytes (None: no such folder)."""
    if not root.exists():
        return None
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


@pytest.fixture
def store_snapshot() -> Callable[[Path], Snapshot | None]:
    """``snapshot``: compare a store before and after a failed command."""
    return snapshot


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``tfsoap`` (``soap_server.cli.main``); return ``(exit code, stdout, stderr)``."""
    def run(*argv: str) -> tuple[int, str, str]:
        code = tfsoap_main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return code, out, err
    return run


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """An empty model store folder (not created yet: tools must create it)."""
    return tmp_path / "store"


@pytest.fixture(scope="session")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> builders.Trained:
    return builders.train_classifier(tmp_path_factory.mktemp("classifier"))


@pytest.fixture(scope="session")
def two_scopes(tmp_path_factory: pytest.TempPathFactory) -> builders.Trained:
    return builders.train_two_scopes(tmp_path_factory.mktemp("two_scopes"))


@pytest.fixture(scope="session")
def dropout_model(tmp_path_factory: pytest.TempPathFactory) -> builders.Trained:
    return builders.train_with_dropout(tmp_path_factory.mktemp("dropout"))


@pytest.fixture(scope="session")
def conv_bn(tmp_path_factory: pytest.TempPathFactory) -> builders.Trained:
    return builders.train_conv_bn(tmp_path_factory.mktemp("conv_bn"))


@pytest.fixture(scope="session")
def custom_layers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the (unregistered) custom layer module ``tfsoap_custom_layers``."""
    folder = tmp_path_factory.mktemp("custom_layers")
    builders.write_custom_layers(folder)
    return folder


@pytest.fixture(scope="session")
def custom_layers(custom_layers_dir: Path) -> ModuleType:
    return sys.modules["tfsoap_custom_layers"]


@pytest.fixture(scope="session")
def keras_custom(tmp_path_factory: pytest.TempPathFactory,
                 custom_layers: ModuleType) -> builders.Trained:
    return builders.save_keras_custom(tmp_path_factory.mktemp("keras_custom"), custom_layers)


@pytest.fixture(scope="session")
def keras_cnn(tmp_path_factory: pytest.TempPathFactory) -> builders.Trained:
    return builders.save_keras_cnn(tmp_path_factory.mktemp("keras_cnn"))


@pytest.fixture(scope="session")
def savedmodel(tmp_path_factory: pytest.TempPathFactory) -> builders.Trained:
    return builders.save_savedmodel(tmp_path_factory.mktemp("savedmodel"))
