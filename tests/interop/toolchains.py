"""The Java and C# demo clients, for the interop tests: find the toolchains, build the clients
from a WSDL, run them, and read what they print.

The builds run the same scripts a user runs (``clients/java/build.sh``,
``clients/csharp/build.sh``), so the READMEs' commands are tested too. A missing toolchain skips
the tests with the Debian packages to install, except on CI (``CI=true``), where it fails them.
The network props the tests point the clients at are in ``network.py``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

from tests.conftest import in_ci

REPO = Path(__file__).resolve().parents[2]
JAVA_DIR = REPO / "clients" / "java"
CSHARP_DIR = REPO / "clients" / "csharp"
COMMITTED_WSDL = REPO / "wsdl" / "PredictService.wsdl"
#: The JAX-WS runtime; its manifest's Class-Path brings JAXB, SAAJ and the rest.
JAXWS_RT = "/usr/share/java/jaxws-rt.jar"
#: Silences SAAJ's warning about its deprecated META-INF/services lookup on every call.
_SAAJ = "-Djavax.xml.soap.SAAJMetaFactory=com.sun.xml.messaging.saaj.soap.SAAJMetaFactoryImpl"


@dataclass(frozen=True)
class Toolchain:
    """Commands and files a client needs, and the Debian packages that provide them."""

    name: str
    commands: tuple[str, ...]
    files: tuple[str, ...]
    packages: str

    def missing(self) -> list[str]:
        return ([c for c in self.commands if shutil.which(c) is None]
                + [f for f in self.files if not os.path.exists(f)])

    def require(self) -> None:
        """Skip (fail on CI) unless every command and file is there."""
        missing = self.missing()
        if not missing:
            return
        message = (f"{self.name} toolchain incomplete (missing: {', '.join(missing)}); install "
                   f"it with: apt-get install -y --no-install-recommends {self.packages}")
        if in_ci():
            pytest.fail(message + " [CI=true: interop tests must run]", pytrace=False)
        pytest.skip(message)


JAVA = Toolchain(
    "Java JAX-WS", ("java", "javac", "wsimport"),
    (JAXWS_RT, "/usr/share/java/jaxws-api.jar", "/usr/share/java/jaxb-api.jar",
     "/usr/share/java/jws-api.jar"),
    "openjdk-17-jdk-headless jaxws libjaxws-java")
MONO = Toolchain("Mono", ("mono", "mcs", "wsdl", "svcutil"), (), "mono-devel")


@dataclass
class DemoRun:
    """What one run of a demo program printed, read by keyword (see PredictDemo.java)."""

    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    lines: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for line in self.stdout.splitlines():
            keyword, _, rest = line.partition(" ")
            self.lines.setdefault(keyword, []).append(rest)

    def explain(self) -> str:
        return (f"$ {' '.join(self.command)}\nexit {self.returncode} after {self.seconds:.1f}s\n"
                f"--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}")

    def first(self, keyword: str) -> str | None:
        found = self.lines.get(keyword)
        return found[0] if found else None

    def by_mode(self, keyword: str, mode: str) -> list[str]:
        for rest in self.lines.get(keyword, []):
            words = rest.split()
            if words and words[0] == mode:
                return words[1:]
        raise AssertionError(f"no '{keyword} {mode}' line\n{self.explain()}")

    def classes(self, mode: str) -> np.ndarray:
        return np.array([int(v) for v in self.by_mode("CLASSES", mode)], dtype=np.int64)

    def probabilities(self, mode: str) -> np.ndarray:
        words = self.by_mode("PROBS", mode)
        rows, cols = int(words[0]), int(words[1])
        return np.array([float(v) for v in words[2:]], dtype=np.float32).reshape(rows, cols)

    def encodings(self, mode: str) -> dict[str, str]:
        return dict(w.split("=", 1) for w in self.by_mode("ENCODING", mode))

    def fault(self) -> tuple[str, str]:
        line = self.first("FAULT")
        assert line is not None, f"no FAULT line\n{self.explain()}"
        code, _, message = line.partition(" ")
        return code, message


def run_program(command: Sequence[str], timeout: float = 120.0) -> DemoRun:
    """Run ``command``; a hang past ``timeout`` is a test failure, not a stuck suite."""
    start = time.monotonic()
    try:
        out = subprocess.run(list(command), capture_output=True, text=True, timeout=timeout,
                             stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{' '.join(command)} still running after {timeout}s "
                             f"(stdout: {exc.stdout!r})") from None
    return DemoRun(list(command), out.returncode, out.stdout, out.stderr,
                   time.monotonic() - start)


def _build(script: Path, wsdl: str, build_dir: Path) -> None:
    run = run_program(["sh", str(script), wsdl, str(build_dir)], timeout=300)
    assert run.returncode == 0, f"build failed\n{run.explain()}"


def build_java(wsdl: str, build_dir: Path) -> Path:
    """wsimport ``wsdl`` and compile PredictDemo into ``build_dir``; returns the classes dir."""
    _build(JAVA_DIR / "build.sh", wsdl, build_dir)
    return build_dir / "classes"


def java_command(classes: Path, endpoint: str, wsdl: str, images: Path,
                 *extra: str) -> list[str]:
    return ["java", _SAAJ, "-cp", f"{classes}{os.pathsep}{JAXWS_RT}", "PredictDemo",
            endpoint, wsdl, str(images), *extra]


def java_truststore(ca_cert: Path, folder: Path, password: str) -> Path:
    """A PKCS#12 truststore holding ``ca_cert``, made by ``keytool`` as the README says."""
    path = folder / "truststore.p12"
    subprocess.run(["keytool", "-importcert", "-noprompt", "-alias", "tfsoap-test-ca",
                    "-file", str(ca_cert), "-keystore", str(path),
                    "-storetype", "PKCS12", "-storepass", password],
                   check=True, capture_output=True, timeout=60)
    return path


def build_csharp(wsdl: str, build_dir: Path) -> Path:
    """Generate both proxies from ``wsdl`` and compile both demos into ``build_dir``."""
    _build(CSHARP_DIR / "build.sh", wsdl, build_dir)
    return build_dir


def csharp_command(build_dir: Path, flavour: str, endpoint: str, images: Path,
                   *extra: str) -> list[str]:
    """``flavour``: ``Asmx`` (Mono ``wsdl`` proxy) or ``Wcf`` (Mono ``svcutil`` proxy)."""
    return ["mono", str(build_dir / f"PredictDemo{flavour}.exe"), endpoint, str(images), *extra]


def by_name(url: str) -> str:
    """``url`` with ``localhost`` for ``127.0.0.1``: Mono's btls checks the server certificate
    against the URL's host as a DNS name only, so an IP address never matches the
    certificate's IP SAN (see ``test_csharp_checks_the_host_name``)."""
    return url.replace("://127.0.0.1:", "://localhost:")


def write_images(path: Path, images: np.ndarray) -> Path:
    """The demos' input format: ``rows cols`` on the first line, then float32 values (9
    significant digits: every float32 reads back exactly)."""
    images = np.asarray(images, dtype=np.float32)
    rows, cols = images.shape
    lines = [f"{rows} {cols}"] + [" ".join(f"{v:.9g}" for v in row) for row in images]
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


def assert_same_predictions(run: DemoRun, expected: dict[str, dict[str, np.ndarray]]) -> None:
    """Classes equal and probabilities close to ``expected`` (the Python client's outputs by
    input encoding), for both encodings."""
    for mode in ("typed", "packed"):
        np.testing.assert_array_equal(run.classes(mode), expected[mode]["classes"],
                                      err_msg=f"{mode} classes\n{run.explain()}")
        np.testing.assert_allclose(run.probabilities(mode), expected[mode]["probabilities"],
                                   rtol=1e-5, atol=1e-7, err_msg=f"{mode} probabilities")


def assert_clean_failure(run: DemoRun, kind: str, within_s: float) -> None:
    """The program reported ``ERROR <kind>`` on one line and exited non-zero, quickly, with no
    stack trace."""
    assert run.returncode not in (0, None), run.explain()
    error = run.first("ERROR")
    assert error is not None and error.split()[0] == kind, run.explain()
    assert run.seconds < within_s, run.explain()
    trace = [ln for ln in (run.stdout + run.stderr).splitlines()
             if ln.lstrip().startswith("at ") or "Unhandled Exception" in ln
             or "Exception in thread" in ln]
    assert not trace, run.explain()


def normalized_source(path: Path, strip: str) -> str:
    """A generated source file on one line, without comments or the attributes/annotations
    matched by ``strip``, spaced as ``f(A a, B b)``: signatures compare as plain strings."""
    text = path.read_text(encoding="utf-8")
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = re.sub(strip, " ", text)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\(\s+", "(", text)
    text = re.sub(r"\s+\)", ")", text)
    return re.sub(r"\s*,\s*", ", ", text)
