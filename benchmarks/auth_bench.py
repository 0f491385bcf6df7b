#!/usr/bin/env python
"""What authentication costs: ``python benchmarks/auth_bench.py [--calls 200] [--rounds 3]``.

1. The scrypt check itself (``soap_server.security.passwords``, N=2**14, r=8, p=1), in this
   process: milliseconds per check, median of ``--checks``.
2. Two servers in their own processes (``tfsoap serve`` on free 127.0.0.1 ports, the bundled
   ``digits`` model): one without a users file, one with (passwords over plain HTTP allowed,
   ``auth_cache_s`` as given). For each mode (anonymous, Basic, UsernameToken text, digest) a
   sequential loop of ``--calls`` Predict calls of one digit through ``tfsoap_client`` (bounded
   in count and time); median latency per call, per round; the table shows each mode's median
   and the ratio to anonymous. Also Basic with ``auth_cache_s 0``: scrypt on every request.

Writes ``benchmarks/results/auth.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "bench-Pw-4421"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(extra: list[str]) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "soap_server.cli", "serve", "--port",
                             str(port), "--threads", "8", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/"
    import requests

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if requests.get(url + "readyz", timeout=2).status_code == 200:
                return proc, url
        except requests.RequestException:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("server did not become ready")


def _latency(url: str, calls: int, **auth: Any) -> float:
    import numpy as np

    from model_store.demo import load_samples
    from tfsoap_client import PredictClient

    client = PredictClient(url, timeout=30, **auth)
    image = load_samples()[0][:1].astype(np.float32)
    client.predict("digits", {"images": image})  # warm: connection, WSDL, caches
    times = []
    deadline = time.monotonic() + 120
    for _ in range(calls):
        started = time.perf_counter()
        client.predict("digits", {"images": image})
        times.append(time.perf_counter() - started)
        if time.monotonic() > deadline:
            break
    return statistics.median(times) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--checks", type=int, default=10)
    args = parser.parse_args()
    from soap_server.security import User, hash_password, save_users, verify_password

    stored = hash_password(PASSWORD)
    checks = []
    for _ in range(args.checks):
        started = time.perf_counter()
        verify_password(PASSWORD, stored)
        checks.append((time.perf_counter() - started) * 1000)
    scrypt_ms = statistics.median(checks)
    print(f"scrypt check (N=2**14, r=8, p=1): {scrypt_ms:.1f} ms median of {args.checks}")

    folder = Path(tempfile.mkdtemp(prefix="tfsoap-auth-bench-"))
    users = folder / "users.toml"
    save_users(users, {"hashed": User("hashed", frozenset(), hash_password(PASSWORD)),
                       "digest": User("digest", frozenset(), digest_secret=PASSWORD)})
    secured = ["--users-file", str(users), "--allow-password-text-over-http",
               "--lockout-failures", "0"]
    servers = {"open": _serve([]), "secured": _serve(secured),
               "nocache": _serve([*secured, "--auth-cache-s", "0"])}
    modes: dict[str, tuple[str, dict[str, Any]]] = {
        "anonymous": ("open", {}),
        "basic": ("secured", {"username": "hashed", "password": PASSWORD, "auth": "basic"}),
        "wsse-text": ("secured", {"username": "hashed", "password": PASSWORD, "auth": "wsse"}),
        "wsse-digest": ("secured", {"username": "digest", "password": PASSWORD,
                                    "auth": "wsse-digest"}),
        "basic-no-cache": ("nocache", {"username": "hashed", "password": PASSWORD,
                                       "auth": "basic"}),
    }
    rounds: dict[str, list[float]] = {m: [] for m in modes}
    try:
        for _ in range(args.rounds):
            for mode, (server, auth) in modes.items():
                calls = args.calls if mode != "basic-no-cache" else max(10, args.calls // 10)
                rounds[mode].append(_latency(servers[server][1], calls, **auth))
    finally:
        for proc, _url in servers.values():
            proc.terminate()
            proc.wait(30)
    base = statistics.median(rounds["anonymous"])
    result = {"scrypt_check_ms": scrypt_ms, "cpu_count": os.cpu_count(),
              "median_latency_ms": {m: statistics.median(v) for m, v in rounds.items()}}
    print(f"{'mode':<16}{'median ms':>10}{'vs anonymous':>14}{'added ms':>10}")
    for mode, values in rounds.items():
        med = statistics.median(values)
        print(f"{mode:<16}{med:>10.2f}{med / base:>13.2f}x{med - base:>10.2f}")
    out = REPO / "benchmarks" / "results" / "auth.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
