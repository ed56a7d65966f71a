"""Locust's NOTIFY statistics, added in batches: one step per name a few times a second, not one event per notification.

A request event costs a listener more than the receive itself at tens of thousands of
notifications per second: Locust's hook, then two ``StatsEntry.log`` calls (the name's entry and
the total). ``NotifyStats`` keeps a process's successful notifications per name (their
response times and bytes) and adds each batch to Locust's statistics the way Locust's master
adds a worker's report: a ``StatsEntry`` rebuilt from its serialized form (``unserialize``),
``extend``-ed into the name's entry and the total. The response times are rounded with
Locust's own ``bucket_response_time``, a batch never spans two wall-clock seconds (so the
per-second counts are exact), and count, sum (to float rounding), min, max and bytes are kept, so every
figure Locust shows (percentiles, averages, RPS) is the one per-notification events would give.
A batch is added within ``FLUSH_SECONDS`` (a greenlet flushes it when the stream pauses).
Failures (anomalies) still go through the request event one by one: Locust keeps their errors.
"""

from __future__ import annotations

import time
import weakref
from collections import Counter
from typing import Any

import gevent
from locust import stats as locust_stats

__all__ = ["FLUSH_SECONDS", "REQUEST_TYPE", "NotifyStats"]

FLUSH_SECONDS = 0.2
REQUEST_TYPE = "NOTIFY"

_BY_ENVIRONMENT: weakref.WeakKeyDictionary[Any, NotifyStats] = weakref.WeakKeyDictionary()


class _Batch:
    """One name's samples since the last flush."""

    __slots__ = ("times", "length", "last")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.length = 0
        self.last = 0.0  # wall time of its latest sample


class NotifyStats:
    """Successful NOTIFY samples of one Locust environment, added to its statistics in batches."""

    def __init__(self, environment: Any, flush_seconds: float = FLUSH_SECONDS, timer: bool = True) -> None:
        self.environment = environment
        self.flush_seconds = flush_seconds
        self._batches: dict[str, _Batch] = {}
        self._first = 0.0  # wall time of the batch's first sample
        self._due = 0.0  # wall time by which the batch is added (flush interval, or the next second)
        self._timer = gevent.spawn(self._flush_loop) if timer else None

    @classmethod
    def of(cls, environment: Any) -> NotifyStats:
        """The one batcher of ``environment`` (created on first use)."""
        found = _BY_ENVIRONMENT.get(environment)
        if found is None:
            found = _BY_ENVIRONMENT[environment] = cls(environment)
        return found

    def add(self, name: str, response_time: float, length: int) -> None:
        """One successful notification named ``name`` (``response_time`` in ms, ``length`` bytes)."""
        now = time.time()
        if now >= self._due or not self._batches:
            self.flush()
            self._first = now
            self._due = min(now + self.flush_seconds, float(int(now) + 1))
        batch = self._batches.get(name)
        if batch is None:
            batch = self._batches[name] = _Batch()
        batch.times.append(response_time)
        batch.length += length
        batch.last = now

    def pending(self) -> int:
        """Samples not yet in Locust's statistics."""
        return sum(len(b.times) for b in self._batches.values())

    def flush(self) -> None:
        """Add the batch to Locust's statistics (the name's entry and the total)."""
        if not self._batches:
            return
        batches, self._batches = self._batches, {}
        stats = self.environment.stats
        second = int(self._first)
        bucket = locust_stats.bucket_response_time  # looked up here: Locust lets a run replace it
        for name, batch in batches.items():
            times = batch.times
            data = {
                "name": name,
                "method": REQUEST_TYPE,
                "last_request_timestamp": batch.last,
                "start_time": self._first,
                "num_requests": len(times),
                "num_none_requests": 0,
                "num_failures": 0,
                "total_response_time": sum(times),
                "max_response_time": max(times),
                "min_response_time": min(times),
                "total_content_length": batch.length,
                "response_times": dict(Counter(map(bucket, times))),
                "num_reqs_per_sec": {second: len(times)},
                "num_fail_per_sec": {},
            }
            entry = locust_stats.StatsEntry.unserialize(data, stats)  # type: ignore[arg-type]
            stats.get(name, REQUEST_TYPE).extend(entry)
            stats.total.extend(entry)

    def failure(self, name: str, response_time: float, length: int, exception: Exception) -> None:
        """One notification that showed an anomaly: a request event of its own, so Locust records the error."""
        self.environment.events.request.fire(
            request_type=REQUEST_TYPE,
            name=name,
            response_time=response_time,
            response_length=length,
            exception=exception,
            context={},
        )

    def _flush_loop(self) -> None:
        while True:
            gevent.sleep(self.flush_seconds)
            if self._batches and time.time() >= self._due:
                self.flush()

    def close(self) -> None:
        """Flush what is left and stop the timer."""
        self.flush()
        if self._timer is not None:
            self._timer.kill(block=False)
            self._timer = None
