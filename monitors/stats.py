"""Polls target statistics in a background thread, so a slow or dead target never stalls sampling.

The poller asks the target's admin interface for ``stats()`` and the number of
``live_subscriptions()`` once per interval; the monitor loop reads the latest values,
which turn null when they are older than ``stale_after`` seconds (a hung target).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

from harness.targets.base import Admin


class StatsPoller:
    """Background poller of one target's statistics.

    ``connect`` builds the admin session (it may log in over the network, so it also
    runs in the background thread); after an error the session is dropped and built
    again at the next poll. Errors are reported on stderr once per outage, not per poll.
    """

    def __init__(self, connect: Callable[[], Admin], interval: float, stale_after: float | None = None) -> None:
        self._connect = connect
        self.interval = interval
        self.stale_after = stale_after if stale_after is not None else max(3 * interval, 5.0)
        self._lock = threading.Lock()
        self._stats: dict[str, Any] | None = None
        self._live: int | None = None
        self._polled_at = float("-inf")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lqh-stats-poller", daemon=True)
        self._failing = False

    def start(self) -> None:
        """Start polling; returns at once."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end; a call stuck in the target is abandoned (the thread is a daemon)."""
        self._stop.set()

    def latest(self) -> tuple[dict[str, Any] | None, int | None]:
        """``(stats, live_count)`` from recent polls; each is None if unavailable or stale."""
        with self._lock:
            if time.monotonic() - self._polled_at > self.stale_after:
                return None, None
            return self._stats, self._live

    def _run(self) -> None:
        admin: Admin | None = None
        next_poll = time.monotonic()
        while not self._stop.is_set():
            try:
                if admin is None:
                    admin = self._connect()
                stats = admin.stats()
                live = admin.live_subscriptions()
                self._store(dict(stats) if stats is not None else None, len(live) if live is not None else None)
                self._report(None)
            except Exception as exc:  # any target failure must leave sampling running
                self._report(exc)
                admin = self._drop(admin)
            next_poll += self.interval
            now = time.monotonic()
            if next_poll < now:
                next_poll = now
            self._stop.wait(next_poll - now)
        self._drop(admin)

    def _store(self, stats: dict[str, Any] | None, live: int | None) -> None:
        with self._lock:
            self._stats, self._live, self._polled_at = stats, live, time.monotonic()

    def _report(self, exc: Exception | None) -> None:
        """One stderr line when polling starts failing and one when it recovers."""
        if exc is not None and not self._failing:
            print(f"lqharness monitor: target statistics unavailable: {exc}", file=sys.stderr)
        elif exc is None and self._failing:
            print("lqharness monitor: target statistics available again", file=sys.stderr)
        self._failing = exc is not None

    @staticmethod
    def _drop(admin: Admin | None) -> None:
        """Close a session quietly; returns None so callers can reset their reference."""
        if admin is not None:
            try:
                admin.close()
            except Exception:  # closing a broken session may fail in any way
                pass
        return None
