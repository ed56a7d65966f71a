"""The live warning that the load generator looks saturated, from its CPU and event-loop lag.

A gevent loop that is late to wake a sleeping greenlet is late to read notifications too, so
the lag (``locustfiles.lag``) is added to every latency measured in that process. Workers send
theirs on Locust's report cycle, and the Delivery tab shows it beside each process's CPU (Locust
measures that itself). The judge's saturation check (from ``generator.jsonl``) decides a verdict;
this is the live warning.
"""

from __future__ import annotations

CPU_SATURATED_PERCENT = 90.0  # Locust warns at the same CPU use
LAG_SATURATED_MS = 100.0


def saturation(cpu_percent: float, lag_ms: float) -> str | None:
    """Why a process of the load generator looks saturated, or None when it does not."""
    reasons = []
    if cpu_percent >= CPU_SATURATED_PERCENT:
        reasons.append(f"CPU {cpu_percent:.0f}% >= {CPU_SATURATED_PERCENT:.0f}%")
    if lag_ms >= LAG_SATURATED_MS:
        reasons.append(f"loop lag {lag_ms:.0f} ms >= {LAG_SATURATED_MS:.0f} ms")
    return ", ".join(reasons) or None
