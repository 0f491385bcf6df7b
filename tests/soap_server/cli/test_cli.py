"""The ``tfsoap`` command line: serve, wsdl, predict, models, and settings precedence."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from model_store import bundled_store_path
from model_store.demo import load_samples
from soap_server.cli import main
from soap_server.settings import Settings, SettingsError, load_settings

REPO = Path(__file__).resolve().parents[3]


def test_wsdl_command_writes_the_committed_contract(tmp_path: Path) -> None:
    out = tmp_path / "x.wsdl"
    assert main(["wsdl", "--output", str(out)]) == 0
    assert out.read_bytes() == (REPO / "wsdl" / "PredictService.wsdl").read_bytes()


def test_models_lists_the_store(capsys, test_store: Path) -> None:
    assert main(["models", "--model-store", str(test_store), "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["affine"]["versions"] == [1, 2] and rows["affine"]["latest"] == 2
    assert "x DT_FLOAT [-1, 4]" in rows["affine"]["inputs"]
    assert main(["models"]) == 0
    assert "digits" in capsys.readouterr().out


def test_models_lists_what_a_server_serves(capsys, server) -> None:
    assert main(["models", "--url", server.url, "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["affine"]["versions"] == [1, 2] and rows["affine"]["state"] == "AVAILABLE"
    assert rows["digits"]["inputs"] == ["images DT_FLOAT [-1, 64]"]
    assert rows["digits"]["memory_bytes"] >= 0 and rows["digits"]["load_seconds"] > 0
    assert main(["models", "--url", server.url]) == 0
    assert "memory:" in capsys.readouterr().out


def test_models_on_a_missing_store_is_a_clean_error(capsys, tmp_path: Path) -> None:
    assert main(["models", "--model-store", str(tmp_path / "nope")]) == 2
    assert "tfsoap: error:" in capsys.readouterr().err


def test_predict_prints_the_outputs(server, tmp_path: Path, capsys) -> None:
    images, labels = load_samples()
    np.save(tmp_path / "images.npy", images)
    assert main(["predict", "--url", server.url, "--model", "digits",
                 "--input", f"images={tmp_path / 'images.npy'}", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["version"] == 1 and out["outputs"]["classes"] == labels.tolist()
    assert main(["predict", "--url", server.url, "--model", "affine", "--version", "1",
                 "--input", f"x={tmp_path / 'images.npy'}"]) == 1
    assert "Client.InvalidInput" in capsys.readouterr().err


def test_settings_precedence_defaults_file_env_cli(tmp_path: Path) -> None:
    cfg = tmp_path / "tfsoap.toml"
    cfg.write_text('[tfsoap]\nport = 9001\nthreads = 7\nmax-body-bytes = 1000\n')
    s = load_settings({"port": 9003}, environ={"TFSOAP_PORT": "9002", "TFSOAP_THREADS": "9"},
                      config_file=str(cfg))
    assert (s.port, s.threads, s.max_body_bytes) == (9003, 9, 1000)
    assert load_settings({}, environ={}).port == Settings().port
    with pytest.raises(SettingsError):
        load_settings({}, environ={"TFSOAP_PORT": "eighty"})
    with pytest.raises(SettingsError):
        load_settings({"threads": 0}, environ={})


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
        try:
            with urllib.request.urlopen(url + "readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("server did not become ready")


def test_serve_takes_settings_from_the_environment_and_stops_on_sigterm() -> None:
    port = free_port()
    env = dict(os.environ, TFSOAP_PORT=str(port), TFSOAP_HOST="127.0.0.1",
               TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.Popen([sys.executable, "-m", "soap_server.cli", "serve"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=REPO)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_ready(url, proc)
        from tfsoap_client import PredictClient

        images, labels = load_samples()
        assert PredictClient(url).predict("digits", {"images": images})["classes"].tolist() \
            == labels.tolist()
        assert bundled_store_path()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert f"PredictService at http://127.0.0.1:{port}/" in out
    assert "op=Predict model=digits version=1" in out and "outcome=ok" in out
