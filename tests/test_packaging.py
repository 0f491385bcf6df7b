"""The package that ``pip install .`` builds holds every module of the source tree (a
non-editable install, as the README's first command and the container image do)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_holds_every_module_and_the_demo_model(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(tmp_path), str(REPO)], check=True, timeout=300,
                   capture_output=True)
    (wheel,) = tmp_path.glob("tfsoap-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {str(p.relative_to(REPO)) for pkg in ("model_store", "soap_server")
               for p in (REPO / pkg).rglob("*.py")}
    assert sources - names == set()
    assert "model_store/demo_store/digits/1/model.pb" in names
