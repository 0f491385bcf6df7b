"""``tfsoap serve`` in a process of its own, on a free loopback port, for the benchmark.

With ``--workers N`` the process is granian's manager and the N workers are its children: the
load generator sums CPU and memory over the whole tree (``loadgen.tree_cpu_s``).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from bench_models import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``tfsoap serve`` in a process of its own."""

    def __init__(self, store: Path, batching: str, intra: int, inter: int,
                 extra: list[str], log_path: Path, workers: int = 1) -> None:
        self.port = free_port()
        self.batching = batching
        self.workers = workers
        # N workers share the threads one process would run, as tfsoap's default shares the
        # cores (``soap_server.app.tf_threads``): each gets intra/N and inter/N, at least 1
        intra, inter = (max(1, intra // workers), max(1, inter // workers)) if workers > 1 \
            else (intra, inter)
        args = ["serve", "--model-store", str(store), "--host", "127.0.0.1",
                "--port", str(self.port), "--intra-op-threads", str(intra),
                "--inter-op-threads", str(inter), "--workers", str(workers),
                "--batching" if batching == "on" else "--no-batching", *extra]
        self.command = ["tfsoap", *args]
        self.log_path = log_path
        self._log = open(log_path, "wb")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "import sys; from soap_server.cli import main; "
             "sys.exit(main(sys.argv[1:]))", *args],
            stdout=self._log, stderr=subprocess.STDOUT, cwd=str(REPO), env=env)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def wait_ready(self, timeout: float = 180.0) -> None:
        # Each new connection may land on any worker: ready when several in a row say so.
        deadline = time.monotonic() + timeout
        in_a_row = 0
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see "
                                   f"{self.log_path}:\n{self.log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/readyz",
                                            timeout=2) as r:
                    in_a_row = in_a_row + 1 if r.status == 200 else 0
                    if in_a_row > 4 * self.workers:
                        return
                    continue
            except OSError:
                in_a_row = 0
            time.sleep(0.1)
        raise RuntimeError(f"server not ready within {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
