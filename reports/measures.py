"""Numbers the rules need, extracted from a run folder; each raises ``Unsupported`` with the reason when it cannot.

Kept apart from the rules so the report can show the same numbers the verdict used.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.delivery.anomalies import Anomaly, kinds_of
from harness.runfolder import RunStatus
from reports.runfolder import DELIVERY, MONITOR, RUN_JSON, STATS, TARGET, WRITES, RunFolder
from reports.verdict import Unsupported

MIB = 1024 * 1024
OUTCOMES = ("ok", "failed", "indeterminate")
OPS = {"insert": "insert", "inserts": "insert", "update": "update", "updates": "update",
       "delete": "delete", "deletes": "delete"}  # fmt: skip


def rel(folder: RunFolder, t: float) -> str:
    """A time as seconds from the run's start, e.g. ``+12.5 s``."""
    t0 = folder.t0
    return f"{t:.1f}" if t0 is None else f"+{t - t0:.1f} s"


def run_record(folder: RunFolder) -> dict[str, Any]:
    if folder.run is None:
        raise Unsupported(folder.why_missing(RUN_JSON) or f"{RUN_JSON} unusable")
    return folder.run


def load_window(folder: RunFolder) -> tuple[float, float]:
    run_record(folder)
    window = folder.load_window()
    if window is None or window[1] <= window[0]:
        raise Unsupported(f"{RUN_JSON} records no load phase (load or step-<n>), so there is no stress window")
    return window


# --- delivery.json ---------------------------------------------------------------------------------


def delivery_totals(folder: RunFolder) -> dict[str, Any]:
    if folder.delivery is None:
        raise Unsupported(folder.why_missing(DELIVERY) or f"{DELIVERY} unusable")
    totals = folder.delivery.get("totals")
    if not isinstance(totals, dict):
        raise Unsupported(f"{DELIVERY} has no totals")
    return totals


def count(totals: dict[str, Any], key: str) -> int:
    value = totals.get(key)
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def aggregation_gap(folder: RunFolder) -> str | None:
    """Why the delivery summary may be incomplete (summaries missing, listeners that never subscribed), or None."""
    delivery = folder.delivery or {}
    reasons = []
    agg = delivery.get("aggregation")
    if isinstance(agg, dict):
        expected = agg.get("summaries_expected", agg.get("workers_expected"))
        received = agg.get("summaries_received")
        short = isinstance(expected, int) and isinstance(received, int) and received < expected
        if agg.get("timed_out") or short:
            reasons.append(f"only {received} of {expected} final summaries reached the master")
        for key in ("missing_listeners", "missing_writers"):
            if agg.get(key):
                reasons.append(f"{key.replace('_', ' ')}: {', '.join(map(str, agg[key]))}")
    if delivery.get("error"):
        reasons.append(f"run errors: {str(delivery['error'])[:200]}")
    return "; ".join(reasons) if reasons else None


def witnesses(folder: RunFolder, kinds: Collection[Anomaly], limit: int = 3) -> str:
    """The first few anomaly witnesses of one of ``kinds``, as a short text (an old folder's ``phantom``
    witnesses stand for the whole phantom family)."""
    found = []
    for w in (folder.delivery or {}).get("witnesses") or []:
        if not isinstance(w, dict) or not kinds_of(w.get("kind")) & set(kinds):
            continue
        parts = [
            str(w.get("kind")),
            f"listener {w.get('listener')}",
            f"writer {w.get('writer')} wseq {w.get('wseq')}",
        ]
        if w.get("row_id") is not None:
            parts.append(f"row {w.get('row_id')}")
        if w.get("detail"):
            parts.append(str(w["detail"])[:80])
        found.append(" ".join(parts))
        if len(found) >= limit:
            break
    return "; witnesses: " + " | ".join(found) if found else ""


# --- writes.json -----------------------------------------------------------------------------------


def write_counts(folder: RunFolder) -> Counter[tuple[str, str]]:
    """(outcome, op) -> count summed over writers; ``op`` is ``any`` for counts not split by op.

    Accepts the ledger summary nested either way (outcome -> op or op -> outcome), per writer
    in a dict or a list, or already summed under ``totals``.
    """
    if folder.writes is None:
        raise Unsupported(folder.why_missing(WRITES) or f"{WRITES} unusable")
    source = folder.writes.get("totals") if isinstance(folder.writes.get("totals"), dict) else folder.writes
    counts: Counter[tuple[str, str]] = Counter()

    def walk(node: Any, outcome: str | None, op: str | None) -> None:
        if isinstance(node, bool):
            return
        if isinstance(node, int | float):
            if outcome is not None:
                counts[(outcome, op or "any")] += int(node)
            return
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            name = str(key).lower()
            walk(value, name if name in OUTCOMES else outcome, OPS.get(name, op))

    walk(source, None, None)
    return counts


def attempted(counts: Counter[tuple[str, str]], op: str) -> int:
    return sum(counts[(o, op)] for o in OUTCOMES)


# --- monitor.jsonl ---------------------------------------------------------------------------------


def judged_process(folder: RunFolder) -> str:
    """Which process the monitor-based criteria judge, for their evidence: the server process of
    ``monitor.jsonl`` (for ``--target parse`` the Node process), named as the monitor saw it.

    The target's database (``database.jsonl``, Parse's PostgreSQL) is shown in the report but not judged.
    """
    frame = folder.monitor
    if frame.empty or "pid" not in frame or frame["pid"].dropna().empty:
        return "server process"
    pid = int(frame["pid"].dropna().iloc[0])
    names = frame["name"].dropna() if "name" in frame else pd.Series(dtype=object)
    return f"server process {names.iloc[0]} pid {pid}" if len(names) else f"server process pid {pid}"


def live_samples(folder: RunFolder) -> pd.DataFrame:
    """Monitor samples of the live server process with an RSS reading."""
    frame = folder.monitor
    if frame.empty:
        raise Unsupported(folder.why_missing(MONITOR) or f"{MONITOR} has no samples")
    if "rss" not in frame:
        raise Unsupported(f"{MONITOR} samples carry no rss")
    return frame[frame["alive"] & frame["rss"].notna()]


@dataclass(frozen=True, slots=True)
class Window:
    """The median RSS (MiB) over a time window, with the window and the number of samples behind it."""

    start: float
    end: float
    median_mib: float
    samples: int


def rss_window(samples: pd.DataFrame, start: float, end: float) -> Window:
    inside = samples[(samples["t"] >= start) & (samples["t"] <= end)]
    median = float(inside["rss"].median() / MIB) if len(inside) else float("nan")
    return Window(start, end, median, len(inside))


def profile_setting(folder: RunFolder, key: str, default: float) -> float:
    """A timing the scenario's profile sets for itself (run.json ``profile``), else the criteria default."""
    value = ((folder.run or {}).get("profile") or {}).get(key)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else float(default)


def memory_windows(folder: RunFolder, memory_cfg: dict[str, Any]) -> tuple[Window, Window, pd.DataFrame]:
    """Baseline (first window after warm-up) and end window of the load phase, and the samples between."""
    load_start, end = load_window(folder)
    warmup = profile_setting(folder, "warmup_seconds", memory_cfg["warmup_seconds"])
    start = load_start + warmup
    duration = end - start
    if duration <= 0:
        raise Unsupported(f"the load phase ({end - load_start:.0f} s) is not longer than the warm-up ({warmup:.0f} s)")
    width = min(
        max(float(memory_cfg["window_fraction"]) * duration, float(memory_cfg["window_min_seconds"])),
        duration / 2,
    )
    samples = live_samples(folder)
    base = rss_window(samples, start, start + width)
    last = rss_window(samples, end - width, end)
    need = int(memory_cfg["min_samples"])
    for name, win in (("baseline", base), ("end", last)):
        if win.samples < need:
            last_t = samples["t"].max() if len(samples) else None
            seen = f"; live samples end at {rel(folder, last_t)}" if last_t is not None else ""
            raise Unsupported(
                f"{win.samples} live monitor sample(s) in the {name} window "
                f"({rel(folder, win.start)}..{rel(folder, win.end)}), need {need}{seen}"
            )
    inside = samples[(samples["t"] >= start) & (samples["t"] <= end)]
    return base, last, inside


def slope_mib_per_min(samples: pd.DataFrame) -> float:
    """Least-squares slope of RSS over time, in MiB per minute."""
    if len(samples) < 2 or samples["t"].nunique() < 2:
        return float("nan")
    minutes = (samples["t"].to_numpy(float) - samples["t"].iloc[0]) / 60.0
    return float(np.polyfit(minutes, samples["rss"].to_numpy(float) / MIB, 1)[0])


def run_end(folder: RunFolder) -> float | None:
    """When the server was last supposed to be up: the end of the last phase, else ``ended_at``."""
    phases = folder.phases
    if phases:
        return max(p.end for p in phases)
    ended = (folder.run or {}).get("ended_at")
    return float(ended) if isinstance(ended, int | float) else None


def crash_signs(folder: RunFolder) -> str | None:
    """Hard signs the server died before the run ended: status ``target_crashed`` or an ``alive: false`` sample.

    The process a restart the scenario planned stopped (``run.json`` ``server_restarts``, pid before) is
    no sign: it was meant to end, and the monitor followed its successor.
    """
    signs = []
    run = folder.run or {}
    if run.get("status") == RunStatus.TARGET_CRASHED:
        signs.append(f"run status {RunStatus.TARGET_CRASHED} ({run.get('error') or 'no error text'})")
    frame = folder.monitor
    if not frame.empty:
        end = run_end(folder)
        dead = frame[frame["dead"]]
        restarted = planned_restart_pids(folder)
        if restarted and "pid" in dead.columns:
            dead = dead[~dead["pid"].isin(restarted)]
        if end is not None:
            dead = dead[dead["t"] <= end]
        if len(dead):
            first = dead.iloc[0]
            pid = first.get("pid")
            pid_text = f"pid {int(pid)}" if pid is not None and pd.notna(pid) else "the server"
            signs.append(f"monitor saw {pid_text} gone (alive:false) at {rel(folder, float(first['t']))}")
    if signs:
        gap = sample_gap(folder, 0.0)
        if gap:
            signs.append(gap)
    return "; ".join(signs) if signs else None


def planned_restart_pids(folder: RunFolder) -> set[int]:
    """The server pids that planned restarts stopped (``run.json`` ``server_restarts``)."""
    raw = (folder.run or {}).get("server_restarts")
    if not isinstance(raw, list):
        return set()
    return {int(r["pid_before"]) for r in raw if isinstance(r, dict) and isinstance(r.get("pid_before"), int)}


def sample_gap(folder: RunFolder, max_gap: float) -> str | None:
    """Live monitor samples that stop more than ``max_gap`` s before the run's last phase ends, as text."""
    frame = folder.monitor
    end = run_end(folder)
    if frame.empty or end is None:
        return None
    alive = frame[frame["alive"]]
    last_alive = float(alive["t"].max()) if len(alive) else None
    if last_alive is not None and end - last_alive <= max_gap:
        return None
    last = "no live sample at all" if last_alive is None else f"last live sample at {rel(folder, last_alive)}"
    return f"{last}, the run's last phase ended {rel(folder, end)}"


# --- Locust CSVs -----------------------------------------------------------------------------------


def locust_rows(folder: RunFolder, request_type: str | None = None, exclude: tuple[str, ...] = ()) -> pd.DataFrame:
    """Per-request rows of locust_stats.csv (no Aggregated row), optionally of one type only."""
    stats = folder.stats
    if stats.empty:
        raise Unsupported(folder.why_missing(STATS) or f"{STATS} has no rows")
    rows = stats[stats["Name"] != "Aggregated"]
    if request_type is not None:
        rows = rows[rows["Type"] == request_type]
    if exclude:
        rows = rows[~rows["Type"].isin(exclude)]
    return rows


def error_ratio(folder: RunFolder) -> tuple[float, int, int, str]:
    """(failed / all, failed, all, source) over writes and queries: Locust stats, else writes.json."""
    try:
        rows = locust_rows(folder, exclude=("NOTIFY",))
        total = int(rows["Request Count"].fillna(0).sum())
        failed = int(rows["Failure Count"].fillna(0).sum())
        source = STATS
    except Unsupported:
        counts = write_counts(folder)
        failed = sum(v for (o, _), v in counts.items() if o != "ok")
        total = sum(counts.values())
        source = WRITES
    if total == 0:
        raise Unsupported(f"no request recorded in {source}")
    return failed / total, failed, total, source


def step_error_ratios(folder: RunFolder) -> list[tuple[str, float, int]]:
    """(step name, error ratio, requests) per ramp step from the cumulative counts in the history CSV."""
    history = folder.history
    steps = folder.steps()
    if history.empty or not steps or "Total Request Count" not in history:
        return []
    typed = history[(history["Name"] != "Aggregated") & (history["Type"] != "NOTIFY")]
    out = []
    for step in steps:
        requests = failures = 0
        for _, group in typed.groupby(["Type", "Name"]):
            before = group[group["Timestamp"] <= step.start]
            upto = group[group["Timestamp"] <= step.end]
            if upto.empty:
                continue
            r0 = before["Total Request Count"].iloc[-1] if len(before) else 0
            f0 = before["Total Failure Count"].iloc[-1] if len(before) else 0
            requests += int(upto["Total Request Count"].iloc[-1] - r0)
            failures += int(upto["Total Failure Count"].iloc[-1] - f0)
        if requests > 0:
            out.append((step.name, failures / requests, requests))
    return out


def insert_rate(folder: RunFolder, duration: float) -> tuple[float, str]:
    """Inserts attempted per second over ``duration``: writes.json, else Locust SQL rows named insert."""
    try:
        inserts = attempted(write_counts(folder), "insert")
        source = WRITES
    except Unsupported:
        try:
            rows = locust_rows(folder, "SQL")
        except Unsupported as exc:
            raise Unsupported(f"cannot tell the insert rate: {folder.why_missing(WRITES)}; {exc}") from exc
        named = rows[rows["Name"].str.lower().str.contains("insert")]
        inserts = int((named if len(named) else rows)["Request Count"].fillna(0).sum())
        source = f"{STATS} SQL rows"
    return inserts / duration, source


# --- target.json -----------------------------------------------------------------------------------


def target_record(folder: RunFolder) -> dict[str, Any]:
    if folder.target is None:
        raise Unsupported(folder.why_missing(TARGET) or f"{TARGET} unusable")
    return folder.target
