"""A scenario's network faults as data: which fault, when, for how long, on which routes.

A scenario's ``nemesis`` table lists faults (``[[scenario."<name>".nemesis]]`` entries). Each
names a ``fault`` of :class:`Fault`, starts ``at`` seconds after the listeners are ready (the
end of the ``subscribe`` phase: when writers start), lasts ``seconds`` (absent: until the run
ends), takes the fault's ``params`` and applies to the routes of ``listeners`` (listener ids
such as ``"L1"``; absent: every listener) and, when ``writers`` is true, to the writers' route.
Bad entries are one-line ``HarnessError``s naming the scenario.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from harness.errors import HarnessError

WRITERS_ROUTE = "writers"  # the route name of the writers' (and the coordinator's) connections


class Fault(StrEnum):
    """The network faults the proxy injects (see ``harness.nemesis.proxy`` for their mechanics)."""

    OUTAGE = "outage"  # every connection reset, new ones refused, for the window
    LATENCY = "latency"  # each chunk held ``ms`` +- ``jitter_ms`` in each direction, order kept
    BANDWIDTH = "bandwidth"  # each direction of each connection paced to ``bytes_per_second``
    RESET_MID_FRAME = "reset-mid-frame"  # the next chunk from the target cut in half, then both sides reset
    HALF_OPEN = "half-open"  # nothing forwarded either way, nothing closed; forwarding resumes after
    PARTITION = "partition"  # traffic silently dropped, new connections held unanswered; closed at the end


PARAMS: dict[Fault, dict[str, float]] = {
    # every parameter a fault takes, with its default
    Fault.OUTAGE: {},
    Fault.LATENCY: {"ms": 100.0, "jitter_ms": 0.0},
    Fault.BANDWIDTH: {"bytes_per_second": 65536.0},
    Fault.RESET_MID_FRAME: {},
    Fault.HALF_OPEN: {},
    Fault.PARTITION: {},
}
# Faults that break connections: the listeners' disconnects in their windows are the network's.
DISRUPTIVE = frozenset({Fault.OUTAGE, Fault.RESET_MID_FRAME, Fault.HALF_OPEN, Fault.PARTITION})
ENTRY_KEYS = ("at", "fault", "seconds", "params", "listeners", "writers")


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One scheduled fault: ``fault`` from ``at`` s for ``seconds`` s (None: to the end) on its routes."""

    at: float
    fault: Fault
    seconds: float | None = None
    params: Mapping[str, float] = field(default_factory=dict)
    listeners: tuple[str, ...] | None = None  # listener ids; None: every listener
    writers: bool = False

    def routes(self, listener_ids: tuple[str, ...]) -> tuple[str, ...]:
        """The route names this fault applies to, given the plan's listener ids."""
        chosen = listener_ids if self.listeners is None else tuple(i for i in listener_ids if i in self.listeners)
        return (*chosen, WRITERS_ROUTE) if self.writers else chosen

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "fault": str(self.fault),
            "seconds": self.seconds,
            "params": dict(self.params),
            "listeners": list(self.listeners) if self.listeners is not None else None,
            "writers": self.writers,
        }


@dataclass(frozen=True, slots=True)
class Schedule:
    """A scenario's faults in the order they start."""

    faults: tuple[FaultSpec, ...] = ()

    @property
    def writers(self) -> bool:
        """True when some fault touches the writers' route, so writers must go through the proxy."""
        return any(f.writers for f in self.faults)

    def to_list(self) -> list[dict[str, Any]]:
        return [f.to_dict() for f in self.faults]


def _number(where: str, key: str, value: Any, minimum: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise HarnessError(f"{where}: {key} must be a number >= {minimum:g}, got {value!r}")
    return float(value)


def parse_fault(where: str, raw: Any) -> FaultSpec:
    """One schedule entry; an unknown key, fault or parameter, or a bad value, is a one-line HarnessError."""
    if not isinstance(raw, dict):
        raise HarnessError(f"{where} must be a table, got {raw!r}")
    unknown = [k for k in raw if k not in ENTRY_KEYS]
    if unknown:
        raise HarnessError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(ENTRY_KEYS)})")
    try:
        fault = Fault(str(raw.get("fault")))
    except ValueError:
        known = ", ".join(str(f) for f in Fault)
        raise HarnessError(f"{where}: unknown fault {raw.get('fault')!r} (known: {known})") from None
    at = _number(where, "at", raw.get("at", 0.0), 0.0)
    seconds = None if raw.get("seconds") is None else _number(where, "seconds", raw["seconds"], 0.01)
    given = raw.get("params", {})
    if not isinstance(given, dict):
        raise HarnessError(f"{where}: params must be a table, got {given!r}")
    allowed = PARAMS[fault]
    params: dict[str, float] = {}
    for key, value in given.items():
        if key not in allowed:
            known = ", ".join(allowed) or "none"
            raise HarnessError(f"{where}: fault {fault} takes no parameter {key!r} (known: {known})")
        params[key] = _number(where, f"params.{key}", value, 0.0)
    params = {**allowed, **params}
    if fault is Fault.LATENCY and params["jitter_ms"] > params["ms"]:
        raise HarnessError(f"{where}: latency jitter_ms ({params['jitter_ms']:g}) exceeds ms ({params['ms']:g})")
    if fault is Fault.BANDWIDTH and params["bytes_per_second"] < 1:
        raise HarnessError(f"{where}: bandwidth bytes_per_second must be at least 1")
    listeners = raw.get("listeners")
    if listeners is not None and (not isinstance(listeners, list) or not all(isinstance(i, str) for i in listeners)):
        raise HarnessError(f'{where}: listeners must be a list of listener ids such as "L1", got {listeners!r}')
    writers = raw.get("writers", False)
    if not isinstance(writers, bool):
        raise HarnessError(f"{where}: writers must be true or false, got {writers!r}")
    return FaultSpec(at, fault, seconds, params, tuple(listeners) if listeners is not None else None, writers)


def parse_schedule(where: str, raw: Any, listener_ids: tuple[str, ...] | None = None) -> Schedule:
    """A scenario's ``nemesis`` list; with ``listener_ids``, every listener a fault names must exist."""
    if raw is None:
        return Schedule()
    if not isinstance(raw, list):
        raise HarnessError(f"{where}: nemesis must be a list of fault tables, got {raw!r}")
    faults = [parse_fault(f"{where}: nemesis entry {n}", entry) for n, entry in enumerate(raw, 1)]
    if listener_ids is not None:
        for n, spec in enumerate(faults, 1):
            missing = [i for i in spec.listeners or () if i not in listener_ids]
            if missing:
                raise HarnessError(
                    f"{where}: nemesis entry {n} names listener {missing[0]!r}, "
                    f"but the scenario has {', '.join(listener_ids) or 'no listeners'}"
                )
    return Schedule(tuple(sorted(faults, key=lambda f: f.at)))
