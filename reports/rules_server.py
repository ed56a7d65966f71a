"""Server-health criteria (SC-056, SC-058..SC-060, CPU-1000, CONN-RELEASE, JOBS, MEM-BOUND, DEGRADATION, RUN).

They read the monitor samples, Locust's stats and the target's end-of-load counters.
"""

from __future__ import annotations

import math
from typing import Any

from harness.ramp_steps import RampStop, StepState
from harness.runfolder import MONITOR, RUN_JSON, STATS, TARGET, Incident, RunStatus
from reports.criteria import Criteria
from reports.degradation import Degradation, StepPoint, degradation
from reports.measures import (
    MIB,
    crash_signs,
    error_ratio,
    insert_rate,
    judged_process,
    live_samples,
    load_window,
    locust_rows,
    memory_windows,
    profile_setting,
    rel,
    rss_window,
    run_record,
    sample_gap,
    slope_mib_per_min,
    step_error_ratios,
    target_record,
)
from reports.runfolder import RunFolder
from reports.verdict import FAIL, PASS, Finding, Unsupported, inconclusive, not_applicable


def memory_growth(folder: RunFolder, cfg: dict[str, Any], criteria: Criteria) -> Finding:
    """SC-056: RSS growth from the early-load baseline to the end of the load, with the slope as evidence."""
    base, last, inside = memory_windows(folder, criteria["memory"])
    growth = 100.0 * (last.median_mib - base.median_mib) / base.median_mib
    slope = slope_mib_per_min(inside)
    limit = float(cfg["max_growth_pct"])
    evidence = (
        f"{judged_process(folder)}: RSS baseline {base.median_mib:.1f} MiB (median of {base.samples} samples "
        f"{rel(folder, base.start)}..{rel(folder, base.end)}), end {last.median_mib:.1f} MiB (median of "
        f"{last.samples} samples {rel(folder, last.start)}..{rel(folder, last.end)}): growth {growth:+.1f}% "
        f"(limit {limit:g}%), slope {slope:+.2f} MiB/min over {len(inside)} samples"
    )
    if growth >= limit:
        return Finding(FAIL, round(growth, 2), limit, evidence)
    start, end = load_window(folder)
    need = float(cfg["min_load_seconds"])
    if end - start < need:
        return inconclusive(
            f"only {end - start:.0f} s of load (the criterion needs {need:g} s); {evidence}", round(growth, 2), limit
        )
    return Finding(PASS, round(growth, 2), limit, evidence)


def memory_recovery(folder: RunFolder, cfg: dict[str, Any], criteria: Criteria) -> Finding:
    """SC-059: RSS back within the limit of the pre-load baseline ``settle_seconds`` after the load stops."""
    start, end = load_window(folder)
    samples = live_samples(folder)
    need = int(criteria["memory"]["min_samples"])
    base = rss_window(samples, start - float(cfg["baseline_seconds"]), start)
    label = "pre-load"
    if base.samples < need:
        base = memory_windows(folder, criteria["memory"])[0]
        label = "early-load (too few samples before the load)"
    settle = profile_setting(folder, "release_seconds", cfg["settle_seconds"])
    after_start = end + settle
    after = rss_window(samples, after_start, after_start + float(cfg["window_seconds"]))
    if after.samples < need:
        observed = [p for p in folder.phases_named("observe")]
        last_t = float(samples["t"].max()) if len(samples) else end
        obs = f", observe phase ends {rel(folder, max(p.end for p in observed))}" if observed else ", no observe phase"
        raise Unsupported(
            f"the run observed the server only {max(0.0, last_t - end):.0f} s after the load stopped{obs}; "
            f"needs {need} samples from {settle:g} s to {settle + float(cfg['window_seconds']):g} s after"
        )
    above = 100.0 * (after.median_mib - base.median_mib) / base.median_mib
    limit = float(cfg["max_above_baseline_pct"])
    evidence = (
        f"{judged_process(folder)}: {label} baseline {base.median_mib:.1f} MiB (median of {base.samples} samples), "
        f"{settle:g} s after load {after.median_mib:.1f} MiB (median of {after.samples} samples "
        f"{rel(folder, after.start)}..{rel(folder, after.end)}): {above:+.1f}% vs baseline (limit {limit:g}%)"
    )
    return Finding(PASS if above <= limit else FAIL, round(above, 2), limit, evidence)


def query_latency(folder: RunFolder, cfg: dict[str, Any], criteria: Criteria) -> Finding:
    """SC-058: the worst query row's percentile (Locust stats) under the limit."""
    kind, column, limit = str(cfg["request_type"]), str(cfg["percentile"]), float(cfg["max_latency_ms"])
    rows = locust_rows(folder, kind)
    rows = rows[rows["Request Count"].fillna(0) > 0]
    if rows.empty:
        raise Unsupported(f"no {kind} request in {STATS}")
    if column not in rows or rows[column].isna().all():
        raise Unsupported(f"{STATS} has no {column} column for {kind} rows")
    worst = rows.loc[rows[column].idxmax()]
    value = float(worst[column])
    total, failed = int(rows["Request Count"].sum()), int(rows["Failure Count"].fillna(0).sum())
    evidence = (
        f"{kind} {column} {value:.0f} ms (worst of {len(rows)} row(s), '{worst['Name']}'; limit {limit:g}); "
        f"{total} queries, {failed} failed"
    )
    return Finding(PASS if value < limit else FAIL, value, limit, evidence)


def _liveness_unobserved(folder: RunFolder, criteria: Criteria) -> str | None:
    """Why the monitor does not show the server up to the run's end, or None: no samples, or samples
    stopping more than SC-060's ``max_sample_gap_seconds`` early (shared by SC-060 and DEGRADATION)."""
    if folder.monitor.empty:
        why = folder.why_missing(MONITOR) or f"{MONITOR} has no samples"
        return f"cannot tell whether the server stayed up: {why}"
    gap = sample_gap(folder, float(criteria["SC-060"]["max_sample_gap_seconds"]))
    if gap:
        return f"monitor samples stop early ({gap}) though the server was not seen gone"
    return None


def no_crash(folder: RunFolder, cfg: dict[str, Any], criteria: Criteria) -> Finding:
    """SC-060: the server stayed up to the end and the error ratio stayed bounded (per step for ramps)."""
    run = run_record(folder)
    limit = float(cfg["max_error_ratio"])
    limits = {"max_error_ratio": limit}
    crash = crash_signs(folder)
    if crash:
        return Finding(FAIL, {"alive_to_end": False}, limits, "server crashed: " + crash)
    unwatched = _liveness_unobserved(folder, criteria)
    if unwatched:
        raise Unsupported(unwatched)
    status = run.get("status")
    if status != RunStatus.COMPLETED:
        raise Unsupported(f"run status {status!r}: {run.get('error') or 'the run did not complete'}")
    ratio, failed, total, source = error_ratio(folder)
    steps = step_error_ratios(folder)
    # A ramp driven past its capacity on purpose (steps the coordinator marked past_capacity) may degrade
    # with errors there: DEGRADATION reports them; SC-060 bounds the errors up to capacity.
    past = {p.name for p in folder.steps() if p.extra.get("past_capacity") is True}
    beyond = [s for s in steps if s[0] in past]
    steps = [s for s in steps if s[0] not in past]
    if beyond:
        failed -= round(sum(r * n for _, r, n in beyond))
        total -= sum(n for _, _, n in beyond)
        ratio = failed / total if total > 0 else 0.0
    worst_step = max(steps, key=lambda s: s[1]) if steps else None
    value = {"alive_to_end": True, "error_ratio": round(ratio, 6)}
    evidence = f"{judged_process(folder)} alive to the end; {failed} of {total} requests failed ({ratio:.2%}, {source})"
    if beyond:
        evidence += (
            f" up to capacity; past it ({', '.join(s[0] for s in beyond)}, DEGRADATION's to report) "
            f"{max(r for _, r, _ in beyond):.2%} at worst"
        )
    if worst_step:
        value["worst_step_error_ratio"] = round(worst_step[1], 6)
        evidence += f"; worst step {worst_step[0]}: {worst_step[1]:.2%} of {worst_step[2]}"
    ok = ratio <= limit and (worst_step is None or worst_step[1] <= limit)
    return Finding(PASS if ok else FAIL, value, limits, evidence + f" (limit {limit:.2%})")


def cpu_at_rate(folder: RunFolder, cfg: dict[str, Any], criteria: Criteria) -> Finding:
    """CPU-1000: average machine CPU of the server during the load, at (close to) the target insert rate."""
    start, end = load_window(folder)
    frame = folder.monitor
    if frame.empty or "cpu_machine_pct" not in frame:
        raise Unsupported(folder.why_missing(MONITOR) or "monitor samples carry no cpu_machine_pct")
    cpu = frame[frame["alive"] & (frame["t"] >= start) & (frame["t"] <= end)]["cpu_machine_pct"].dropna()
    need = int(criteria["memory"]["min_samples"])
    if len(cpu) < need:
        raise Unsupported(f"{len(cpu)} CPU sample(s) during the load phase, need {need}")
    avg, limit = float(cpu.mean()), float(cfg["max_cpu_machine_pct"])
    target = float(folder.profile.get("target_insert_rate") or cfg["target_insert_rate"])
    rate, source = insert_rate(folder, end - start)
    evidence = (
        f"{judged_process(folder)}: average CPU {avg:.1f}% of the machine{_core_share(frame, start, end)} (peak "
        f"{float(cpu.max()):.1f}%, {len(cpu)} samples, limit {limit:g}%) at {rate:.0f} inserts/s "
        f"({source}; target {target:g}/s, tolerance {1 - float(cfg['min_rate_fraction']):.0%})"
    )
    if avg >= limit:
        return Finding(FAIL, round(avg, 2), limit, evidence)
    if rate < float(cfg["min_rate_fraction"]) * target:
        return inconclusive(
            f"the load reached only {rate:.0f} of the {target:g} inserts/s the criterion is about "
            f"({rate / target:.0%}); {evidence}",
            round(avg, 2),
            limit,
        )
    return Finding(PASS, round(avg, 2), limit, evidence)


def _core_share(frame: Any, start: float, end: float) -> str:
    """``, X% of one core`` from the monitor's ``cpu_core_pct`` over the load phase ('' when absent)."""
    if "cpu_core_pct" not in frame:
        return ""
    core = frame[frame["alive"] & (frame["t"] >= start) & (frame["t"] <= end)]["cpu_core_pct"].dropna()
    return f", {float(core.mean()):.1f}% of one core" if len(core) else ""


def _pick(record: dict[str, Any], moment: str, *names: str) -> int | None:
    """A before/after count from ``released``, nested (``before: {live: n}``) or flat (``live_before``)."""
    nested = record.get(moment)
    for name in names:
        for value in (
            (nested or {}).get(name) if isinstance(nested, dict) else None,
            record.get(f"{name}_{moment}"),
        ):
            if isinstance(value, int | float) and not isinstance(value, bool):
                return int(value)
    return None


def _monitor_connections(folder: RunFolder) -> str:
    frame = folder.monitor
    if frame.empty:
        return "monitor: no samples"
    live = frame[frame["alive"]]
    parts = []
    for column, name in (("conn_ESTABLISHED", "established sockets"), ("live_count", "live subscriptions")):
        if column in live and live[column].notna().any():
            series = live[column].dropna()
            parts.append(f"{name} peak {int(series.max())}, last {int(series.iloc[-1])}")
    return "monitor: " + ("; ".join(parts) if parts else "no connection counts")


def connections_released(folder: RunFolder, cfg: dict[str, Any], criteria: Criteria) -> Finding:
    """CONN-RELEASE: after the churn closed its subscriptions, they and their sockets are gone."""
    released = target_record(folder).get("released")
    if not isinstance(released, dict):
        raise Unsupported(f"{TARGET} records no released counts (churn before/after)")
    closed = released.get("closed", folder.profile.get("churn_closed"))
    if not isinstance(closed, int):
        raise Unsupported(f"neither {TARGET} released.closed nor profile.churn_closed says how many were closed")
    sockets_closed = released.get("sockets_closed", closed)
    live_before, live_after = (
        _pick(released, "before", "live", "subscriptions"),
        _pick(released, "after", "live", "subscriptions"),
    )
    sock_before = _pick(released, "before", "sockets", "established")
    sock_after = _pick(released, "after", "sockets", "established")
    if live_before is None or live_after is None:
        raise Unsupported(f"{TARGET} released lacks live subscription counts before/after the close")
    lingering = live_after - (live_before - closed)
    value: dict[str, Any] = {"lingering_subscriptions": lingering}
    limits = {k: cfg[f"max_{k}"] for k in ("lingering_subscriptions", "lingering_sockets")}
    evidence = f"closed {closed}: live subscriptions {live_before} -> {live_after}"
    sockets_known = sock_before is not None and sock_after is not None and isinstance(sockets_closed, int)
    if sockets_known:
        value["lingering_sockets"] = sock_after - (sock_before - sockets_closed)
        evidence += f", sockets {sock_before} -> {sock_after} (closed {sockets_closed})"
    evidence += "; " + _monitor_connections(folder)
    # fewer left than closing can explain: the server dropped unrelated subscriptions or sockets too
    over = [
        f"the server released {-n} more {what}(s) than were closed"
        for n, what in ((lingering, "subscription"), (value.get("lingering_sockets"), "socket"))
        if n is not None and n < 0
    ]
    if over:
        return Finding(FAIL, value, limits, "; ".join(over) + "; " + evidence)
    failed = lingering > limits["lingering_subscriptions"] or (
        sockets_known and value["lingering_sockets"] > limits["lingering_sockets"]
    )
    if failed:
        return Finding(FAIL, value, limits, evidence)
    if not sockets_known:
        return inconclusive(f"{TARGET} released lacks socket counts before/after; " + evidence, value, limits)
    return Finding(PASS, value, limits, evidence)


def jobs_completed(folder: RunFolder, cfg: dict[str, Any], criteria: Criteria) -> Finding:
    """JOBS: every flush job the run started reached a done status."""
    jobs = target_record(folder).get("jobs")
    features = folder.features
    if not isinstance(jobs, dict) or not jobs:
        if features is not None and "flush" not in features:
            return not_applicable("the target has no flush jobs (feature 'flush' absent)")
        raise Unsupported(f"{TARGET} records no flush job")
    ok = {str(s).lower() for s in cfg["ok_statuses"]}
    status = {str(k): str(v.get("status") if isinstance(v, dict) else v) for k, v in jobs.items()}
    stuck = {k: v for k, v in status.items() if v.lower() not in ok}
    value = {"jobs": len(status), "not_done": len(stuck)}
    if stuck:
        shown = ", ".join(f"{k}: {v}" for k, v in list(stuck.items())[:5])
        return Finding(FAIL, value, {"not_done": 0}, f"{len(stuck)} of {len(status)} job(s) not done: {shown}")
    return Finding(PASS, value, {"not_done": 0}, f"{len(status)} job(s), all {'/'.join(sorted(ok))}")


def memory_bound(folder: RunFolder, cfg: dict[str, Any], criteria: Criteria) -> Finding:
    """MEM-BOUND: the largest RSS sample within ``profile.memory_limit_mb``."""
    limit = float(folder.profile.get("memory_limit_mb") or cfg["memory_limit_mb"])
    if limit <= 0:
        raise Unsupported(f"no memory limit: {RUN_JSON} profile has no memory_limit_mb and the criteria file sets none")
    samples = live_samples(folder)
    if samples.empty:
        raise Unsupported("no live RSS sample")
    peak = samples.loc[samples["rss"].idxmax()]
    value = round(float(peak["rss"]) / MIB, 1)
    evidence = (
        f"{judged_process(folder)}: max RSS {value:.1f} MiB at {rel(folder, float(peak['t']))} over "
        f"{len(samples)} samples (limit {limit:g} MiB)"
    )
    if value > limit:
        return Finding(FAIL, value, limit, evidence)
    early = crash_signs(folder) or sample_gap(folder, float(criteria["SC-060"]["max_sample_gap_seconds"]))
    if early:
        return inconclusive(f"the server was not watched to the end ({early}); {evidence}", value, limit)
    return Finding(PASS, value, limit, evidence)


def run_completed(folder: RunFolder) -> Finding | None:
    """RUN: a run that did not complete cannot pass; None when it completed."""
    if folder.run is None:
        return inconclusive(f"{folder.why_missing(RUN_JSON)}: which criteria apply and what happened is unknown")
    status = folder.run.get("status")
    kinds, incidents = _incidents(folder)
    error = folder.run.get("error") or "no error text"
    happened = f"; incidents: {incidents}" if incidents else ""
    if status == RunStatus.COMPLETED:
        if not incidents:
            return None
        if Incident.TARGET_RESTARTED in kinds:
            return Finding(FAIL, status, RunStatus.COMPLETED.value, f"the target restarted{happened}")
        if Incident.WORKER_LOST in kinds:
            return inconclusive(f"a load generator process was lost, its users' data with it{happened}", status)
        return Finding(PASS, status, RunStatus.COMPLETED.value, f"run completed{happened}")
    if status == RunStatus.TARGET_CRASHED:
        return Finding(FAIL, status, RunStatus.COMPLETED.value, f"the target crashed: {error}{happened}")
    if status == RunStatus.TARGET_UNRESPONSIVE:
        return Finding(FAIL, status, RunStatus.COMPLETED.value, f"the target stopped answering: {error}{happened}")
    return inconclusive(f"run status {status!r}: {error}{happened}", status, RunStatus.COMPLETED.value)


def _incidents(folder: RunFolder) -> tuple[set[str], str]:
    """The kinds of the run's incidents, and all of them as one line, each at its time from the run's start
    (``+12.5 s target_stopped: ...``)."""
    raw = (folder.run or {}).get("incidents")
    items = (
        [i for i in raw if isinstance(i, dict) and isinstance(i.get("t"), int | float)] if isinstance(raw, list) else []
    )
    text = "; ".join(f"{rel(folder, float(i['t']))} {i.get('kind')}: {i.get('detail')}" for i in items)
    return {str(i.get("kind")) for i in items}, text


def _crash_step(folder: RunFolder, curve: Degradation | None) -> str:
    """Where in the ramp the server died: the last step that began before the first dead sample (or the run's
    crash), and whether it was past capacity."""
    if curve is None or not curve.points:
        return ""
    frame = folder.monitor
    dead = [float(t) for t in frame[frame["dead"]]["t"]] if not frame.empty else []
    steps = folder.steps()
    at = dead[0] if dead else max(s.end for s in steps)
    started = [i for i, s in enumerate(steps) if s.start <= at]
    if not started:
        return ""
    i = started[-1]
    first = next((k for k, p in enumerate(curve.points) if p.breaks_slo), None)
    where = "past capacity" if first is not None and i > first else "within capacity"
    return f" during or after {curve.points[i].name} ({where})"


def degradation_capacity(folder: RunFolder, cfg: dict[str, Any], criteria: Criteria) -> Finding:
    """DEGRADATION: the ramp broke the SLO after holding it, the server degraded without falling over; the
    capacity (last held step) and the degradation past it are reported."""
    curve = degradation(folder, criteria["report"])
    crash = crash_signs(folder)
    if crash:
        where = _crash_step(folder, curve)
        return Finding(FAIL, {"alive_to_end": False}, None, f"server crashed during the ramp{where}: {crash}")
    run = folder.run or {}
    if run.get("status") == RunStatus.TARGET_UNRESPONSIVE:
        where = _crash_step(folder, curve)
        error = run.get("error") or "no error text"
        return Finding(
            FAIL, {"alive_to_end": True}, None, f"the server stopped answering during the ramp{where}: {error}"
        )
    if curve is None:
        raise Unsupported("no step-<n> phases (with figures or Locust history): not a ramp run")
    stopped_early = any(p.state in (StepState.GENERATOR, StepState.SERVER_FAILED) for p in curve.points)
    if len(curve.points) < int(cfg["min_steps"]) and not stopped_early:  # else the evidence says why it stopped
        raise Unsupported(f"only {len(curve.points)} ramp step(s) measured (need {cfg['min_steps']})")
    steps = "; ".join(p.line() for p in curve.points)
    first = next((i for i, p in enumerate(curve.points) if p.breaks_slo), None)
    value = {
        "capacity_writes_per_s": None if curve.capacity_writes_per_s is None else round(curve.capacity_writes_per_s, 1),
        "held_writes_per_s": None if curve.held_writes_per_s is None else round(curve.held_writes_per_s, 1),
        "first_break": curve.first_break,
        "stop": curve.stop,
    }
    limits = {"slo": curve.slo.describe(), "min_steps": cfg["min_steps"]}
    failed = next((p for p in curve.points if p.state is StepState.SERVER_FAILED), None)
    if failed is not None:
        return Finding(
            FAIL, value, limits, f"the server stopped serving writes at {failed.name} ({failed.why}); {steps}"
        )
    held = "no step" if curve.held_writes_per_s is None else f"{curve.held_writes_per_s:.0f} writes/s"
    before = curve.points if first is None else curve.points[:first]
    saturated = next((p for p in before if p.state is StepState.GENERATOR), None)
    found: str | None = None  # the evidence of a pass, else None
    if saturated is not None:
        text = (
            f"the ramp stopped before the server reached capacity: {saturated.why} at {saturated.name}, so its "
            "latencies and rate are the generator's as much as the server's; "
            + ("no step held the SLO before it" if curve.held_writes_per_s is None else f"capacity >= {held}")
        )
    elif first is None:
        why = {
            RampStop.MAX_STEPS.value: "the ramp reached its last step with the SLO holding",
            RampStop.MAX_TIME.value: "the ramp ran out of time (the run's time bound) with the SLO holding",
        }.get(curve.stop or "", "the ramp ended with the SLO holding")
        text = f"{why}, before the server reached capacity: capacity >= {held}"
    elif first == 0 or curve.capacity_writes_per_s is None:
        broke = curve.points[first]
        text = (
            f"the SLO broke at the first step ({broke.name}: {broke.why}): capacity is below its "
            f"{broke.figures.asked:.0f} writes/s asked; start the ramp lower"
        )
    else:
        broke = curve.points[first]
        found = text = (
            f"capacity = {curve.capacity_writes_per_s:.0f} writes/s ({curve.points[first - 1].name}, the last step "
            f"whose SLO held); the SLO broke at {broke.name} ({broke.why}); past it: "
            f"{_degraded(broke, curve.points[first + 1 :])}"
        )
    unwatched = _liveness_unobserved(folder, criteria)
    if unwatched:
        return inconclusive(f"{unwatched}; {text}; {steps}", value, limits)
    if found is None:
        return inconclusive(f"{text}; {steps}", value, limits)
    return Finding(PASS, value, limits, f"{found}; {steps}")


def _degraded(broke: StepPoint, past: list[StepPoint]) -> str:
    """How the server degraded from the breaking step on: slower answers, errors, a generator that gave out."""
    points = [broke, *past]
    last = points[-1].figures
    parts = []
    for label, values in (
        ("write p95", [p.figures.write_p95_ms for p in points]),
        ("delivery p95", [p.figures.notify_p95_ms for p in points]),
    ):
        shown = [f"{v:.0f}" for v in values if not math.isnan(v)]
        if shown:
            parts.append(f"{label} {' -> '.join(shown)} ms")
    parts.append(f"throughput {' -> '.join(f'{p.writes_per_s:.0f}' for p in points)} writes/s")
    worst = max(p.figures.error_ratio for p in points)
    parts.append(f"errors up to {worst:.1%}" if worst > 0 else "no errors")
    gave_out = [p.name for p in past if p.state is StepState.GENERATOR]
    if gave_out:
        parts.append(f"the generator saturated at {gave_out[0]}, so the degradation beyond is unmeasured")
    if not past:
        parts.append("no step past it ran")
    kind = "errors" if worst > 0 else "slower answers"
    return f"{kind} ({', '.join(parts)}; last step asked {last.asked:.0f} writes/s)"
