"""The runner's nemesis hook: route the plan through the fault proxy and play the scenario's schedule.

When a scenario schedules faults, the runner starts a ``FaultProxy`` in front of the target with
one route per listener (and one for the writers when a fault touches them), points each
listener's URL (and the writers') at its route, and plays the schedule in a thread: the clock
starts when the Locust coordinator logs the end of the ``subscribe`` phase (every listener
ready, writers about to start). Each window is appended to ``nemesis.jsonl`` when it opens
(``begin``) and when it closes (``window``, with what it did); the last line (``summary``) has
each route's traffic and the longest time the proxy held a chunk. The judge reads that file to
tell the network's doing from the target's, so each window says what it can do to a listener:
``disruptive`` (it can break connections), ``delays`` (it can hold data back) and
``min_delay_ms`` (per direction, the least it adds to every chunk: a latency's ``ms - jitter_ms``).

A fault at 0 s opens as soon as the proxy starts, before the listeners subscribe, so it covers
every notification of the run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from harness.errors import HarnessError
from harness.nemesis import DISRUPTIVE, WRITERS_ROUTE, Fault, FaultProxy, FaultSpec, Schedule
from harness.plan import Plan
from harness.runfolder import NEMESIS, PHASES, append_jsonl

POLL_SECONDS = 0.1
DELAYING = frozenset({Fault.LATENCY, Fault.BANDWIDTH, Fault.HALF_OPEN})


def describe(spec: FaultSpec) -> dict[str, Any]:
    """What a window of ``spec`` can do to the traffic, in the judge's terms (no fault names needed)."""
    least = max(0.0, spec.params.get("ms", 0.0) - spec.params.get("jitter_ms", 0.0))
    least = least if spec.fault is Fault.LATENCY else 0.0
    return {
        "disruptive": spec.fault in DISRUPTIVE,
        "delays": spec.fault in DELAYING,
        "min_delay_ms": {"c2s": least, "s2c": least},
    }


def _upstream(url: str) -> tuple[str, int, str]:
    """Host, port and scheme of the target URL the proxy forwards to."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    try:
        port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
    except ValueError:
        raise HarnessError(f"the nemesis cannot proxy {url!r}: bad port") from None
    if not parts.hostname:
        raise HarnessError(f"the nemesis cannot proxy {url!r}: no host")
    return parts.hostname, port, parts.scheme or "http"


def subscribed_at(run_dir: Path) -> float | None:
    """The end of the ``subscribe`` phase in ``phases.jsonl``, once the coordinator has logged it."""
    path = run_dir / PHASES
    try:
        lines = path.read_bytes().splitlines()
    except OSError:
        return None
    for line in lines:
        try:
            phase = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(phase, dict) and phase.get("name") == "subscribe" and isinstance(phase.get("end"), int | float):
            return float(phase["end"])
    return None


class NemesisRun:
    """A started proxy for one run, the thread playing its schedule, and the ``nemesis.jsonl`` it writes."""

    def __init__(self, schedule: Schedule, plan: Plan, run_dir: Path, progress: Callable[[str], None]) -> None:
        self.schedule = schedule
        self.run_dir = run_dir
        self.progress = progress
        self.listener_ids = tuple(spec.listener_id for spec in plan.listeners)
        host, port, self._scheme = _upstream(plan.target.url)
        routes = [*self.listener_ids, *([WRITERS_ROUTE] if schedule.writers else [])]
        self.proxy = FaultProxy(host, port, routes)
        self._stop = threading.Event()
        self._open: dict[int, tuple[FaultSpec, float, tuple[str, ...]]] = {}  # window id -> (fault, start, routes)
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._play, name="nemesis-schedule", daemon=True)
        self.origin: float | None = None

    def start(self, plan: Plan) -> Plan:
        """Start the proxy and the schedule; returns ``plan`` with the listeners' (and writers') URLs routed."""
        self.proxy.start()
        listeners = tuple(replace(spec, url=self.proxy.url(spec.listener_id, self._scheme)) for spec in plan.listeners)
        target = plan.target
        if self.schedule.writers:
            target = replace(target, url=self.proxy.url(WRITERS_ROUTE, self._scheme))
        self._thread.start()
        return replace(plan, listeners=listeners, target=target)

    def _write(self, record: dict[str, Any]) -> None:
        try:
            append_jsonl(self.run_dir / NEMESIS, record)
        except OSError as exc:
            self.progress(f"nemesis: cannot append to {NEMESIS}: {exc}")

    def _events(self) -> list[tuple[float, int, FaultSpec, bool]]:
        """(offset s, window id, fault, opens) for every start and every timed end, in time order."""
        events: list[tuple[float, int, FaultSpec, bool]] = []
        for window, spec in enumerate(self.schedule.faults, 1):
            events.append((spec.at, window, spec, True))
            if spec.seconds is not None:
                events.append((spec.at + spec.seconds, window, spec, False))
        return sorted(events, key=lambda e: (e[0], e[3]))  # an end before a start at the same time

    def _play(self) -> None:
        events = self._events()
        with self._lock:
            while events and events[0][0] == 0 and events[0][3]:  # faults at 0 s open before the listeners subscribe
                _, window, spec, _ = events.pop(0)
                self._begin(window, spec)
        while (origin := subscribed_at(self.run_dir)) is None:
            if self._stop.wait(POLL_SECONDS):
                return
        self.origin = origin
        for offset, window, spec, opens in events:
            if self._stop.wait(max(0.0, origin + offset - time.time())):
                return
            with self._lock:
                if self._stop.is_set():
                    return
                if opens:
                    self._begin(window, spec)
                elif window in self._open:
                    self._end(window)

    def _begin(self, window: int, spec: FaultSpec) -> None:
        routes = spec.routes(self.listener_ids)
        start = time.time()
        try:
            self.proxy.begin(window, spec.fault, spec.params, routes)
        except HarnessError as exc:
            self.progress(f"nemesis: {spec.fault} not started: {exc}")
            return
        self._open[window] = (spec, start, routes)
        self._write({"kind": "begin", "id": window, "fault": str(spec.fault), "start": start, "routes": list(routes),
                     "params": dict(spec.params), "at": spec.at, **describe(spec)})  # fmt: skip
        span = f"{spec.seconds:g} s" if spec.seconds is not None else "the rest of the run"
        self.progress(f"nemesis: {spec.fault} on {', '.join(routes)} for {span}")

    def _end(self, window: int, until_end: bool = False) -> None:
        spec, start, routes = self._open.pop(window)
        try:
            counts: dict[str, Any] = self.proxy.end(window)
        except HarnessError as exc:
            counts = {"error": str(exc)}
        self._write({"kind": "window", "id": window, "fault": str(spec.fault), "start": start, "end": time.time(),
                     "routes": list(routes), "params": dict(spec.params), "until_end": until_end,
                     **describe(spec), "counts": counts})  # fmt: skip

    def stop(self) -> None:
        """Stop the schedule, close the windows still open (ending with the run), write the summary, stop the proxy."""
        self._stop.set()
        self._thread.join(5.0)
        with self._lock:
            for window in list(self._open):
                self._end(window, until_end=True)
            try:
                routes = self.proxy.stats()
            except HarnessError:
                routes = {}
            self._write(
                {
                    "kind": "summary", "origin": self.origin, "schedule": self.schedule.to_list(), "routes": routes,
                    "loop_lag_ms": self.proxy.worst_lag_ms,
                }
            )  # fmt: skip
        self.proxy.stop()
