"""The project stays ``ruff`` and ``mypy`` clean (both come with the ``test`` extra)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_ruff_is_clean() -> None:
    if shutil.which("ruff") is None:
        pytest.skip("ruff is not installed: pip install '.[test]'")
    result = run("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    result = run(sys.executable, "-m", "mypy", "model_store", "soap_server",
                 "clients/python/tfsoap_client", "scripts")
    if "No module named mypy" in result.stderr:
        pytest.skip("mypy is not installed: pip install '.[test]'")
    assert result.returncode == 0, result.stdout + result.stderr
