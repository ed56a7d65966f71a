"""The post-run judge: evaluates the criteria a run folder's scenario lists and writes its verdict.

``judge_run`` is what ``lqharness run`` and ``lqharness judge`` call; it reads only the run
folder, writes ``verdict.json``, ``junit.xml`` and ``report.html`` into it and returns the
exit code (0 pass, 1 fail, 2 inconclusive or harness error).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from harness.delivery.anomalies import LEGACY_PHANTOM, Anomaly, phantom_total
from harness.errors import HarnessError
from harness.runfolder import (
    GENERATOR,
    JUNIT,
    REPORT,
    RUN_JSON,
    VERDICT,
    dump_json,
    verdict_exit_code,
    write_bytes_atomic,
)
from reports import rules_delivery, rules_server
from reports.clocks import Clocks, clock_doubt, clock_threshold_ms, clocks_summary, worker_clocks
from reports.criteria import Criteria, load_criteria
from reports.degradation import degradation
from reports.runfolder import RunFolder, load_run_folder
from reports.saturation import UNKNOWN, Backlog, Lag, Saturation, assess, assess_backlog, assess_lag
from reports.verdict import (
    FAIL,
    INCONCLUSIVE,
    NA,
    PASS,
    CriterionResult,
    Finding,
    Unsupported,
    inconclusive,
    not_applicable,
    worst,
)

Rule = Callable[[RunFolder, dict[str, Any], Criteria], Finding]
RULES: dict[str, Rule] = {
    "SC-051": rules_delivery.delivery_complete,
    "SC-052": rules_delivery.update_values,
    "CHAIN-1": rules_delivery.chain_consistent,
    "SC-053": rules_delivery.delete_flags,
    "SC-054": rules_delivery.delivery_latency,
    "SC-055": rules_delivery.changes_counter,
    "SC-056": rules_server.memory_growth,
    "SC-057": rules_delivery.websocket_uptime,
    "SC-058": rules_server.query_latency,
    "SC-059": rules_server.memory_recovery,
    "SC-060": rules_server.no_crash,
    "CPU-1000": rules_server.cpu_at_rate,
    "CONN-RELEASE": rules_server.connections_released,
    "JOBS": rules_server.jobs_completed,
    "MEM-BOUND": rules_server.memory_bound,
    "DEGRADATION": rules_server.degradation_capacity,
}
DELIVERY_KEYS = ("expected", "delivered", LEGACY_PHANTOM, *(str(a) for a in Anomaly if a is not Anomaly.LATE))
LATENCY_KEYS = ("p50", "p95", "p99", "max")


def criteria_ids(folder: RunFolder, criteria: Criteria) -> tuple[list[str], str]:
    """The criterion ids that apply (run.json profile, else the defaults) and where they came from."""
    listed = folder.profile.get("criteria")
    if isinstance(listed, list) and listed:
        return [str(c) for c in listed], f"{RUN_JSON} profile"
    return list(criteria["judge"]["default_criteria"]), f"criteria file defaults ({RUN_JSON} lists none)"


def _generator_doubt(finding: Finding, what: str, measured: str) -> Finding:
    """A failure the load generator may have caused (``what`` it did) is inconclusive; a pass stands with it noted."""
    if finding.verdict == FAIL:
        return replace(
            finding,
            verdict=INCONCLUSIVE,
            evidence=f"{what}, so the {measured} may be the generator's; measured: {finding.evidence}",
        )
    if finding.verdict == PASS:
        return replace(finding, evidence=f"{finding.evidence}; note: {what}")
    return finding


def _apply_saturation(finding: Finding, saturation: Saturation) -> Finding:
    """A failure measured while a generator process was saturated (CPU): inconclusive; a pass is noted."""
    return _generator_doubt(finding, f"load generator saturated ({saturation.evidence})", "failure")


def _apply_lag(finding: Finding, lag: Lag, threshold_ms: float, fraction: float) -> Finding:
    """A failing latency measured while the generator's loop lagged past ``fraction`` of the threshold.

    The lag can have added at most its worst lateness to each sample, so the failure stands when the
    latency the rule surely puts on the target (``floor``, else ``value``) less that worst is still over
    the threshold; otherwise it is inconclusive (the lag, not the target, may make it fail).
    """
    if lag.lag_ms is None or lag.lag_ms <= fraction * threshold_ms:
        return finding
    why = f"{lag.evidence}, above {fraction:.0%} of the {threshold_ms:g} ms threshold"
    if finding.verdict == FAIL:
        floor = finding.floor if finding.floor is not None else finding.value
        worst = lag.worst_ms if lag.worst_ms is not None else lag.lag_ms
        if isinstance(floor, int | float) and not isinstance(floor, bool) and floor - worst > threshold_ms:
            return replace(
                finding,
                evidence=f"{finding.evidence}; the load generator lagged ({why}), but even less its worst "
                f"lateness ({worst:.1f} ms) the target's share ({floor - worst:.1f} ms) is over the threshold",
            )
    return _generator_doubt(finding, f"load generator lagging ({why})", "latency")


def _apply_clocks(finding: Finding, clocks: Clocks, threshold_ms: float, fraction: float) -> Finding:
    """A latency that passed or failed while a worker's clock may be off by more than the threshold tolerates:
    inconclusive, with the worker, its offset and the tolerance."""
    if finding.verdict not in (PASS, FAIL):
        return finding
    doubt = clock_doubt(clocks, threshold_ms, fraction)
    if doubt is None:
        return finding
    return replace(finding, verdict=INCONCLUSIVE, evidence=f"{doubt}; measured: {finding.evidence}")


def _apply_backlog(finding: Finding, backlog: Backlog, limit_bytes: float) -> Finding:
    """A failing latency measured while the generator held received notifications past ``limit_bytes``: inconclusive."""
    if backlog.backlog_bytes is None or backlog.backlog_bytes <= limit_bytes:
        return finding
    why = f"{backlog.evidence}, above max_backlog_bytes {limit_bytes:,.0f}"
    return _generator_doubt(finding, f"load generator behind on what it received ({why})", "latency")


def _lag(folder: RunFolder, cfg: dict[str, Any], through_drain: bool) -> Lag:
    """The generator's event-loop lag (``assess_lag``); a malformed generator.jsonl leaves it unknown."""
    try:
        return assess_lag(folder, cfg, through_drain)
    except Exception as exc:  # never a traceback
        return Lag(None, f"{GENERATOR} lag could not be assessed ({type(exc).__name__}: {exc})")


def evaluate_one(cid: str, folder: RunFolder, criteria: Criteria) -> Finding:
    """One criterion's finding; missing data and malformed files give inconclusive, never an exception."""
    rule = RULES.get(cid)
    if rule is None or cid not in criteria.tables:
        return inconclusive(f"the judge has no rule for criterion {cid!r}")
    try:
        return rule(folder, criteria[cid], criteria)
    except Unsupported as exc:
        return inconclusive(str(exc))
    except Exception as exc:  # a malformed file must give a verdict with the reason, never a traceback
        return inconclusive(f"the run folder's data could not be evaluated ({type(exc).__name__}: {exc})")


def delivery_summary(folder: RunFolder) -> dict[str, Any]:
    """The delivery totals copied from delivery.json (None where it has no value)."""
    found = (folder.delivery or {}).get("totals")
    totals: dict[str, Any] = found if isinstance(found, dict) else {}
    latency: dict[str, Any] = totals["latency_ms"] if isinstance(totals.get("latency_ms"), dict) else {}
    out: dict[str, Any] = {k: totals.get(k) for k in DELIVERY_KEYS}
    out[LEGACY_PHANTOM] = phantom_total(totals)  # an old run folder has only the family's sum
    out["latency_ms"] = {k: latency.get(k) for k in LATENCY_KEYS}
    return out


def evaluate(folder: RunFolder, criteria: Criteria) -> dict[str, Any]:
    """The scenario verdict for one run folder, as written to verdict.json ``scenarios[]``."""
    ids, source = criteria_ids(folder, criteria)
    try:
        saturation = assess(folder, criteria["generator"])
    except Exception as exc:  # a malformed generator.jsonl leaves saturation unknown, never a traceback
        why = f"{GENERATOR} could not be assessed ({type(exc).__name__}: {exc}), saturation not checked"
        saturation = Saturation(UNKNOWN, why)
    affected = set(criteria["generator"]["affects"])
    lag, delivery_lag = (_lag(folder, criteria["generator"], through_drain) for through_drain in (False, True))
    lag_affected = set(criteria["generator"]["lag_affects"])
    through_drain = set(criteria["generator"]["lag_through_drain"])
    fraction = float(criteria["generator"]["max_lag_fraction"])
    clocks = worker_clocks(folder)
    clock_affected = set(criteria["clocks"]["affects"])
    clock_fraction = float(criteria["clocks"]["max_offset_fraction"])
    try:
        backlog = assess_backlog(folder, criteria["generator"])
    except Exception as exc:  # a malformed generator.jsonl leaves the backlog unknown, never a traceback
        backlog = Backlog(None, f"{GENERATOR} receive backlog could not be assessed ({type(exc).__name__}: {exc})")
    backlog_limit = criteria["generator"].get("max_backlog_bytes")
    results: list[CriterionResult] = []
    run_finding = rules_server.run_completed(folder)
    if run_finding is not None:
        results.append(CriterionResult("RUN", "Run completed", **_fields(run_finding)))
    lacking = _lacking(folder)
    for cid in ids:
        if lacking:
            results.append(CriterionResult(cid, criteria.title(cid), **_fields(not_applicable(lacking))))
            continue
        finding = evaluate_one(cid, folder, criteria)
        if cid in affected and saturation.saturated:
            finding = _apply_saturation(finding, saturation)
        if cid in lag_affected and cid in criteria.tables:
            seen = delivery_lag if cid in through_drain else lag
            finding = _apply_lag(finding, seen, float(criteria[cid]["max_latency_ms"]), fraction)
            if backlog_limit is not None:
                finding = _apply_backlog(finding, backlog, float(backlog_limit))
        if cid in clock_affected and cid in criteria.tables:
            finding = _apply_clocks(finding, clocks, clock_threshold_ms(cid, criteria), clock_fraction)
        results.append(CriterionResult(cid, criteria.title(cid), **_fields(finding)))
    scenario: dict[str, Any] = {
        "name": folder.scenario,
        # a scenario about a feature the target lacks is n/a as a whole (others with only n/a criteria are not:
        # nothing applicable was checked, so they stay inconclusive)
        "verdict": NA if lacking else worst(r.verdict for r in results),
        "criteria": [r.to_dict() for r in results],
        "delivery": delivery_summary(folder),
        "criteria_source": source,
        "generator": {
            **saturation.to_dict(),
            "lag": lag.to_dict(),
            "lag_through_drain": delivery_lag.to_dict(),
            "backlog": backlog.to_dict(),
        },
        "clocks": clocks_summary(clocks),
        "inputs": {"problems": dict(folder.problems), "notes": dict(folder.notes)},
    }
    if lacking:
        scenario["not_applicable"] = lacking
    curve = degradation(folder, criteria["report"])
    if curve is not None:
        scenario["degradation"] = curve.to_dict()
    return scenario


def _lacking(folder: RunFolder) -> str | None:
    """Why the scenario does not apply to the target, or None: it requires (run.json ``profile.requires``)
    target features that run.json ``target.features`` does not list."""
    required = folder.profile.get("requires")
    features = folder.features
    if not isinstance(required, list) or features is None:
        return None
    lacking = sorted({str(f) for f in required} - features)
    if not lacking:
        return None
    return (
        f"the scenario is about the target's {', '.join(lacking)}, which this target lacks "
        f"(features: {', '.join(sorted(features)) or 'none'})"
    )


def _fields(finding: Finding) -> dict[str, Any]:
    return {
        "verdict": finding.verdict,
        "value": finding.value,
        "threshold": finding.threshold,
        "evidence": finding.evidence,
    }


def verdict_document(folder: RunFolder, criteria: Criteria, scenarios: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "verdict": NA
        if scenarios and all(s["verdict"] == NA for s in scenarios)
        else worst(s["verdict"] for s in scenarios),
        "run_id": (folder.run or {}).get("run_id"),
        "run_dir": str(folder.path),
        "judged_at": time.time(),
        "criteria_file": criteria.source,
        "scenarios": scenarios,
    }


def _write(path: Path, data: bytes) -> None:
    try:
        write_bytes_atomic(path, data)
    except OSError as exc:
        raise HarnessError(f"cannot write {path}: {exc.strerror or exc}") from exc


def judge_run(
    run_dir: Path, criteria_path: Path | None = None, quiet: bool = False, *, report: bool = True,
    history: str | Path | None = None,
) -> int:  # fmt: skip
    """Judge one run folder, write verdict.json, junit.xml and (unless ``report`` is false) report.html into it,
    return the exit code. A run folder that does not exist or an unusable criteria file raises ``HarnessError``.
    The run is compared with and recorded in the run history (``history``: URL or file, default beside the run).
    """
    from reports.html import render_report
    from reports.junit import junit_xml
    from reports.regression import judge_history
    from reports.terminal import summary_table

    criteria = load_criteria(criteria_path)
    folder = load_run_folder(Path(run_dir))
    scenario = evaluate(folder, criteria)
    comparison = judge_history(folder, scenario, criteria, history)
    document = verdict_document(folder, criteria, [scenario])
    _write(folder.path / VERDICT, dump_json(document))
    _write(folder.path / JUNIT, junit_xml(document))
    if report:
        _write(folder.path / REPORT, render_report(folder, document, criteria, comparison.trend).encode())
    if not quiet:
        print(summary_table(document))
        if report:
            print(f"report: {folder.path / REPORT}")
    return verdict_exit_code(document["verdict"])
