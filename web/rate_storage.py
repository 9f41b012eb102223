"""In-process rate-limit counters for flask-limiter, without a background thread.

``limits``' own ``memory://`` storage restarts a ``threading.Timer`` every
10 ms while requests arrive, to expire old entries. Under load that is a
thread started on most requests, and a third thread contending for the GIL
with the request threads (measured with py-spy on a gunicorn worker serving
API pages: ~6 % of its time in starting timers, ~12 % in their runs).
This storage expires lazily instead: a key's old hits go when the key is
next used, and keys nobody used for a while go in a sweep that runs inline
at most every :data:`SWEEP_INTERVAL_S`.

It keeps the moving-window strategy ``web.limits`` uses (a key may have at
most ``limit`` hits in any ``expiry`` seconds) as one deque of hit times per
key, and fixed-window counters for the strategies that use them. Counters
live in this process only, as with ``memory://``; several workers share
counters only through ``rate_limit_storage_uri`` = ``redis://...``.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from limits.storage import MovingWindowSupport, Storage

#: The scheme ``web.limits`` passes to flask-limiter for the in-process default.
SCHEME = "geo-monitor-memory"
#: Seconds between sweeps of keys whose hits have all expired.
SWEEP_INTERVAL_S = 60.0


class InProcessStorage(Storage, MovingWindowSupport):
    """Moving windows and fixed-window counters in this process's memory, expired lazily."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: float | str | bool) -> None:
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[float, deque[float]]] = {}  # key -> (expiry s, hit times, oldest first)
        self._counters: dict[str, tuple[int, float]] = {}  # key -> (count, expires at)
        self._next_sweep = time.time() + SWEEP_INTERVAL_S
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    # --- moving window (the strategy web.limits uses) ---------------------------

    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        """Record ``amount`` hits now if that keeps ``key`` within ``limit`` hits per ``expiry`` seconds."""
        if amount > limit:
            return False
        now = time.time()
        with self._lock:
            self._sweep(now)
            hits = self._live_hits(key, expiry, now)
            if len(hits) + amount > limit:
                return False
            hits.extend([now] * amount)
            return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        """(time of the oldest hit still in the window, hits in it); (now, 0) for a key with none."""
        now = time.time()
        with self._lock:
            hits = self._live_hits(key, expiry, now)
            return (hits[0], len(hits)) if hits else (now, 0)

    def _live_hits(self, key: str, expiry: float, now: float) -> deque[float]:
        """The key's hits within the last ``expiry`` seconds (older ones dropped); hold the lock."""
        entry = self._windows.get(key)
        if entry is None:
            hits: deque[float] = deque()
            self._windows[key] = (expiry, hits)
            return hits
        hits = entry[1]
        cutoff = now - expiry
        while hits and hits[0] < cutoff:
            hits.popleft()
        return hits

    # --- fixed-window counters (Storage's interface) -----------------------------

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        with self._lock:
            self._sweep(now)
            count, expires = self._counters.get(key, (0, 0.0))
            if expires <= now:
                count, expires = 0, now + expiry
            count += amount
            self._counters[key] = (count, expires)
            return count

    def get(self, key: str) -> int:
        count, expires = self._counters.get(key, (0, 0.0))
        return count if expires > time.time() else 0

    def get_expiry(self, key: str) -> float:
        now = time.time()
        count, expires = self._counters.get(key, (0, 0.0))
        return expires if expires > now else now

    # --- housekeeping -------------------------------------------------------------

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._lock:
            cleared = len(self._windows) + len(self._counters)
            self._windows.clear()
            self._counters.clear()
            return cleared

    def clear(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)
            self._counters.pop(key, None)

    def _sweep(self, now: float) -> None:
        """Drop keys with nothing left in their window, at most every SWEEP_INTERVAL_S; hold the lock."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + SWEEP_INTERVAL_S
        self._windows = {key: (expiry, hits) for key, (expiry, hits) in self._windows.items()
                         if hits and hits[-1] >= now - expiry}
        self._counters = {key: entry for key, entry in self._counters.items() if entry[1] > now}
