"""The degradation curve of a ramp run: throughput and latency per ``step-<n>`` and where the SLO breaks."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from reports.measures import step_error_ratios
from reports.runfolder import RunFolder

WRITE_TYPES = ("SQL",)
LATENCY_TYPE = "NOTIFY"


@dataclass(frozen=True, slots=True)
class StepPoint:
    """One ramp step: its load setting and what the history CSV measured during it."""

    name: str
    users: Any
    rate: Any
    writes_per_s: float  # SQL requests completed during the step / its length (Aggregated without typed rows)
    notify_per_s: float
    p95_ms: float  # median over the step of NOTIFY's current p95 (NaN without NOTIFY rows)
    error_ratio: float | None
    breaks_slo: bool


@dataclass(frozen=True, slots=True)
class Degradation:
    points: list[StepPoint]
    slo_p95_ms: float
    slo_max_error_ratio: float
    first_break: str | None  # name of the first step that breaks the SLO
    capacity_writes_per_s: float | None  # throughput of the last step before the first break

    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and math.isnan(v) else v

        return {
            "slo_p95_ms": self.slo_p95_ms,
            "slo_max_error_ratio": self.slo_max_error_ratio,
            "first_break": self.first_break,
            "capacity_writes_per_s": clean(self.capacity_writes_per_s),
            "steps": [{k: clean(v) for k, v in asdict(p).items()} for p in self.points],
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


def _within(rows: pd.DataFrame, start: float, end: float) -> pd.DataFrame:
    return rows[(rows["Timestamp"] >= start) & (rows["Timestamp"] <= end)]


def degradation(folder: RunFolder, report_cfg: dict[str, Any]) -> Degradation | None:
    """Per-step measures for a ramp run; None when the run has no ``step-<n>`` phases or no history."""
    steps = folder.steps()
    history = folder.history
    if not steps or history.empty or "Timestamp" not in history:
        return None
    slo, max_err = float(report_cfg["slo_p95_ms"]), float(report_cfg["slo_max_error_ratio"])
    errors = {name: ratio for name, ratio, _ in step_error_ratios(folder)}
    typed = history[history["Name"] != "Aggregated"]
    writes = typed[typed["Type"].isin(WRITE_TYPES)]
    if writes.empty:
        writes = history[history["Name"] == "Aggregated"]
    notify = typed[typed["Type"] == LATENCY_TYPE]
    points = []
    for step in steps:
        step_notify = _within(notify, step.start, step.end)
        p95 = (
            float(step_notify["95%"].median())
            if "95%" in step_notify and step_notify["95%"].notna().any()
            else math.nan
        )
        err = errors.get(step.name)
        breaks = (not math.isnan(p95) and p95 > slo) or (err is not None and err > max_err)
        points.append(
            StepPoint(
                name=step.name,
                users=step.extra.get("users"),
                rate=step.extra.get("rate"),
                writes_per_s=_rate(writes, step.start, step.end),
                notify_per_s=_rate(notify, step.start, step.end),
                p95_ms=p95,
                error_ratio=err,
                breaks_slo=breaks,
            )
        )
    first = next((i for i, p in enumerate(points) if p.breaks_slo), None)
    capacity = None
    if first is None:
        capacity = max(p.writes_per_s for p in points) if points else None
    elif first > 0:
        capacity = max(p.writes_per_s for p in points[:first])
    return Degradation(points, slo, max_err, points[first].name if first is not None else None, capacity)
