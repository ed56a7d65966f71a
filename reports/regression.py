"""The REGRESSION criterion: this run's key measurements against the baseline of comparable runs.

Comparable runs share the scenario, its profile, the target and its version, and the machine
fingerprint. The baseline is the pinned run for the scenario, profile and machine, else the
median of the last N comparable passing runs. A measurement regresses when it is worse than the
baseline by more than its limit (criteria.toml [REGRESSION], percent) *and* by more than the
noise band (``band_mads`` x the median absolute deviation of the comparable passing runs), so
a noisy machine widens its own band instead of raising false alarms.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from reports.criteria import Criteria
from reports.machine import differences
from reports.runfolder import RunFolder
from reports.saturation import SATURATED
from reports.tracked import BY_NAME, TRACKED, HistoryRun, RunFacts, measure, run_facts
from reports.verdict import FAIL, INCONCLUSIVE, NA, PASS, Finding, Unsupported, brief, worst

CRITERION = "REGRESSION"


@dataclass(frozen=True, slots=True)
class Current:
    """The run being compared: its facts and measurements (recorded or not)."""

    facts: RunFacts
    metrics: dict[str, float]


def change_text(change_pct: float) -> str:
    """A change as words: ``+20.0% worse``, ``13.6% better`` or ``no change``."""
    if change_pct > 0:
        return f"{change_pct:+.1f}% worse"
    return f"{-change_pct:.1f}% better" if change_pct < 0 else "no change"


@dataclass(frozen=True, slots=True)
class MetricChange:
    """One measurement against the baseline; ``change_pct`` is positive when the run is worse."""

    name: str
    baseline: float
    current: float
    change_pct: float
    band: float
    limit_pct: float
    regressed: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "label": BY_NAME[self.name].label, "unit": BY_NAME[self.name].unit,
            "baseline": self.baseline, "current": self.current, "change_pct": round(self.change_pct, 2),
            "band": round(self.band, 6), "limit_pct": self.limit_pct, "regressed": self.regressed,
        }  # fmt: skip

    def text(self) -> str:
        unit = BY_NAME[self.name].unit
        return (
            f"{BY_NAME[self.name].label} ({self.name}): baseline {brief(self.baseline)} {unit}, current "
            f"{brief(self.current)} {unit}, change {change_text(self.change_pct)} (limit {self.limit_pct:g}%), "
            f"noise band ±{brief(self.band)} {unit}"
        )


@dataclass(frozen=True, slots=True)
class Trend:
    """The comparable history of one group of runs with its baseline and noise bands, for the report."""

    scenario: str
    profile: str
    target: str
    target_version: str
    fingerprint: str
    runs: list[HistoryRun]  # oldest first, without the current run
    baseline: dict[str, float]
    baseline_kind: str
    bands: dict[str, float]
    current: Current | None = None


@dataclass(frozen=True, slots=True)
class Comparison:
    """The REGRESSION finding with the per-measurement changes and the trend behind it."""

    verdict: str
    evidence: str
    changes: list[MetricChange] = field(default_factory=list)
    trend: Trend | None = None

    def finding(self) -> Finding:
        compared = len(self.changes)
        regressed = [c.name for c in self.changes if c.regressed]
        value = {"compared": compared, "regressed": len(regressed)} if compared else None
        return Finding(self.verdict, value, None, self.evidence)

    def to_criterion(self, criteria: Criteria) -> dict[str, Any]:
        finding = self.finding()
        cfg = criteria[CRITERION]
        return {
            "id": CRITERION,
            "title": criteria.title(CRITERION),
            "verdict": finding.verdict,
            "value": finding.value,
            "threshold": {"band_mads": cfg["band_mads"], "baseline_runs": cfg["baseline_runs"]},
            "evidence": finding.evidence,
            "metrics": [c.to_dict() for c in self.changes],
        }


def comparable(a: RunFacts, b: RunFacts) -> bool:
    """Same scenario, profile and target (machine and target version are checked apart, with a reason)."""
    return (a.scenario, a.profile, a.target) == (b.scenario, b.profile, b.target)


def same_group(a: RunFacts, b: RunFacts) -> bool:
    return comparable(a, b) and a.fingerprint == b.fingerprint and a.target_version == b.target_version


def passing(run: HistoryRun) -> bool:
    """A run fit to be a baseline: no criterion failed, the run itself completed (RUN passed where judged)
    and the load generator was never saturated.

    An inconclusive criterion does not keep a run out: a quick profile is inconclusive on the
    specification's sizes (SC-054, SC-057) while its measurements are sound, and saturation, the
    inconclusive that would make them unsound, is checked by its own measurement. A REGRESSION that
    was n/a or inconclusive (first runs, a new machine) does not keep a run out either.
    """
    if not run.verdicts:
        return bool(run.verdict == PASS)
    if FAIL in run.verdicts.values() or run.verdicts.get("RUN", PASS) != PASS:
        return False
    return not run.metrics.get("generator_saturated_fraction")


def mad(values: list[float]) -> float:
    """The median absolute deviation (0 for fewer than two values)."""
    if len(values) < 2:
        return 0.0
    centre = statistics.median(values)
    return float(statistics.median(abs(v - centre) for v in values))


def _limits(cfg: dict[str, Any]) -> dict[str, float]:
    return {t.name: float(cfg[t.name]) for t in TRACKED}


def bands(runs: list[HistoryRun], cfg: dict[str, Any]) -> dict[str, float]:
    """The noise band per measurement: ``band_mads`` x MAD over the comparable passing runs."""
    out = {}
    for t in TRACKED:
        values = [r.metrics[t.name] for r in runs if t.name in r.metrics]
        if values:
            out[t.name] = float(cfg["band_mads"]) * mad(values)
    return out


def median_baseline(runs: list[HistoryRun]) -> dict[str, float]:
    """The median of each measurement over ``runs``."""
    out = {}
    for t in TRACKED:
        values = [r.metrics[t.name] for r in runs if t.name in r.metrics]
        if values:
            out[t.name] = float(statistics.median(values))
    return out


def changes(current: dict[str, float], baseline: dict[str, float], band: dict[str, float], cfg: dict[str, Any]
            ) -> list[MetricChange]:  # fmt: skip
    """Each measurement both have (with a non-zero baseline), against its limit and band."""
    limits = _limits(cfg)
    out = []
    for t in TRACKED:
        if t.name not in current or not baseline.get(t.name):
            continue
        base, value = baseline[t.name], current[t.name]
        worse = value - base if t.higher_is_worse else base - value
        change = 100.0 * worse / abs(base)
        width = band.get(t.name, 0.0)
        limit = limits[t.name]
        regressed = limit > 0 and change > limit and worse > width
        out.append(MetricChange(t.name, base, value, change, width, limit, regressed))
    return out


def _why_not_comparable(current: RunFacts, others: list[HistoryRun]) -> str:
    """Why none of ``others`` (same scenario, profile, target) is on this machine with this target version."""
    here = [r for r in others if r.facts.fingerprint == current.fingerprint]
    if not here:
        latest = others[-1].facts
        why = "machine fingerprint differs (" + "; ".join(differences(current.machine, latest.machine)) + ")"
    else:
        versions = ", ".join(sorted({r.facts.target_version for r in here}))
        why = f"target version differs (this run {current.target_version}, history {versions})"
    return (
        f"{len(others)} recorded run(s) of {current.scenario} ({current.profile}) on {current.target}, none on this "
        f"machine with this target version: {why}"
    )


def compare(current: Current, history: list[HistoryRun], cfg: dict[str, Any], pinned: HistoryRun | None = None,
            explicit: HistoryRun | None = None) -> Comparison:  # fmt: skip
    """REGRESSION of ``current`` against ``history`` (HistoryRun list), a pinned run, or an explicit baseline.

    Only runs that started before ``current`` count, so judging an old run again compares it
    with what came before it, as the first judgement did.
    """
    facts = current.facts
    others = [
        r for r in history
        if r.facts.run_id != facts.run_id and r.facts.started_at < facts.started_at and comparable(r.facts, facts)
    ]  # fmt: skip
    group = [r for r in others if same_group(r.facts, facts)]
    fit = [r for r in group if passing(r)][-int(cfg["baseline_runs"]) :]
    band = bands(fit, cfg)
    chosen = explicit
    if chosen is None and pinned is not None and pinned.facts.run_id != facts.run_id:
        chosen = pinned
    if chosen is not None:
        what = "the given baseline" if explicit is not None else "the pinned baseline"
        if chosen.facts.fingerprint != facts.fingerprint:
            why = "; ".join(differences(facts.machine, chosen.facts.machine))
            return Comparison(INCONCLUSIVE, f"{what} {chosen.facts.run_id} ran on another machine: {why}")
        if chosen.facts.target_version != facts.target_version:
            return Comparison(
                INCONCLUSIVE,
                f"{what} {chosen.facts.run_id} ran target version {chosen.facts.target_version}, "
                f"this run {facts.target_version}",
            )
        baseline, kind = dict(chosen.metrics), f"{what} {chosen.facts.run_id}"
    else:
        if not others:
            return Comparison(
                NA, f"no comparable history: no earlier run of {facts.scenario} ({facts.profile}) on {facts.target}"
            )
        if not group:
            return Comparison(INCONCLUSIVE, _why_not_comparable(facts, others))
        need = int(cfg["min_runs"])
        if len(fit) < need:
            why = (
                f"only {len(fit)} comparable passing run(s) of {facts.scenario} ({facts.profile}) on this "
                f"machine, need {need} for a median baseline (or pin one: lqharness baseline set RUN_DIR)"
            )
            early = Trend(facts.scenario, facts.profile, facts.target, facts.target_version, facts.fingerprint,
                          group, {}, "none yet", band, current)  # fmt: skip
            return Comparison(NA, why, [], early)
        baseline = median_baseline(fit)
        kind = f"the median of the last {len(fit)} comparable passing runs"
    trend = Trend(facts.scenario, facts.profile, facts.target, facts.target_version, facts.fingerprint,
                  group, baseline, kind, band, current)  # fmt: skip
    found = changes(current.metrics, baseline, band, cfg)
    band_note = f"bands {float(cfg['band_mads']):g} x MAD of {len(fit)} run(s)"
    if not found:
        return Comparison(NA, f"no tracked measurement in both this run and {kind}", [], trend)
    regressed = [c for c in found if c.regressed]
    if regressed:
        text = f"regressed against {kind} ({band_note}): " + "; ".join(c.text() for c in regressed)
        return Comparison(FAIL, text, found, trend)
    judged = [c for c in found if c.limit_pct > 0]
    largest = max(judged, key=lambda c: c.change_pct, default=None)
    note = (
        f"; largest change {largest.name} {largest.change_pct:+.1f}% (limit {largest.limit_pct:g}%)" if largest else ""
    )
    return Comparison(PASS, f"{len(judged)} measurement(s) within their limits against {kind} ({band_note}){note}",
                      found, trend)  # fmt: skip


def scenario_trend(
    history: list[HistoryRun], scenario: str, cfg: dict[str, Any],
    pinned_for: Callable[[RunFacts], HistoryRun | None],
) -> Trend:  # fmt: skip
    """The trend of a scenario without a run: the group of its latest recorded run.

    ``pinned_for(facts)`` returns that group's pinned run or None. A scenario with no recorded run is a HarnessError.
    """
    runs = [r for r in history if r.facts.scenario == scenario]
    if not runs:
        raise HarnessError(f"the history has no run of scenario {scenario!r}")
    latest = runs[-1].facts
    group = [r for r in runs if same_group(r.facts, latest)]
    fit = [r for r in group if passing(r)][-int(cfg["baseline_runs"]) :]
    pinned = pinned_for(latest)
    if pinned is not None and pinned.facts.target_version == latest.target_version:
        baseline, kind = dict(pinned.metrics), f"the pinned baseline {pinned.facts.run_id}"
    else:
        baseline, kind = median_baseline(fit), f"the median of the last {len(fit)} comparable passing runs"
    return Trend(latest.scenario, latest.profile, latest.target, latest.target_version, latest.fingerprint,
                 group, baseline, kind, bands(fit, cfg))  # fmt: skip


def history_location(folder: RunFolder, location: str | Path | None) -> str | Path:
    """Where the run is recorded: the given URL or path, else history.sqlite beside the run folder."""
    from reports.history import DEFAULT_FILE

    return location if location is not None else folder.path.parent / DEFAULT_FILE


def judge_history(folder: RunFolder, scenario: dict[str, Any], criteria: Criteria,
                  location: str | Path | None = None) -> Comparison:  # fmt: skip
    """Add the REGRESSION criterion to a judged scenario, then record the run in the history.

    A run already recorded (judged again) is compared the same way but not recorded again, so the
    history does not change. A history that cannot be opened makes REGRESSION inconclusive with
    the reason; the rest of the verdict stands.
    """
    from reports.history import HistoryStore

    comparison: Comparison
    try:
        facts = run_facts(folder)
    except Unsupported as exc:
        comparison = Comparison(NA, f"the run cannot be recorded: {exc}")
        _append(scenario, comparison, criteria)
        return comparison
    current = Current(facts, measure(folder, criteria))
    try:
        with HistoryStore(history_location(folder, location)) as store:
            runs = store.runs(facts.scenario)
            comparison = compare(current, runs, criteria[CRITERION], store.pinned(facts.scenario, facts.profile,
                                                                                  facts.fingerprint))  # fmt: skip
            comparison = _saturated(comparison, scenario)
            _append(scenario, comparison, criteria)
            verdicts = {str(c["id"]): str(c["verdict"]) for c in scenario["criteria"]}
            store.record(HistoryRun(facts, str(scenario["verdict"]), verdicts, current.metrics, time.time()))
    except HarnessError as exc:
        print(f"lqharness: warning: run not recorded in the history: {exc}", file=sys.stderr)
        if not any(c["id"] == CRITERION for c in scenario["criteria"]):
            comparison = Comparison(INCONCLUSIVE, f"the history could not be used: {exc}")
            _append(scenario, comparison, criteria)
    return comparison


def _saturated(comparison: Comparison, scenario: dict[str, Any]) -> Comparison:
    """A failing comparison of a run whose load generator saturated is inconclusive (the generator may be slow)."""
    generator = scenario.get("generator") or {}
    if comparison.verdict != FAIL or generator.get("state") != SATURATED:
        return comparison
    evidence = f"load generator saturated ({generator.get('evidence')}), so the regression may be the generator's; "
    return Comparison(INCONCLUSIVE, evidence + comparison.evidence, comparison.changes, comparison.trend)


def _append(scenario: dict[str, Any], comparison: Comparison, criteria: Criteria) -> None:
    scenario["criteria"].append(comparison.to_criterion(criteria))
    if not scenario.get("not_applicable"):  # a scenario that does not apply to the target stays n/a
        scenario["verdict"] = worst(str(c["verdict"]) for c in scenario["criteria"])
