"""Whether the load generator itself was saturated during the load phase (generator.jsonl).

A saturated generator under-drives the server and inflates the latencies it measures, so
criteria it can distort become "inconclusive" instead of "fail".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from reports.runfolder import GENERATOR, RunFolder

SATURATED = "saturated"
HEALTHY = "healthy"
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Saturation:
    """``state`` is saturated / healthy / unknown; ``evidence`` says which process and how long."""

    state: str
    evidence: str
    worst_fraction: float | None = None

    @property
    def saturated(self) -> bool:
        return self.state == SATURATED

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "evidence": self.evidence, "worst_fraction": self.worst_fraction}


def assess(folder: RunFolder, cfg: dict[str, Any]) -> Saturation:
    """Per generator process, the fraction of its load-phase samples at or above ``saturated_core_pct``."""
    frame = folder.generator
    if frame.empty:
        return Saturation(UNKNOWN, f"generator not monitored ({folder.why_missing(GENERATOR) or 'no samples'})")
    window = folder.load_window()
    if window is None:
        return Saturation(UNKNOWN, "no load phase in run.json to check the generator against")
    inside = frame[(frame["t"] >= window[0]) & (frame["t"] <= window[1])]
    if "cpu_core_pct" not in inside:
        return Saturation(UNKNOWN, "generator samples carry no cpu_core_pct")
    inside = inside[inside["cpu_core_pct"].notna()]
    if inside.empty:
        return Saturation(UNKNOWN, "no generator CPU sample during the load phase")
    limit = float(cfg["saturated_core_pct"])
    allowed = float(cfg["max_saturated_fraction"])
    per_process = [
        (float((group["cpu_core_pct"] >= limit).mean()), group)
        for _, group in inside.groupby(_process_key(inside), sort=False)
    ]
    fraction, group = max(per_process, key=lambda item: item[0])
    role, pid = _first(group, "role"), _first(group, "pid")
    peak, n = float(group["cpu_core_pct"].max()), len(group)
    text = (
        f"generator {role or 'process'} pid {'unknown' if pid is None else int(pid)} at >= {limit:.0f}% of a "
        f"core in {fraction:.0%} of its {n} load-phase samples (peak {peak:.0f}%, allowed {allowed:.0%})"
    )
    return Saturation(SATURATED if fraction > allowed else HEALTHY, text, fraction)


def _process_key(samples: pd.DataFrame) -> pd.Series:
    """Which generator process each sample is from: its pid, else its role (else one shared key)."""
    key = pd.Series("unnamed", index=samples.index, dtype=object)
    for column, label in (("role", "role {}"), ("pid", "pid {}")):  # a pid overrides the role
        values = samples.get(column)
        if values is not None:
            named = values.notna()
            key[named] = [label.format(v) for v in values[named]]
    return key


def _first(samples: pd.DataFrame, column: str) -> Any:
    """The first non-null value of ``column``, or None when the column is missing or empty."""
    values = samples.get(column)
    if values is None:
        return None
    present = values.dropna()
    return present.iloc[0] if len(present) else None


@dataclass(frozen=True, slots=True)
class Lag:
    """The generator's worst event-loop lag in the load phase (ms, None when not sampled) and its evidence."""

    lag_ms: float | None
    evidence: str
    worst_ms: float | None = None  # the worst lateness of any interval: the most it can have added to one sample

    def to_dict(self) -> dict[str, Any]:
        return {"lag_ms": self.lag_ms, "worst_ms": self.worst_ms, "evidence": self.evidence}


def assess_lag(folder: RunFolder, cfg: dict[str, Any], through_drain: bool = False) -> Lag:
    """Per generator process, the ``lag_percentile`` of its per-interval worst timer lateness; the worst process.

    The rows are the ``kind: "lag"`` rows the Locust processes append to generator.jsonl
    (``loop_lag_ms``: the latest a 20 ms gevent timer woke in that interval). A row covers the
    interval since its process's previous row, and counts when that interval overlaps the window:
    the load phase, and with ``through_drain`` the drain after it too, where notifications still
    arrive (a live scenario's load can be shorter than one interval, and no row ends inside it).
    """
    frame = folder.generator
    if frame.empty or "loop_lag_ms" not in frame:
        return Lag(None, "event-loop lag not sampled (no loop_lag_ms rows in generator.jsonl)")
    window = folder.load_window()
    if window is None:
        return Lag(None, "no load phase in run.json to check the event-loop lag against")
    drain = folder.phases_named("drain") if through_drain else []
    start, end = window[0], max([window[1], *(p.end for p in drain)])
    sampled = frame[frame["loop_lag_ms"].notna()].sort_values("t")
    keys = _process_key(sampled)
    began = sampled["t"].groupby(keys).shift(1)
    spacing = sampled["t"].groupby(keys).diff().median()
    began = began.fillna(sampled["t"] - (float(spacing) if pd.notna(spacing) else 1.0))
    rows = sampled[(sampled["t"] >= start) & (began <= end)]
    where = "load-phase" if not drain else "load and drain"
    if rows.empty:
        return Lag(None, f"no event-loop lag sample during the {where}")
    q = float(cfg["lag_percentile"])
    per_process = [
        (float(group["loop_lag_ms"].quantile(q / 100)), group) for _, group in rows.groupby(_process_key(rows))
    ]
    lag, group = max(per_process, key=lambda item: item[0])
    worst = float(rows["loop_lag_ms"].max())
    role, pid = _first(group, "role"), _first(group, "pid")
    who = f"generator {role or 'process'} pid {'unknown' if pid is None else int(pid)}"
    text = (
        f"{who} event-loop lag p{q:g} {lag:.1f} ms over {len(group)} {where} intervals "
        f"(worst {float(group['loop_lag_ms'].max()):.1f} ms)"
    )
    return Lag(lag, text, worst)


@dataclass(frozen=True, slots=True)
class Backlog:
    """The generator's receive backlog in the load phase (bytes, None when not sampled) and its evidence."""

    backlog_bytes: float | None
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return {"backlog_bytes": self.backlog_bytes, "evidence": self.evidence}


BACKLOG_COLUMN = "recv_backlog_bytes"


def assess_backlog(folder: RunFolder, cfg: dict[str, Any]) -> Backlog:
    """Per generator process, the ``lag_percentile`` of its sampled receive backlog (largest listener's); the worst.

    The samples ride on the ``kind: "lag"`` rows (``recv_backlog_bytes``); a client that does
    not expose its backlog leaves them out, and the backlog is then not sampled.
    """
    frame = folder.generator
    if frame.empty or BACKLOG_COLUMN not in frame:
        return Backlog(None, f"receive backlog not sampled (no {BACKLOG_COLUMN} in generator.jsonl)")
    window = folder.load_window()
    if window is None:
        return Backlog(None, "no load phase in run.json to check the receive backlog against")
    values = pd.to_numeric(frame[BACKLOG_COLUMN], errors="coerce")
    rows = frame[(frame["t"] >= window[0]) & (frame["t"] <= window[1]) & values.notna()]
    if rows.empty:
        return Backlog(None, "no receive backlog sample during the load phase")
    q = float(cfg["lag_percentile"])
    per_process = [
        (float(values[group.index].quantile(q / 100)), group) for _, group in rows.groupby(_process_key(rows))
    ]
    backlog, group = max(per_process, key=lambda item: item[0])
    role, pid = _first(group, "role"), _first(group, "pid")
    who = f"generator {role or 'process'} pid {'unknown' if pid is None else int(pid)}"
    text = (
        f"{who} receive backlog p{q:g} {backlog:,.0f} bytes (largest listener's) over {len(group)} load-phase "
        f"intervals (worst {float(values[group.index].max()):,.0f} bytes)"
    )
    return Backlog(backlog, text)
