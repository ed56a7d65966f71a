"""How many Locust processes a plan needs so that no one of them is the bottleneck.

The per-process limits come from ``make bench``'s harness section (BENCHMARKS.md) on the
reference machine, with headroom: a process near its ingest or write limit queues its own
greenlets and adds that queueing to every latency it measures. ``advise`` gives the worker
count for the plan (0 = one in-process runner) and says why, and what one machine cannot hold.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from harness.plan import Plan, Step

# Per Locust process, about half of what BENCHMARKS.md measured (figures 1, 4 and 6), so the
# generator's own queueing stays well under a millisecond at the rates it is asked for.
NOTIFICATIONS_PER_PROCESS = 4_000.0  # fully checked notifications/s (figure 1: about 9,000)
WRITES_PER_PROCESS = 2_500.0  # inserts/s with one request in flight per writer (figure 6: about 5,000)
LISTENERS_PER_PROCESS = 500  # subscribed listeners (figure 3 holds 10,000 idle; fan-in spread grows with L)


@dataclass(frozen=True)
class Layout:
    """The worker processes to run (0: one in-process runner) and the reasons, one line each."""

    workers: int
    notes: tuple[str, ...] = field(default_factory=tuple)


def _peak_rate(program: Iterable[Step]) -> float:
    """The highest paced rate of a writer stream's program (0 when unpaced or only pauses)."""
    return max((float(step.rate) for step in program if step.rate and step.op != "pause"), default=0.0)


def load_of(plan: Plan) -> tuple[float, float, int]:
    """(writes/s, notifications/s, listeners) the plan asks for at its peak, with every writer at its highest rate."""
    writes = 0.0
    notifications = 0.0
    for writer in plan.writers:
        rate = _peak_rate(writer.program)
        writes += rate
        seen_by = sum(1 for li in plan.listeners if li.conversation_id in (None, writer.conversation_id))
        notifications += rate * seen_by
    return writes, notifications, len(plan.listeners)


def advise(plan: Plan, asked: int, cpus: int) -> Layout:
    """Workers for ``plan`` when ``asked`` were asked for (0: let the plan decide) on ``cpus`` cores."""
    writes, notifications, listeners = load_of(plan)
    need = max(
        math.ceil(writes / WRITES_PER_PROCESS),
        math.ceil(notifications / NOTIFICATIONS_PER_PROCESS),
        math.ceil(listeners / LISTENERS_PER_PROCESS),
        1,
    )
    load = (
        f"{writes:,.0f} writes/s, {notifications:,.0f} notifications/s, {listeners:,} listeners; one process "
        f"holds {WRITES_PER_PROCESS:,.0f} writes/s, {NOTIFICATIONS_PER_PROCESS:,.0f} notifications/s, "
        f"{LISTENERS_PER_PROCESS:,} listeners"
    )
    if asked > 0:
        if asked < need:
            return Layout(asked, (f"{asked} worker(s) asked, the plan needs {need} ({load}): expect generator lag",))
        return Layout(asked)
    if need == 1:
        return Layout(0)
    workers = min(need, max(cpus, 1))
    notes = [f"spreading the users over {workers} Locust worker processes ({load})"]
    if workers < need:
        notes.append(f"the plan needs {need} processes but this machine has {cpus} cores: expect generator lag")
    return Layout(workers, tuple(notes))
