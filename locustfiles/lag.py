"""Event-loop lag of a Locust process: how late a gevent timer fires, the generator's own receive delay.

A process whose greenlets queue behind each other delivers notifications late to its own
listeners, and that lateness is counted as the server's latency. CPU share does not show it
(one busy greenlet can hold the loop at 60% CPU); a timer's lateness does. ``LagSampler`` sleeps
``period`` seconds in its own greenlet and records how much later than asked it woke. Every
``report_every`` seconds ``rows()`` yields one summary (the worst and the mean lateness of the
interval), which ``install`` appends to the run folder's ``generator.jsonl`` next to the
generator monitor's CPU rows (``kind: "lag"``), so the judge reads both from one file.
``recent_ms()`` is the live view's figure (the Delivery tab, workers' reports): the worst
lateness of the last few seconds. One sampler serves both, so a process samples its loop once.

Beside the lag, each row carries the process's receive backlog where its listeners' client
exposes one (``BACKLOG``: each listener registers itself; KalamDB's counts the bytes received and
not yet processed, in its buffer and in the kernel's socket queue): ``recv_backlog_bytes`` is the
largest single listener's, ``recv_backlog_total_bytes`` their sum, ``recv_backlog_listeners`` how
many were sampled. Notifications waiting there have arrived and wait for the generator, so the
judge treats a backlog past ``[generator] max_backlog_bytes`` as it treats lag.
"""

from __future__ import annotations

import os
import time
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import gevent
import orjson

from harness.runfolder import GENERATOR

PERIOD = 0.02  # seconds between timer wake-ups
REPORT_EVERY = 1.0  # seconds per generator.jsonl row
RECENT_SECONDS = 5.0  # the live view's window


class Backlogged(Protocol):
    """A listener whose client can say how much it has received and not yet processed (None: it cannot now)."""

    def backlog(self) -> int | None: ...


class Backlogs:
    """The process's listeners that expose a receive backlog; sampled once per lag row."""

    def __init__(self) -> None:
        self._members: weakref.WeakSet[Any] = weakref.WeakSet()

    def add(self, listener: Backlogged) -> None:
        self._members.add(listener)

    def discard(self, listener: Backlogged) -> None:
        self._members.discard(listener)

    def sample(self) -> dict[str, int] | None:
        """The largest backlog, the sum and the count of listeners that gave one; None when none did."""
        values = [v for v in (m.backlog() for m in list(self._members)) if v is not None]
        if not values:
            return None
        return {
            "recv_backlog_bytes": max(values),
            "recv_backlog_total_bytes": sum(values),
            "recv_backlog_listeners": len(values),
        }


BACKLOG = Backlogs()


class LagSampler:
    """Measures a gevent timer's lateness; ``emit`` (if given) gets one row per ``report_every`` s.

    ``backlogs`` (the process's ``BACKLOG`` unless given) adds the receive backlog to each row.
    """

    def __init__(
        self,
        period: float = PERIOD,
        report_every: float = REPORT_EVERY,
        emit: Callable[[dict[str, Any]], None] | None = None,
        role: str = "local",
        clock: Callable[[], float] = time.monotonic,
        backlogs: Backlogs | None = None,
    ) -> None:
        self.backlogs = BACKLOG if backlogs is None else backlogs
        self.period = period
        self.report_every = report_every
        self.emit = emit
        self.role = role
        self.clock = clock
        self.worst_ms = 0.0  # over the sampler's whole life
        self._interval: list[float] = []
        self._recent: deque[float] = deque(maxlen=max(1, round(RECENT_SECONDS / period)))
        self._interval_start: float | None = None
        self._greenlet: gevent.Greenlet | None = None

    def record(self, asked_at: float, woke_at: float) -> dict[str, Any] | None:
        """Fold one wake-up in (``woke_at - asked_at - period`` is its lateness); a row when an interval ends."""
        late_ms = max(0.0, (woke_at - asked_at - self.period) * 1000)
        self.worst_ms = max(self.worst_ms, late_ms)
        if self._interval_start is None:
            self._interval_start = asked_at
        self._interval.append(late_ms)
        self._recent.append(late_ms)
        if woke_at - self._interval_start < self.report_every:
            return None
        row = {
            "t": time.time(),
            "kind": "lag",
            "role": self.role,
            "pid": os.getpid(),
            "loop_lag_ms": round(max(self._interval), 3),
            "loop_lag_mean_ms": round(sum(self._interval) / len(self._interval), 3),
            "loop_ticks": len(self._interval),
        }
        backlog = self.backlogs.sample()
        if backlog is not None:
            row.update(backlog)
        self._interval = []
        self._interval_start = woke_at
        return row

    def _run(self) -> None:
        while True:
            asked = self.clock()
            gevent.sleep(self.period)
            row = self.record(asked, self.clock())
            if row is not None and self.emit is not None:
                self.emit(row)

    def recent_ms(self) -> float:
        """The worst lateness of the last ``RECENT_SECONDS`` s, in ms (0 before the first wake-up)."""
        return round(max(self._recent, default=0.0), 1)

    def start(self) -> None:
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill(block=False)
            self._greenlet = None


def appender(run_dir: str | Path) -> Callable[[dict[str, Any]], None]:
    """Append rows to ``run_dir/generator.jsonl``, one ``write`` per line on an O_APPEND file.

    The generator monitor appends to the same file from its own process; a single write of a
    line on a file opened for appending lands whole, so the two never interleave inside a line.
    """
    path = Path(run_dir) / GENERATOR

    def emit(row: dict[str, Any]) -> None:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, orjson.dumps(row) + b"\n")
            finally:
                os.close(fd)
        except OSError:
            pass  # a run folder that vanished: the judge reports the lag as unknown

    return emit


def install(run_dir: str | None, role: str, record: bool) -> LagSampler:
    """Start this process's lag sampler; with ``record`` and a run folder its rows go to ``generator.jsonl``
    (processes that run users: their lag is added to the latency they measure)."""
    sampler = LagSampler(emit=appender(run_dir) if record and run_dir else None, role=role)
    sampler.start()
    return sampler
