"""The Python client installs on its own (zeep and numpy, no TensorFlow) and works."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import venv
from pathlib import Path

from model_store.demo import bundled_samples_path, load_samples

REPO = Path(__file__).resolve().parents[2]

SCRIPT = """
import importlib.util, json, sys
import numpy as np
assert importlib.util.find_spec("tensorflow") is None, "tensorflow must not be installed"
assert importlib.util.find_spec("model_store") is None and importlib.util.find_spec("spyne") is None
from tfsoap_client import PredictClient, ModelNotFoundError
c = PredictClient(sys.argv[1])
images = np.load(sys.argv[2])["images"]
out = c.predict("digits", {"images": images})
try:
    c.predict("missing", {"images": images})
    fault = None
except ModelNotFoundError as exc:
    fault = exc.code
print(json.dumps({"classes": out["classes"].tolist(), "fault": fault,
                  "models": [m.name for m in c.list_models()],
                  "labels": list(c.metadata("digits").labels)}))
"""


def test_client_only_install_in_a_fresh_venv_without_tensorflow(server, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    str(REPO / "clients" / "python")], check=True, timeout=600)
    listing = subprocess.run([str(py), "-m", "pip", "list", "--format=json"], check=True,
                             capture_output=True, text=True).stdout
    names = {p["name"].lower() for p in json.loads(listing)}
    assert "tfsoap-client" in names and "zeep" in names and "numpy" in names
    assert not {n for n in names if n.startswith("tensorflow") or n == "spyne"}
    # the fresh venv sees only what it installed, even when this run has a PYTHONPATH
    clean_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([str(py), "-c", SCRIPT, server.url, str(bundled_samples_path())],
                         capture_output=True, text=True, timeout=120, cwd=tmp_path,
                         env=clean_env)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    _, labels = load_samples()
    assert result["classes"] == labels.tolist()
    assert result["fault"] == "Client.ModelNotFound"
    assert "digits" in result["models"] and result["labels"] == [str(i) for i in range(10)]
    assert sys.executable != str(py)
