"""The network's share of a run: the nemesis fault windows (``nemesis.jsonl``) as the judge uses them.

A run whose scenario scheduled network faults (run.json ``profile.nemesis``) must not have the
target blamed for them. Each window in the file says what it can do (``disruptive``: break
connections; ``delays``: hold data back; ``min_delay_ms``: the least it adds to every chunk), so
the judge needs no fault vocabulary. SC-057 excuses the disconnects a disruptive window caused
when the listener came back soon after it; SC-054 bounds the server's share of the latency by
what the proxy added. A run that scheduled faults but has no readable file is inconclusive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from reports.runfolder import RunFolder
from reports.verdict import Unsupported

DIRECTIONS = ("c2s", "s2c")
WRITERS_ROUTE = "writers"  # the nemesis's route of the writers' connections (see docs/run-folder.md)


@dataclass(frozen=True, slots=True)
class Window:
    """One fault window: when, on which routes, and what it can do."""

    id: int
    fault: str
    start: float
    end: float
    routes: frozenset[str]
    disruptive: bool
    delays: bool
    min_delay_ms: dict[str, float]
    until_end: bool = False
    counts: dict[str, Any] = field(default_factory=dict)
    params: dict[str, float] = field(default_factory=dict)

    def label(self, t0: float | None = None) -> str:
        offset = 0.0 if t0 is None else t0
        names = sorted(self.routes, key=lambda r: (len(r), r))
        where = ", ".join(names) if len(names) <= 4 else f"{len(names)} routes ({names[0]}..{names[-1]})"
        return f"{self.fault} {self.start - offset:.1f}-{self.end - offset:.1f} s on {where}"


@dataclass(frozen=True, slots=True)
class Network:
    """The windows of a run and the proxy's per-route traffic (``summary`` line; empty if the run died first)."""

    windows: tuple[Window, ...]
    routes: dict[str, dict[str, Any]]
    run_end: float | None
    loop_lag_ms: float = 0.0  # the proxy loop's worst lateness: how long a chunk may have waited to be read

    def disrupting(self, listener: str, at: float, grace: float) -> Window | None:
        """The disruptive window on ``listener``'s route open at ``at`` (or ended at most ``grace`` s before)."""
        for w in self.windows:
            if w.disruptive and listener in w.routes and w.start <= at <= w.end + grace:
                return w
        return None

    def held_ms(self, listeners: set[str]) -> float:
        """The longest the proxy held a chunk on a notification's way: to a listener, plus from a writer.

        A hold counts from the chunk's read; before it, the chunk may have waited up to the proxy loop's
        worst lateness (on each proxied leg), which is the network's too.
        """
        to_listener = max((self._max_hold(r, "s2c") for r in listeners), default=0.0)
        legs = 1 + (WRITERS_ROUTE in self.routes)
        return to_listener + self._max_hold(WRITERS_ROUTE, "c2s") + legs * self.loop_lag_ms

    def _max_hold(self, route: str, direction: str) -> float:
        flow = (self.routes.get(route) or {}).get(direction)
        if isinstance(flow, dict) and isinstance(flow.get("max_hold_ms"), int | float):
            return float(flow["max_hold_ms"])
        # no summary line: the windows' own counts (they cover only the chunks held while a window was open)
        held = [
            float(w.counts.get(direction, {}).get("max_hold_ms", 0.0))
            for w in self.windows
            if route in w.routes and isinstance(w.counts.get(direction), dict)
        ]
        return max(held, default=0.0)

    def least_added_ms(self, listeners: set[str], start: float, end: float) -> float:
        """The delay every notification between ``start`` and ``end`` surely got from windows covering that span."""
        total = 0.0
        for w in self.windows:
            if w.start > start or (w.end < end and not w.until_end):
                continue
            if listeners <= w.routes:
                total += float(w.min_delay_ms.get("s2c", 0.0))
            if WRITERS_ROUTE in w.routes:
                total += float(w.min_delay_ms.get("c2s", 0.0))
        return total

    @property
    def delaying(self) -> list[Window]:
        return [w for w in self.windows if w.delays]


def _window(raw: dict[str, Any], run_end: float | None) -> Window | None:
    try:
        end = raw.get("end")
        return Window(
            id=int(raw["id"]),
            fault=str(raw["fault"]),
            start=float(raw["start"]),
            end=float(end) if isinstance(end, int | float) else float(run_end or raw["start"]),
            routes=frozenset(str(r) for r in raw.get("routes") or ()),
            disruptive=bool(raw.get("disruptive")),
            delays=bool(raw.get("delays")),
            min_delay_ms={d: float((raw.get("min_delay_ms") or {}).get(d, 0.0)) for d in DIRECTIONS},
            until_end=bool(raw.get("until_end")) or not isinstance(end, int | float),
            counts=dict(raw.get("counts") or {}),
            params={str(k): float(v) for k, v in (raw.get("params") or {}).items()},
        )
    except (KeyError, TypeError, ValueError):
        return None


def network(folder: RunFolder) -> Network | None:
    """The run's network faults, or None when its scenario scheduled none.

    A window that opened (``begin``) and never closed (the runner died) lasts to the run's end.
    Raises ``Unsupported`` when faults were scheduled but ``nemesis.jsonl`` cannot be used.
    """
    scheduled = folder.profile.get("nemesis")
    if not scheduled and not folder.nemesis:
        return None
    if not folder.nemesis:
        why = folder.problems.get("nemesis.jsonl", "missing")
        raise Unsupported(f"the scenario scheduled network faults but nemesis.jsonl is {why}, so the network's share "
                          "of disconnects and delay is unknown")  # fmt: skip
    ended = (folder.run or {}).get("ended_at")
    run_end = float(ended) if isinstance(ended, int | float) else None
    closed = {int(r["id"]): r for r in folder.nemesis if r.get("kind") == "window" and isinstance(r.get("id"), int)}
    opened = {int(r["id"]): r for r in folder.nemesis if r.get("kind") == "begin" and isinstance(r.get("id"), int)}
    windows = [_window(closed.get(i) or {**opened[i], "end": None}, run_end) for i in sorted({*closed, *opened})]
    summary: dict[str, Any] = next((r for r in reversed(folder.nemesis) if r.get("kind") == "summary"), {})
    raw_routes = summary.get("routes")
    routes = {str(k): v for k, v in raw_routes.items() if isinstance(v, dict)} if isinstance(raw_routes, dict) else {}
    lag = summary.get("loop_lag_ms")
    loop_lag = float(lag) if isinstance(lag, int | float) and not isinstance(lag, bool) and lag > 0 else 0.0
    return Network(tuple(w for w in windows if w is not None), routes, run_end, loop_lag)
