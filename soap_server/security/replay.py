"""Time-bounded memories of the guard: UsernameToken nonces seen (replay cache) and failed
logins per address (lockout). Both are bounded in entries and in time, and thread-safe."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from typing import Callable


class NonceCache:
    """Nonces seen within the token window. ``add`` is False for a replay, and also when the
    cache is full of unexpired nonces: refusing then is safer than forgetting one."""

    def __init__(self, max_entries: int, ttl_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self.clock = clock
        self._seen: OrderedDict[bytes, float] = OrderedDict()  # key -> expiry, oldest first
        self._lock = threading.Lock()

    def add(self, key: bytes) -> bool:
        now = self.clock()
        with self._lock:
            while self._seen:
                oldest, expiry = next(iter(self._seen.items()))
                if expiry > now:
                    break
                del self._seen[oldest]
            if key in self._seen or len(self._seen) >= self.max_entries:
                return False
            self._seen[key] = now + self.ttl_s
            return True


class Lockout:
    """Failed logins per peer address in a sliding window; at ``limit`` the address is locked
    until its oldest failure leaves the window. ``limit`` 0 turns it off."""

    MAX_ADDRESSES = 10_000

    def __init__(self, limit: int, window_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window_s = window_s
        self.clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, peer: str, now: float) -> deque[float] | None:
        times = self._failures.get(peer)
        if times is not None:
            while times and times[0] <= now - self.window_s:
                times.popleft()
            if not times:
                del self._failures[peer]
                return None
        return times

    def locked(self, peer: str) -> bool:
        if self.limit <= 0:
            return False
        with self._lock:
            times = self._recent(peer, self.clock())
            return times is not None and len(times) >= self.limit

    def failed(self, peer: str) -> None:
        if self.limit <= 0:
            return
        now = self.clock()
        with self._lock:
            times = self._recent(peer, now)
            if times is None:
                if len(self._failures) >= self.MAX_ADDRESSES:
                    self._failures.popitem(last=False)
                times = self._failures[peer] = deque(maxlen=self.limit)
            times.append(now)
            self._failures.move_to_end(peer)
