"""The peers the benchmark measures tfsoap against, each in a virtual environment of its own.

- ``flask``: ``peers/flask_app.py`` under gunicorn with 2 sync workers, TF Serving's REST JSON
  (``POST /v1/models/cnn:predict``, ``{"instances": [...]}``);
- ``mlserver``: MLServer 1.7 with ``peers/mlserver_runtime.py``, its V2 REST API
  (``POST /v2/models/cnn/infer``), with parallel workers off (``parallel_workers`` 0) or on.

The environments live in ``benchmarks/.venvs/<name>`` (gitignored), made with ``python -m venv
--system-site-packages`` so TensorFlow and NumPy come from the system and only the peer's own
packages are installed: nothing of this enters tfsoap's dependencies. A peer that cannot be
installed or started is reported with the reason and left out; the run goes on without it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench_server import free_port

HERE = Path(__file__).resolve().parent
VENVS = HERE / ".venvs"
PEER_CODE = HERE / "peers"
#: What each peer's environment installs (beyond the system's TensorFlow and NumPy).
#: uvloop 0.22 made ``asyncio.get_event_loop()`` raise in a new process, which MLServer 1.7's
#: parallel workers call at start (they died with "There is no current event loop").
PACKAGES = {"flask": ["flask>=3,<4", "gunicorn>=23"],
            "mlserver": ["mlserver==1.7.*", "uvloop<0.22"]}


class PeerUnavailable(RuntimeError):
    """A peer could not be installed or started here (the message says why)."""


def venv_python(name: str) -> Path:
    return VENVS / name / "bin" / "python"


def ensure_venv(name: str, create: bool, timeout_s: float = 900.0) -> Path:
    """The peer's environment, made (and its packages installed) when ``create`` is true and
    it is missing or incomplete; its Python. A ``.installed`` file records what it holds."""
    root = VENVS / name
    marker = root / ".installed"
    wanted = " ".join(PACKAGES[name])
    if marker.exists() and marker.read_text() == wanted and venv_python(name).exists():
        return venv_python(name)
    if not create:
        raise PeerUnavailable(f"no environment in {root} (a full run makes it; or run once "
                              "without --quick)")
    print(f"making the {name} environment in {root} ({wanted}) ...", flush=True)
    log = VENVS / f"{name}-install.log"
    VENVS.mkdir(parents=True, exist_ok=True)
    try:
        with open(log, "wb") as out:
            if not venv_python(name).exists():
                subprocess.run([sys.executable, "-m", "venv", "--system-site-packages",
                                str(root)], check=True, stdout=out, stderr=subprocess.STDOUT,
                               timeout=120)
            subprocess.run([str(venv_python(name)), "-m", "pip", "install", "-q",
                            *PACKAGES[name]], check=True, stdout=out, stderr=subprocess.STDOUT,
                           timeout=timeout_s)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        tail = log.read_text(errors="replace")[-800:] if log.exists() else ""
        raise PeerUnavailable(f"installing {wanted} failed ({exc}); {log}:\n{tail}") from exc
    marker.write_text(wanted)
    return venv_python(name)


@dataclass
class PeerSpec:
    """How the load generator talks to a peer."""

    protocol: str
    path: str


class PeerProcess:
    """A peer server in a process of its own, on a free loopback port."""

    def __init__(self, label: str, command: list[str], env: dict[str, str], cwd: Path,
                 port: int, ready_path: str, spec: PeerSpec, log_path: Path) -> None:
        self.label, self.command, self.port, self.spec = label, command, port, spec
        self.ready_path, self.log_path = ready_path, log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 (closed in stop)
        self.proc = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                     cwd=str(cwd), env=env, start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 180.0) -> None:
        """Ready once 8 probes in a row (new connections, so any worker) answer 200."""
        deadline = time.monotonic() + timeout
        in_a_row = 0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PeerUnavailable(f"{self.label} exited with {self.proc.returncode}:\n"
                                      + self.log_path.read_text(errors="replace")[-1500:])
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{self.port}{self.ready_path}", timeout=5) as r:
                    in_a_row = in_a_row + 1 if r.status == 200 else 0
                    if in_a_row >= 8:
                        return
                    continue
            except OSError:
                in_a_row = 0
            time.sleep(0.25)
        raise PeerUnavailable(f"{self.label} not ready within {timeout:.0f}s; see "
                              f"{self.log_path}")

    def stop(self) -> None:
        """SIGTERM to the peer's process group (its workers too), SIGKILL after 20 s."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


def _env(graph: Path, intra: int, inter: int, **extra: str) -> dict[str, str]:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PEER_GRAPH=str(graph),
               PEER_INTRA=str(intra), PEER_INTER=str(inter))
    env.pop("PYTHONPATH", None)  # the peers import nothing of tfsoap
    env.update(extra)
    return env


def start_flask(python: Path, graph: Path, intra: int, inter: int, workdir: Path
                ) -> PeerProcess:
    """gunicorn with 2 sync workers serving ``peers/flask_app.py``."""
    port = free_port()
    cmd = [str(python), "-m", "gunicorn", "--workers", "2", "--worker-class", "sync",
           "--bind", f"127.0.0.1:{port}", "--chdir", str(PEER_CODE), "--log-level", "warning",
           "flask_app:app"]
    return PeerProcess("Flask + gunicorn (2 sync workers)", cmd, _env(graph, intra, inter),
                       workdir, port, "/v1/models/cnn",
                       PeerSpec("tfserving_json", "/v1/models/cnn:predict"),
                       workdir / f"flask-{port}.log")


def start_mlserver(python: Path, graph: Path, intra: int, inter: int, workdir: Path,
                   parallel_workers: int) -> PeerProcess:
    """MLServer over a folder holding its settings, the model's settings and the runtime."""
    folder = workdir / f"mlserver-pw{parallel_workers}"
    (folder / "cnn").mkdir(parents=True, exist_ok=True)
    shutil.copy(PEER_CODE / "mlserver_runtime.py", folder / "mlserver_runtime.py")
    port = free_port()
    (folder / "settings.json").write_text(json.dumps({
        "debug": False, "host": "127.0.0.1", "http_port": port, "grpc_port": free_port(),
        "metrics_port": free_port(), "parallel_workers": parallel_workers,
        "load_models_at_startup": True}))
    (folder / "cnn" / "model-settings.json").write_text(json.dumps({
        "name": "cnn", "implementation": "mlserver_runtime.FrozenGraphRuntime",
        "parameters": {"uri": str(graph)}}))
    mlserver = python.parent / "mlserver"
    return PeerProcess(f"MLServer 1.7 (parallel_workers {parallel_workers})",
                       [str(mlserver), "start", str(folder)],
                       _env(graph, intra, inter, PYTHONPATH=str(folder)), folder, port,
                       "/v2/models/cnn/ready", PeerSpec("v2_json", "/v2/models/cnn/infer"),
                       workdir / f"mlserver-pw{parallel_workers}.log")
