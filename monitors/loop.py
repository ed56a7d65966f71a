"""The monitor's sampling loop: a drift-free schedule of samples until stop, deadline or death.

Ticks fall at ``start + k * interval`` whatever a sample costs; ticks missed because a
sample overran are skipped, not fired in a burst.
"""

from __future__ import annotations

import enum
import math
import threading
import time

from monitors.generator import GeneratorSampler
from monitors.jsonl import JsonlWriter
from monitors.sampler import ProcessSampler
from monitors.stats import StatsPoller
from monitors.tree import ProcessTreeSampler


class StopReason(enum.StrEnum):
    """Why the loop ended."""

    STOPPED = "stopped"  # the stop event was set (SIGTERM, SIGINT, caller)
    DURATION = "duration"  # the duration elapsed
    DIED = "died"  # the server process is gone; the last record says ``alive: false``


def run_monitor(
    sampler: ProcessSampler,
    out: JsonlWriter,
    interval: float,
    stop: threading.Event,
    duration: float | None = None,
    stats: StatsPoller | None = None,
    generator: GeneratorSampler | None = None,
    generator_out: JsonlWriter | None = None,
    database: ProcessTreeSampler | None = None,
    database_out: JsonlWriter | None = None,
) -> StopReason:
    """Sample every ``interval`` seconds into ``out`` (the generator into ``generator_out``, the target's
    database tree into ``database_out``, until that tree is gone: its last row says ``alive: false``)."""
    start = time.monotonic()
    deadline = start + duration if duration is not None else math.inf
    tick = 0
    while True:
        record = sampler.sample()
        if stats is not None:
            record["stats"], record["live_count"] = stats.latest()
        out.write(record)
        if generator is not None and generator_out is not None:
            for row in generator.sample():
                generator_out.write(row)
        if database is not None and database_out is not None and not database.gone:
            database_out.write(database.sample())
        if not record["alive"]:
            return StopReason.DIED
        now = time.monotonic()
        tick = max(tick + 1, math.floor((now - start) / interval) + 1)
        wake = start + tick * interval
        if wake > deadline:
            return StopReason.STOPPED if stop.wait(max(0.0, deadline - now)) else StopReason.DURATION
        if stop.wait(max(0.0, wake - now)):
            return StopReason.STOPPED
