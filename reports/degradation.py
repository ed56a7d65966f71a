"""The degradation curve of a ramp run: each ``step-<n>``'s figures and state, where the SLO breaks, why it stopped.

A step of an open-ended ramp carries its own figures (measured by the coordinator from Locust's
statistics after the step's settle time: ``harness.ramp_steps.StepFigures``); the judge judges them
again with its own SLO (criteria.toml ``[report]``), by the rule the coordinator used to stop the
ramp. Steps without figures (an interactive ramp: user counts changed in the web UI) are measured
from the Locust history instead, with the generator's health unknown.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

from harness.ramp_steps import StepFigures, StepSlo, StepState, judge_step
from reports.measures import step_error_ratios
from reports.runfolder import Phase, RunFolder

WRITE_TYPES = ("SQL",)
LATENCY_TYPE = "NOTIFY"


@dataclass(frozen=True, slots=True)
class StepPoint:
    """One ramp step: its load setting, its figures and its state under the judge's SLO."""

    name: str
    users: Any
    figures: StepFigures
    state: StepState
    why: str
    recorded: bool  # figures from the step's own record (else from the Locust history)
    server_cpu_pct: float  # median over the measurement window of the server's CPU (% of a core; NaN: unknown)

    @property
    def breaks_slo(self) -> bool:
        return self.state is StepState.BROKE

    @property
    def writes_per_s(self) -> float:
        return self.figures.writes_per_s

    @property
    def notify_per_s(self) -> float:
        return self.figures.notify_per_s

    @property
    def p95_ms(self) -> float:
        return self.figures.notify_p95_ms

    def line(self) -> str:
        """The step in one line: achieved and asked rate, latencies, errors, state."""
        f = self.figures

        def ms(v: float) -> str:
            return "-" if math.isnan(v) else f"{v:.0f}"

        cpu = "" if math.isnan(self.server_cpu_pct) else f", server CPU {self.server_cpu_pct:.0f}%"
        return (
            f"{self.name} {f.writes_per_s:.0f}/{f.asked:.0f} writes/s, write p95 {ms(f.write_p95_ms)} ms, "
            f"delivery p95 {ms(f.notify_p95_ms)} ms, errors {f.error_ratio:.1%}{cpu}: {self.state.value}"
        )


@dataclass(frozen=True, slots=True)
class Degradation:
    """The judged steps, the first break, the capacity, and how the ramp stopped (the ``ramp`` phase)."""

    points: list[StepPoint]
    slo: StepSlo
    first_break: str | None  # the first step that broke the SLO
    capacity_writes_per_s: float | None  # achieved writes/s of the last step before the first break (which held)
    held_writes_per_s: float | None  # the highest achieved writes/s of a step that held the SLO
    stop: str | None  # the ``ramp`` phase's ``stop`` (harness.ramp_steps.RampStop), None without one

    @property
    def slo_p95_ms(self) -> float:
        return self.slo.notify_p95_ms

    @property
    def slo_max_error_ratio(self) -> float:
        return self.slo.max_error_ratio

    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and math.isnan(v) else v

        steps = []
        for p in self.points:
            f = p.figures
            steps.append(
                {
                    "name": p.name, "users": p.users, "rate": f.asked, "writes_per_s": round(f.writes_per_s, 1),
                    "notify_per_s": round(f.notify_per_s, 1), "p95_ms": clean(f.notify_p95_ms),
                    "write_p95_ms": clean(f.write_p95_ms), "error_ratio": round(f.error_ratio, 6),
                    "generator_lag_ms": f.generator_lag_ms, "generator_cpu_pct": f.generator_cpu_pct,
                    "server_cpu_pct": clean(p.server_cpu_pct),
                    "state": p.state.value, "why": p.why, "breaks_slo": p.breaks_slo,
                }
            )  # fmt: skip
        return {
            "slo": self.slo.describe(),
            "slo_p95_ms": self.slo.notify_p95_ms,
            "slo_max_error_ratio": self.slo.max_error_ratio,
            "first_break": self.first_break,
            "capacity_writes_per_s": clean(self.capacity_writes_per_s),
            "held_writes_per_s": clean(self.held_writes_per_s),
            "stop": self.stop,
            "steps": steps,
        }


def _rate(rows: pd.DataFrame, start: float, end: float) -> float:
    """Requests of ``rows`` completed in [start, end] per second, from Locust's cumulative counts.

    Locust's own ``Requests/s`` column is a rolling average over ~10 s and lags short steps.
    """
    if rows.empty or end <= start or "Total Request Count" not in rows:
        return 0.0
    done = 0
    for _, group in rows.groupby(["Type", "Name"]):
        before = group[group["Timestamp"] <= start]["Total Request Count"]
        upto = group[group["Timestamp"] <= end]["Total Request Count"]
        if len(upto):
            done += int(upto.iloc[-1] - (before.iloc[-1] if len(before) else 0))
    return done / (end - start)


def _median(rows: pd.DataFrame, column: str, start: float, end: float) -> float:
    inside = rows[(rows["Timestamp"] >= start) & (rows["Timestamp"] <= end)]
    return float(inside[column].median()) if column in inside and inside[column].notna().any() else math.nan


def _from_history(folder: RunFolder, step: Phase, errors: dict[str, float]) -> StepFigures:
    """A step's figures from the Locust history: rates from cumulative counts, p95 as the median over the step
    of Locust's current p95, the error ratio from the cumulative failures; the generator's health unknown."""
    history = folder.history
    typed = history[history["Name"] != "Aggregated"]
    writes = typed[typed["Type"].isin(WRITE_TYPES)]
    if writes.empty:
        writes = history[history["Name"] == "Aggregated"]
    notify = typed[typed["Type"] == LATENCY_TYPE]
    seconds = step.end - step.start
    done = round(_rate(writes, step.start, step.end) * seconds)
    rate = step.extra.get("rate")
    return StepFigures(
        asked=float(rate) if isinstance(rate, int | float) else 0.0,
        seconds=seconds,
        writes=done,
        failures=round(done * errors.get(step.name, 0.0)),
        write_p95_ms=_median(writes, "95%", step.start, step.end),
        write_p99_ms=_median(writes, "99%", step.start, step.end),
        notify=round(_rate(notify, step.start, step.end) * seconds),
        notify_p95_ms=_median(notify, "95%", step.start, step.end),
        notify_p99_ms=_median(notify, "99%", step.start, step.end),
    )


def _server_cpu(folder: RunFolder, step: Phase) -> float:
    """The server's median CPU (% of one core, monitor.jsonl) over the step's measurement window: a server
    whose answers slow down while its CPU stays low is waiting, or not given the CPU, rather than busy."""
    frame = folder.monitor
    if frame.empty or "cpu_core_pct" not in frame:
        return math.nan
    start = step.extra.get("measured_from")
    start = float(start) if isinstance(start, int | float) else step.start
    cpu = frame[frame["alive"] & (frame["t"] >= start) & (frame["t"] <= step.end)]["cpu_core_pct"].dropna()
    return float(cpu.median()) if len(cpu) else math.nan


def degradation(folder: RunFolder, report_cfg: dict[str, Any]) -> Degradation | None:
    """The judged steps of a ramp run; None when the run has no ``step-<n>`` phases, or none with figures and
    no Locust history to measure them from."""
    steps = folder.steps()
    if not steps:
        return None
    slo = StepSlo.from_report(report_cfg)
    recorded = [StepFigures.from_record(step.extra) for step in steps]
    history = folder.history
    if any(f is None for f in recorded) and (history.empty or "Timestamp" not in history):
        return None
    errors = {name: ratio for name, ratio, _ in step_error_ratios(folder)}
    points = []
    for step, figures in zip(steps, recorded, strict=True):
        own = figures is not None
        figures = figures if figures is not None else _from_history(folder, step, errors)
        state, why = judge_step(figures, slo)
        cpu = _server_cpu(folder, step)
        points.append(StepPoint(step.name, step.extra.get("users"), figures, state, why, own, cpu))
    first = next((i for i, p in enumerate(points) if p.breaks_slo), None)
    held = [p.writes_per_s for p in points[: len(points) if first is None else first] if p.state is StepState.HELD]
    capacity = None
    if first is not None and first > 0 and points[first - 1].state is StepState.HELD:
        capacity = points[first - 1].writes_per_s
    ramp = folder.phases_named("ramp")
    stop = str(ramp[-1].extra.get("stop")) if ramp and ramp[-1].extra.get("stop") else None
    return Degradation(
        points, slo, points[first].name if first is not None else None, capacity, max(held) if held else None, stop
    )
