"""How many Locust processes a plan needs so that no one of them is the bottleneck.

The per-process limits are measured: ``make bench``'s harness section (figures 1, 4 and 6) writes
them to ``capacity.json`` in the harness's cache folder (``capacity_path``), and the runner reads
them from there. A process near its ingest or write limit queues its own greenlets and adds that
queueing to every latency it measures, so the ingest and write limits keep half the measured rate
as headroom; the listener limit is the fan-in figure itself (the listener count above which one
change's arrival spread in a process exceeds 5 ms). Without a bench on this machine the
conservative ``DEFAULT`` figures apply, and the runner says which it used. ``advise`` gives the
worker count for the plan (0 = one in-process runner) and says why, and what one machine cannot hold.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from harness.plan import Plan, Step

HEADROOM = 0.5  # share of a measured rate a process is planned for
CAPACITY_FILE = "capacity.json"


@dataclass(frozen=True)
class Capacity:
    """What one Locust process holds: fully checked notifications/s, inserts/s, subscribed listeners."""

    notifications: float
    writes: float
    listeners: int
    source: str  # where the figures come from, for the runner's note

    def to_dict(self) -> dict[str, Any]:
        return {
            "notifications": self.notifications,
            "writes": self.writes,
            "listeners": self.listeners,
            "source": self.source,
        }


# Without a measurement: below what the bench measured on the 2-core reference VM (BENCHMARKS.md).
DEFAULT = Capacity(4_000.0, 2_500.0, 10, "default figures (no `make bench` on this machine)")


def capacity_path() -> Path:
    """Where ``make bench`` keeps the measured capacity: ``$XDG_CACHE_HOME`` (or ``~/.cache``)/livequery-harness."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "livequery-harness" / CAPACITY_FILE


def from_bench(harness: Mapping[str, Any], measured_at: str) -> Capacity:
    """The capacity the bench's harness figures give: half the ingest and write rates, the fan-in limit."""
    limit = harness["fanin"]["limit"]
    return Capacity(
        notifications=round(harness["ingest"]["harness"]["rate"] * HEADROOM),
        writes=round(harness["writes"]["harness"]["rate"] * HEADROOM),
        listeners=int(limit) if limit else 1,
        source=f"measured by `make bench` on {measured_at}",
    )


def save(capacity: Capacity, path: Path | None = None) -> Path:
    """Write ``capacity`` where the runner reads it; the path written."""
    path = path or capacity_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(capacity.to_dict(), option=orjson.OPT_INDENT_2))
    return path


def load(path: Path | None = None) -> Capacity:
    """The measured capacity, or ``DEFAULT`` when no bench wrote one (or what it wrote is unreadable)."""
    path = path or capacity_path()
    try:
        data = orjson.loads(path.read_bytes())
        found = Capacity(
            float(data["notifications"]), float(data["writes"]), int(data["listeners"]), str(data["source"])
        )
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return DEFAULT
    if found.notifications <= 0 or found.writes <= 0 or found.listeners < 1:
        return DEFAULT
    return found


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


def advise(plan: Plan, asked: int, cpus: int, capacity: Capacity | None = None) -> Layout:
    """Workers for ``plan`` when ``asked`` were asked for (0: let the plan decide) on ``cpus`` cores,
    with ``capacity`` per process (the runner passes ``load()``; ``DEFAULT`` without one).

    Locust spreads each user class evenly over the workers, so ``n`` workers give each about a
    ``1/n`` share of the writers, the listeners and the notifications they receive.
    """
    cap = capacity or DEFAULT
    writes, notifications, listeners = load_of(plan)
    need = max(
        math.ceil(writes / cap.writes),
        math.ceil(notifications / cap.notifications),
        math.ceil(listeners / cap.listeners),
        1,
    )
    load_text = (
        f"{writes:,.0f} writes/s, {notifications:,.0f} notifications/s, {listeners:,} listeners; one process "
        f"holds {cap.writes:,.0f} writes/s, {cap.notifications:,.0f} notifications/s, {cap.listeners:,} listeners "
        f"({cap.source})"
    )
    if asked > 0:
        if asked < need:
            return Layout(
                asked, (f"{asked} worker(s) asked, the plan needs {need} ({load_text}): expect generator lag",)
            )
        return Layout(asked)
    if need == 1:
        return Layout(0)
    workers = min(need, max(cpus, 1))
    notes = [f"spreading the users over {workers} Locust worker processes ({load_text})"]
    if workers < need:
        notes.append(f"the plan needs {need} processes but this machine has {cpus} cores: expect generator lag")
    return Layout(workers, tuple(notes))
