"""Idle memory release: after writes stop for a while, give back the memory the load left behind.

A burst of writes grows SQLite's page cache, leaves Python's reference cycles for the collector and
leaves free pages inside glibc's heap that it keeps rather than return to the OS. A server that is
idle has no use for them, so once no write has come for ``idle_seconds`` the server runs the
collector, asks SQLite to shrink its caches (``PRAGMA shrink_memory``) and glibc to trim its heap
(``malloc_trim``; skipped where the C library has none). What the protocol needs stays: the replay
log, the subscriptions and their queues. SC-059 judges the result: memory back near its pre-load level.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import gc
import logging
import time
from collections.abc import Callable

from refserver.storage import Store

log = logging.getLogger("lqrefserver.idle")


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or None when the C library lacks it (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return trim


class IdleRelease:
    """Releases caches and free heap once per quiet spell (no write for ``idle_seconds`` after some)."""

    def __init__(self, store: Store, writes: Callable[[], int], idle_seconds: float = 10.0) -> None:
        self.store = store
        self.writes = writes  # a count that grows with every committed write
        self.idle_seconds = idle_seconds
        self.releases = 0
        self._trim = _malloc_trim()
        self._seen = writes()
        self._quiet_since = 0.0
        self._pending = False  # writes came since the last release

    def release(self) -> None:
        """Collect cycles, shrink SQLite's caches, trim the heap."""
        gc.collect()
        self.store.db.execute("PRAGMA shrink_memory")
        if self._trim is not None:
            self._trim(0)
        self.releases += 1

    def step(self, now: float) -> bool:
        """Look at the write count at time ``now`` (seconds, monotonic); True when this step released."""
        count = self.writes()
        if count != self._seen:
            self._seen, self._quiet_since, self._pending = count, now, True
        elif self._pending and now - self._quiet_since >= self.idle_seconds:
            self._pending = False
            self.release()
            log.info("idle for %.0f s after writes: released caches and free heap", self.idle_seconds)
            return True
        return False

    async def loop(self, interval: float = 1.0) -> None:
        """``step`` every ``interval`` seconds, for as long as the server runs."""
        while True:
            await asyncio.sleep(interval)
            self.step(time.monotonic())
