"""README.md's commands stay true: the two first commands, the CI script, and the examples."""

from __future__ import annotations

import configparser
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

from model_store.demo import load_samples

from .soap_server.cli.test_cli import free_port, wait_ready
from .soap_server.raw import post

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```(\w*)\n(.*?)```", README, re.S)


def shell_blocks() -> list[str]:
    return [body.strip() for lang, body in BLOCKS if lang == "sh"]


def test_readme_starts_with_the_install_and_serve_and_the_test_commands() -> None:
    serve_cmd, test_cmd = shell_blocks()[:2]
    assert serve_cmd == "pip install ./clients/python . && tfsoap serve"
    assert test_cmd.startswith("pip install ./clients/python '.[test]' && ")
    assert test_cmd.endswith("python -m pytest")
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    assert "test" in cfg["options.extras_require"]
    assert "tfsoap = soap_server.cli:main" in cfg["options.entry_points"]["console_scripts"]
    assert (REPO / "clients" / "python" / "setup.cfg").is_file()


def test_ci_runs_the_readme_test_command() -> None:
    test_cmd = shell_blocks()[1]
    ci = (REPO / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines()
    for package in ("openjdk-17-jdk-headless", "jaxws", "libjaxws-java", "mono-devel"):
        assert package in ci


def test_readme_serve_command_serves_the_demo_model_and_the_predict_example_works(
        tmp_path: Path) -> None:
    serve = shell_blocks()[0].split("&&")[-1].strip()
    port = free_port()
    env = dict(os.environ, TFSOAP_PORT=str(port), TF_CPP_MIN_LOG_LEVEL="2")
    argv = shlex.split(serve)
    assert argv[0] == "tfsoap"
    proc = subprocess.Popen([sys.executable, "-m", "soap_server.cli", *argv[1:]], env=env,
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        wait_ready(url, proc)
        example = next(b for b in shell_blocks() if b.startswith("tfsoap predict"))
        argv = shlex.split(example.replace("\\\n", " ").replace("http://127.0.0.1:8080/", url))
        run = subprocess.run([sys.executable, "-m", "soap_server.cli", *argv[1:]], cwd=REPO,
                             capture_output=True, text=True, timeout=120, env=env)
        assert run.returncode == 0, run.stderr
        assert "[0 1 2 3 4 5 6 7 8 9]" in run.stdout
        curl = next(b for b in shell_blocks() if b.startswith("curl"))
        envelope = curl.split("<<'EOF'\n", 1)[1].rsplit("\nEOF", 1)[0].encode()
        answer = post(url, envelope)
        assert answer.status == 200, answer.body[:500]
        assert b"<name>classes</name>" in answer.body and b"<long>0</long></int64_val>" \
            in answer.body
        python_example = next(body for lang, body in BLOCKS if lang == "python")
        code = python_example.replace("http://127.0.0.1:8080/", url)
        run = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                             text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert "[0 1 2 3 4 5 6 7 8 9]" in run.stdout and "Client.ModelNotFound" in run.stdout
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_bundled_sample_images_match_the_samples_archive() -> None:
    images, _ = load_samples()
    np.testing.assert_array_equal(
        np.load(REPO / "model_store" / "demo_data" / "digits_images.npy"), images)
