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
    digits = rows["digits"]["version_states"][0]
    assert digits["memory_bytes"] >= 0 and digits["load_seconds"] > 0
    assert digits["weights_bytes"] >= 0
    assert main(["models", "--url", server.url]) == 0
    assert " MiB (measured)" in capsys.readouterr().out


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
                 "--input", f"x={tmp_path / 'images.npy'}"]) == 2
    err = capsys.readouterr().err
    assert "Client.InvalidInput" in err and len(err.strip().splitlines()) == 1


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


def test_every_client_command_error_is_one_line_and_status_2(server, tmp_path: Path,
                                                            capsys) -> None:
    np.save(tmp_path / "x.npy", np.zeros((1, 4), np.float32))
    closed = "http://127.0.0.1:9/"  # discard port: nothing listens
    cases = [
        ["predict", "--url", server.url, "--model", "nope", "--input", f"x={tmp_path / 'x.npy'}"],
        ["predict", "--url", server.url, "--model", "affine", "--input", "x"],
        ["predict", "--url", server.url, "--model", "affine",
         "--input", f"x={tmp_path / 'missing.npy'}"],
        ["predict", "--url", closed, "--model", "affine", "--input", f"x={tmp_path / 'x.npy'}",
         "--timeout", "5"],
        ["models", "--url", closed],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("tfsoap: error: "), (argv, err)


def test_a_corrupt_model_json_is_named_and_the_rest_still_listed(tmp_path: Path,
                                                                 test_store: Path,
                                                                 capsys) -> None:
    import shutil

    store = tmp_path / "store"
    shutil.copytree(test_store / "affine", store / "affine")
    shutil.copytree(test_store / "scalar", store / "scalar")
    (store / "affine" / "2" / "model.json").write_text("{not json")
    assert main(["models", "--model-store", str(store)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("tfsoap: error: model 'affine' version 2 (affine/2/model.json): ")
    assert "scalar" in captured.out


def test_serve_help_explains_each_setting_from_its_docstring(capsys) -> None:
    from dataclasses import fields

    from soap_server.cli.settings_help import field_docs

    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    docs = field_docs()
    assert set(docs) == {f.name for f in fields(Settings)}
    for name, doc in docs.items():
        assert " ".join(doc.split()) in text, name
    assert "(default '')" not in text and "(default -1.0)" not in text
    assert "Overrides every model's batch_timeout_ms when 0 or more. (default: -1.0)" in text


def test_workers_share_the_cores_among_their_tensorflow_threads() -> None:
    from soap_server.app import registry_settings

    cores = len(os.sched_getaffinity(0))
    one = registry_settings(Settings(workers=1))
    assert (one.intra_op_threads, one.inter_op_threads) == (0, 0)  # TensorFlow's choice
    for workers in (2, 3, 64):
        share = max(1, cores // workers)
        got = registry_settings(Settings(workers=workers))
        assert (got.intra_op_threads, got.inter_op_threads) == (share, share)
    mine = registry_settings(Settings(workers=2, intra_op_threads=3, inter_op_threads=-1))
    assert (mine.intra_op_threads, mine.inter_op_threads) == (3, -1)  # set: kept
