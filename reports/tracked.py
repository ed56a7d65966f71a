"""What a run contributes to the history: its key measurements and what makes it comparable.

The measurements are read from the run folder with the same helpers the criteria use, so the
history and the verdict agree on every number. A measurement the run cannot support is None
(not recorded), never a guess.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from reports.criteria import Criteria
from reports.degradation import degradation
from reports.machine import FINGERPRINT_KEYS, fingerprint, machine_facts
from reports.measures import (
    MIB,
    delivery_totals,
    live_samples,
    load_window,
    locust_rows,
    memory_windows,
    profile_setting,
    rss_window,
    write_counts,
)
from reports.runfolder import RUN_JSON, RunFolder
from reports.saturation import assess
from reports.verdict import Unsupported

QUICK, FULL = "quick", "full"


@dataclass(frozen=True, slots=True)
class Tracked:
    """One tracked measurement: its key in the history, a label, its unit and which way is worse."""

    name: str
    label: str
    unit: str
    higher_is_worse: bool


TRACKED: tuple[Tracked, ...] = (
    Tracked("delivery_per_s", "delivery throughput", "notifications/s", False),
    Tracked("delivery_p50_ms", "delivery latency p50", "ms", True),
    Tracked("delivery_p95_ms", "delivery latency p95", "ms", True),
    Tracked("delivery_p99_ms", "delivery latency p99", "ms", True),
    Tracked("query_p95_ms", "query latency p95", "ms", True),
    Tracked("writes_per_s", "write throughput", "writes/s", False),
    Tracked("rss_peak_mib", "server RSS peak", "MiB", True),
    Tracked("rss_growth_pct", "server RSS growth over the load", "%", True),
    Tracked("rss_after_release_mib", "server RSS after release", "MiB", True),
    Tracked("cpu_avg_pct", "server CPU average during the load", "% of machine", True),
    Tracked("capacity_writes_per_s", "capacity from the ramp", "writes/s", False),
    Tracked("generator_saturated_fraction", "load generator saturation", "fraction of samples", True),
)
BY_NAME = {t.name: t for t in TRACKED}


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What makes two runs comparable: scenario, profile, target and versions, machine."""

    run_id: str
    scenario: str
    profile: str
    target: str
    target_version: str
    harness_version: str
    machine: dict[str, Any]
    started_at: float
    run_dir: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.machine)


@dataclass(frozen=True, slots=True)
class HistoryRun:
    """A run as the history holds it: plain data, so the comparison needs no database."""

    facts: RunFacts
    verdict: str
    verdicts: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    recorded_at: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        f = self.facts
        return {
            "run_id": f.run_id, "scenario": f.scenario, "profile": f.profile, "target": f.target,
            "target_version": f.target_version, "harness_version": f.harness_version,
            "fingerprint": f.fingerprint, "machine": f.machine, "started_at": f.started_at,
            "recorded_at": self.recorded_at, "verdict": self.verdict, "verdicts": self.verdicts,
            "run_dir": f.run_dir, "metrics": self.metrics,
        }  # fmt: skip


def _target_version(folder: RunFolder) -> str:
    """The server's own version as its statistics report it (target.json ``stats.server_version``)."""
    stats = (folder.target or {}).get("stats")
    if isinstance(stats, dict) and stats.get("server_version"):
        return str(stats["server_version"])
    return "unknown"


def _machine(run: dict[str, Any]) -> dict[str, Any]:
    """The machine the run ran on (run.json ``machine``), else this one (a run folder from before it was recorded)."""
    recorded = run.get("machine")
    if isinstance(recorded, dict) and all(key in recorded for key in FINGERPRINT_KEYS):
        return dict(recorded)
    return machine_facts()


def run_facts(folder: RunFolder) -> RunFacts:
    """The run's identity from run.json: scenario, profile, target and versions, and the machine it ran on.

    Raises ``Unsupported`` when run.json is unusable or names no run id.
    """
    run = folder.run
    if run is None or not run.get("run_id"):
        raise Unsupported(folder.why_missing(RUN_JSON) or f"{RUN_JSON} names no run_id")
    target: dict[str, Any] = run["target"] if isinstance(run.get("target"), dict) else {}
    versions: dict[str, Any] = run["versions"] if isinstance(run.get("versions"), dict) else {}
    started = run.get("started_at")
    return RunFacts(
        run_id=str(run["run_id"]),
        scenario=folder.scenario,
        profile=QUICK if folder.profile.get("quick") else FULL,
        target=str(target.get("name") or "unknown"),
        target_version=_target_version(folder),
        harness_version=str(versions.get("harness") or "unknown"),
        machine=_machine(run),
        started_at=float(started) if isinstance(started, int | float) else 0.0,
        run_dir=str(folder.path),
    )


def _delivery_per_s(folder: RunFolder, criteria: Criteria) -> float:
    rows = locust_rows(folder, "NOTIFY")
    if rows.empty:
        raise Unsupported("no NOTIFY rows")
    return float(rows["Requests/s"].fillna(0).sum())


def _latency(key: str) -> Callable[[RunFolder, Criteria], float]:
    def read(folder: RunFolder, criteria: Criteria) -> float:
        value = (delivery_totals(folder).get("latency_ms") or {}).get(key)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise Unsupported(f"delivery.json has no latency {key}")
        return float(value)

    return read


def _query_p95(folder: RunFolder, criteria: Criteria) -> float:
    rows = locust_rows(folder, str(criteria["SC-058"]["request_type"]))
    rows = rows[rows["Request Count"].fillna(0) > 0]
    if rows.empty or "95%" not in rows or rows["95%"].isna().all():
        raise Unsupported("no query rows")
    return float(rows["95%"].max())


def _writes_per_s(folder: RunFolder, criteria: Criteria) -> float:
    start, end = load_window(folder)
    ok = sum(v for (outcome, _), v in write_counts(folder).items() if outcome == "ok")
    return ok / (end - start)


def _rss_peak(folder: RunFolder, criteria: Criteria) -> float:
    samples = live_samples(folder)
    if samples.empty:
        raise Unsupported("no live samples")
    return float(samples["rss"].max() / MIB)


def _rss_growth(folder: RunFolder, criteria: Criteria) -> float:
    base, last, _ = memory_windows(folder, criteria["memory"])
    return 100.0 * (last.median_mib - base.median_mib) / base.median_mib


def _rss_after_release(folder: RunFolder, criteria: Criteria) -> float:
    _, end = load_window(folder)
    cfg = criteria["SC-059"]
    start = end + profile_setting(folder, "release_seconds", cfg["settle_seconds"])
    window = rss_window(live_samples(folder), start, start + float(cfg["window_seconds"]))
    if window.samples < int(criteria["memory"]["min_samples"]):
        raise Unsupported("too few samples after the release")
    return window.median_mib


def _cpu_avg(folder: RunFolder, criteria: Criteria) -> float:
    start, end = load_window(folder)
    frame = folder.monitor
    if frame.empty or "cpu_machine_pct" not in frame:
        raise Unsupported("no CPU samples")
    cpu = frame[frame["alive"] & (frame["t"] >= start) & (frame["t"] <= end)]["cpu_machine_pct"].dropna()
    if cpu.empty:
        raise Unsupported("no CPU sample during the load")
    return float(cpu.mean())


def _capacity(folder: RunFolder, criteria: Criteria) -> float:
    curve = degradation(folder, criteria["report"])
    if curve is None:
        raise Unsupported("not a ramp run")
    if curve.capacity_writes_per_s is None:
        raise Unsupported("the ramp found no capacity (the SLO never broke after a step that held it)")
    return float(curve.capacity_writes_per_s)


def _saturation(folder: RunFolder, criteria: Criteria) -> float:
    fraction = assess(folder, criteria["generator"]).worst_fraction
    if fraction is None:
        raise Unsupported("generator not assessed")
    return float(fraction)


MEASURES: dict[str, Callable[[RunFolder, Criteria], float]] = {
    "delivery_per_s": _delivery_per_s,
    "delivery_p50_ms": _latency("p50"),
    "delivery_p95_ms": _latency("p95"),
    "delivery_p99_ms": _latency("p99"),
    "query_p95_ms": _query_p95,
    "writes_per_s": _writes_per_s,
    "rss_peak_mib": _rss_peak,
    "rss_growth_pct": _rss_growth,
    "rss_after_release_mib": _rss_after_release,
    "cpu_avg_pct": _cpu_avg,
    "capacity_writes_per_s": _capacity,
    "generator_saturated_fraction": _saturation,
}


def measure(folder: RunFolder, criteria: Criteria) -> dict[str, float]:
    """The tracked measurements this run supports (a measurement it cannot support is left out)."""
    out: dict[str, float] = {}
    for name, read in MEASURES.items():
        try:
            value = read(folder, criteria)
        except (Unsupported, KeyError, TypeError, ValueError, ZeroDivisionError):
            continue
        if value == value and abs(value) != float("inf"):  # NaN and infinities are not measurements
            out[name] = round(value, 6)
    return out
