"""Real processes for the deployment tests: ``tfsoap serve`` replicas and an nginx in front of
them, each on a free loopback port, each logging to a file in the test's temporary folder.

nginx runs in the foreground (``daemon off``) with its own prefix, pid file, logs and temp
folders, from ``deploy/nginx/tfsoap.conf.template`` rendered as ``envsubst`` would.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Mapping

REPO = Path(__file__).resolve().parents[2]
NGINX_TEMPLATE = REPO / "deploy" / "nginx" / "tfsoap.conf.template"
_VARIABLE = re.compile(r"\$\{(TFSOAP_[A-Z_]+)\}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """The status of a GET, or None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return None


def wait_for(url: str, status: int = 200, timeout: float = 60.0) -> float:
    """Poll ``url`` until it answers ``status``; the seconds it took (raise after timeout)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if http_status(url) == status:
            return time.monotonic() - start
        time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer {status} within {timeout:.0f} s")


def tfsoap_command() -> list[str]:
    """``tfsoap`` (the console script) where installed, else the same entry point via Python.
    Either imports this checkout's packages when ``PYTHONPATH`` points at it."""
    script = shutil.which("tfsoap")
    if script:
        return [script]
    return [sys.executable, "-c", "import sys; from soap_server.cli import main; "
            "sys.exit(main())"]


class Replica:
    """One ``tfsoap serve`` process on a fixed port; ``start`` again after a kill reuses it.
    Each start writes a log of its own (``<name>.<n>.log``), one line per request."""

    def __init__(self, name: str, store: Path, log_dir: Path, port: int | None = None,
                 extra_args: tuple[str, ...] = ()) -> None:
        self.name, self.store, self.log_dir = name, store, log_dir
        self.port = port or free_port()
        self.extra_args = extra_args
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"{self.name}.{self.starts}.log"

    def start(self) -> Replica:
        self.starts += 1
        self._log = open(self.log_path, "wb")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        self.proc = subprocess.Popen(
            tfsoap_command() + ["serve", "--model-store", str(self.store), "--host",
                                "127.0.0.1", "--port", str(self.port), *self.extra_args],
            stdout=self._log, stderr=subprocess.STDOUT, env=env)
        return self

    def wait_ready(self, timeout: float = 90.0) -> float:
        try:
            return wait_for(self.url + "readyz", 200, timeout)
        except TimeoutError:
            raise AssertionError(f"{self.name} not ready:\n{self.log_tail()}") from None

    def kill(self) -> None:
        """SIGKILL: no drain, no goodbye; connections in flight are reset."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log is not None:
            self._log.close()

    def predict_lines(self) -> int:
        """Predict requests this start of the replica logged (one line per request)."""
        text = self.log_path.read_text(errors="replace")
        return sum(1 for line in text.splitlines() if "op=Predict" in line)

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:]


def render_template(template: str, values: Mapping[str, str]) -> str:
    """``envsubst`` restricted to ``TFSOAP_*`` variables: each must be given."""
    def value(match: re.Match[str]) -> str:
        return values[match.group(1)]

    return _VARIABLE.sub(value, template)


def upstream_servers(replicas: list[Replica], down: frozenset[str] = frozenset(),
                     params: str = "max_fails=1 fail_timeout=2s") -> str:
    """The ``server`` lines; a replica named in ``down`` is marked ``down`` (gets no traffic)."""
    return "\n    ".join(
        f"server 127.0.0.1:{r.port} {params}{' down' if r.name in down else ''};"
        for r in replicas)


class Nginx:
    """nginx in the foreground with everything under ``prefix``; ``configure`` + ``reload``
    change its upstream (SIGHUP: new workers, old ones finish what they hold)."""

    def __init__(self, prefix: Path, port: int | None = None) -> None:
        self.prefix = prefix
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        for sub in ("logs", "temp"):
            (prefix / sub).mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def access_log(self) -> Path:
        return self.prefix / "logs" / "access.log"

    @property
    def error_log(self) -> Path:
        return self.prefix / "logs" / "error.log"

    def configure(self, servers: str, template: Path = NGINX_TEMPLATE, **values: str) -> None:
        """Render ``template`` (more ``TFSOAP_*`` variables in ``values``) as nginx's config."""
        snippet = render_template(template.read_text(), {
            "TFSOAP_LISTEN": f"127.0.0.1:{self.port}",
            "TFSOAP_UPSTREAM_SERVERS": servers,
            "TFSOAP_ACCESS_LOG": str(self.access_log), **values})
        (self.prefix / "tfsoap.conf").write_text(snippet)
        temp = self.prefix / "temp"
        # As root, workers would switch to nobody, who cannot enter pytest's 0700 folders.
        user = "user root;\n" if os.geteuid() == 0 else ""
        (self.prefix / "nginx.conf").write_text(
            f"{user}daemon off;\nworker_processes 1;\npid {self.prefix / 'nginx.pid'};\n"
            f"error_log {self.error_log} warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            f"    client_body_temp_path {temp / 'body'};\n"
            f"    proxy_temp_path {temp / 'proxy'};\n"
            f"    fastcgi_temp_path {temp / 'fastcgi'};\n"
            f"    uwsgi_temp_path {temp / 'uwsgi'};\n"
            f"    scgi_temp_path {temp / 'scgi'};\n"
            f"    include {self.prefix / 'tfsoap.conf'};\n"
            "}\n")

    def command(self, *extra: str) -> list[str]:
        return ["nginx", "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"), *extra]

    def check(self) -> None:
        result = subprocess.run(self.command("-t"), capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, f"nginx -t failed:\n{result.stderr}"

    def start(self) -> Nginx:
        self.check()
        self.proc = subprocess.Popen(self.command(), stdout=subprocess.DEVNULL,
                                     stderr=open(self.prefix / "logs" / "stderr.log", "wb"))
        start = time.monotonic()
        while http_status(self.url + "healthz") is None:
            assert self.proc.poll() is None, f"nginx exited:\n{self.error_text()}"
            assert time.monotonic() - start < 20, "nginx did not start listening"
            time.sleep(0.05)
        return self

    def reload(self) -> None:
        self.check()
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)
        time.sleep(0.5)  # the new workers take over at once; the old ones drain

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)  # graceful
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def error_text(self) -> str:
        return self.error_log.read_text(errors="replace")[-3000:] if self.error_log.exists() \
            else ""
