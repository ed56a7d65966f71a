"""The load generator watching itself while a run goes: its event-loop lag, and whether it looks saturated.

A gevent loop that is late to wake a sleeping greenlet is late to read notifications too, so
the lag it shows is added to every latency measured in that process. Each process with users
samples its own lag; workers send theirs on Locust's report cycle, and the Delivery tab shows it
beside each process's CPU (Locust measures that itself). The judge's saturation check (from the
monitor's ``generator.jsonl``) is what decides a verdict; this is the live warning.
"""

from __future__ import annotations

import time
from collections import deque

import gevent

SAMPLE_SECONDS = 0.25
WINDOW_SAMPLES = 20  # the lag shown is the worst of the last 5 s
CPU_SATURATED_PERCENT = 90.0  # Locust warns at the same CPU use
LAG_SATURATED_MS = 100.0


class LoopLag:
    """The worst event-loop lag (ms) over the last few seconds, sampled by a background greenlet."""

    def __init__(self) -> None:
        self._recent: deque[float] = deque(maxlen=WINDOW_SAMPLES)
        self._greenlet: gevent.Greenlet | None = None

    def start(self) -> None:
        """Start sampling (once)."""
        if self._greenlet is None:
            self._greenlet = gevent.spawn(self._sample)

    def stop(self) -> None:
        """Stop sampling and keep the last window (the judge, which blocks the loop, runs after the load)."""
        if self._greenlet is not None:
            self._greenlet.kill(block=False)

    def _sample(self) -> None:
        while True:
            before = time.monotonic()
            gevent.sleep(SAMPLE_SECONDS)
            self._recent.append(max(0.0, (time.monotonic() - before - SAMPLE_SECONDS) * 1000.0))

    def recent_ms(self) -> float:
        """The worst lag of the last ``WINDOW_SAMPLES`` samples, in ms (0 before the first)."""
        return round(max(self._recent, default=0.0), 1)


def saturation(cpu_percent: float, lag_ms: float) -> str | None:
    """Why a process of the load generator looks saturated, or None when it does not."""
    reasons = []
    if cpu_percent >= CPU_SATURATED_PERCENT:
        reasons.append(f"CPU {cpu_percent:.0f}% >= {CPU_SATURATED_PERCENT:.0f}%")
    if lag_ms >= LAG_SATURATED_MS:
        reasons.append(f"loop lag {lag_ms:.0f} ms >= {LAG_SATURATED_MS:.0f} ms")
    return ", ".join(reasons) or None
