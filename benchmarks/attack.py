"""The attack phase: hostile connections held open against a server while good ``Predict``s
are measured (issue 9's target: good p50 under 10 ms, memory growth under 50 MiB).

``Attacker`` runs, in a process of its own, ``silent`` connections that send nothing,
``slowloris`` connections (a request line, then one header byte every ``trickle_s``) and
``uploads`` (headers with ``Content-Length: 100000``, then one body byte every ``trickle_s``).
A connection the server closes (its header or body deadline passed) is opened again at once,
as an attacker would, so the population stays at the asked numbers for the whole window; how
many the server closed is reported. Everything is bounded: only 127.0.0.1, a deadline for the
whole hold, a cap on reconnects per tick, and ``RLIMIT_NOFILE`` raised to what is needed.
"""

from __future__ import annotations

import errno
import multiprocessing as mp
import random
import resource
import selectors
import socket
import time
from dataclasses import dataclass, field
from typing import Any

SLOWLORIS_HEAD = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: "
UPLOAD_HEAD = (b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/xml; charset=utf-8\r\n"
               b'SOAPAction: "Predict"\r\nContent-Length: 100000\r\n\r\n<')
KINDS = ("silent", "slowloris", "upload")
FIRST = {"silent": b"", "slowloris": SLOWLORIS_HEAD, "upload": UPLOAD_HEAD}


def raise_nofile(needed: int) -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` to ``needed`` (up to the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
    if soft != resource.RLIM_INFINITY and soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class AttackStats:
    """What the attacker held and what the server did to it."""

    asked: dict[str, int] = field(default_factory=dict)
    opened: dict[str, int] = field(default_factory=dict)
    closed_by_server: dict[str, int] = field(default_factory=dict)
    connect_failures: int = 0
    open_min: int = 0
    open_mean: float = 0.0
    held_s: float = 0.0
    bytes_trickled: int = 0


class _Conn:
    __slots__ = ("kind", "sock", "next_at")

    def __init__(self, kind: str, sock: socket.socket, next_at: float) -> None:
        self.kind, self.sock, self.next_at = kind, sock, next_at


def hold(port: int, counts: dict[str, int], hold_s: float, trickle_s: float,
         ready: Any = None) -> AttackStats:
    """Hold ``counts`` connections of each kind open against 127.0.0.1:``port`` for
    ``hold_s`` seconds (reopening what the server closes); ``ready`` is told once all are open."""
    total = sum(counts.values())
    raise_nofile(total + 512)
    stats = AttackStats(asked=dict(counts), opened={k: 0 for k in KINDS},
                        closed_by_server={k: 0 for k in KINDS})
    sel = selectors.DefaultSelector()
    rng = random.Random(9)

    def open_one(kind: str, now: float) -> None:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=1)
            if FIRST[kind]:
                s.sendall(FIRST[kind])
            s.setblocking(False)
        except OSError:
            stats.connect_failures += 1
            return
        conn = _Conn(kind, s, now + rng.uniform(0, trickle_s))
        sel.register(s, selectors.EVENT_READ, conn)
        stats.opened[kind] += 1

    now = time.monotonic()
    open_by = now + 30.0  # a server that stops accepting must not hold us here
    for kind in KINDS:
        for _ in range(counts.get(kind, 0)):
            if time.monotonic() > open_by:
                break
            open_one(kind, now)
    if ready is not None:
        ready.send("holding")
    start = time.monotonic()
    deadline = start + hold_s
    samples: list[int] = []
    next_sample = start
    while (now := time.monotonic()) < deadline:
        closed: list[_Conn] = []
        for key, _ in sel.select(timeout=0.05):
            conn = key.data
            try:
                data = conn.sock.recv(4096)  # an answer (408, 400) or EOF: the server gave up
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                closed.append(conn)
        for key in list(sel.get_map().values()):
            conn = key.data
            if conn.kind == "silent" or conn.next_at > now or conn in closed:
                continue
            conn.next_at = now + trickle_s
            try:
                conn.sock.send(b"a")
                stats.bytes_trickled += 1
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EWOULDBLOCK):
                    closed.append(conn)
        for conn in closed:
            sel.unregister(conn.sock)
            conn.sock.close()
            stats.closed_by_server[conn.kind] += 1
        for conn in closed[:200]:  # at most 200 reconnects per tick: bounded work
            if time.monotonic() > deadline:
                break
            open_one(conn.kind, now)
        if now >= next_sample:
            samples.append(len(sel.get_map()))
            next_sample = now + 0.5
    stats.held_s = time.monotonic() - start
    for key in list(sel.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    sel.close()
    stats.open_min = min(samples) if samples else 0
    stats.open_mean = sum(samples) / len(samples) if samples else 0.0
    return stats


def _run(conn: Any, port: int, counts: dict[str, int], hold_s: float, trickle_s: float
         ) -> None:
    try:
        conn.send(hold(port, counts, hold_s, trickle_s, ready=conn))
    except Exception as exc:  # reported to the orchestrator
        conn.send(f"{type(exc).__name__}: {exc}")


class Attacker:
    """``hold`` in a process of its own (its CPU is not the load generator's)."""

    def __init__(self, port: int, counts: dict[str, int], hold_s: float,
                 trickle_s: float = 2.0) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self.hold_s = hold_s
        self._proc = ctx.Process(target=_run, args=(child, port, counts, hold_s, trickle_s),
                                 daemon=True, name="tfsoap-attacker")
        self._proc.start()

    def wait_holding(self, timeout: float = 60.0) -> None:
        if not self._conn.poll(timeout):
            raise RuntimeError("the attacker did not open its connections in time")
        msg = self._conn.recv()
        if msg != "holding":
            raise RuntimeError(f"attacker failed: {msg}")

    def result(self) -> AttackStats:
        if not self._conn.poll(self.hold_s + 60):
            self._proc.terminate()
            raise RuntimeError("the attacker did not finish in time")
        msg = self._conn.recv()
        self._proc.join(timeout=10)
        if isinstance(msg, str):
            raise RuntimeError(f"attacker failed: {msg}")
        return msg  # type: ignore[no-any-return]
