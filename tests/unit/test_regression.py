"""The REGRESSION rule over synthetic histories: the percent limit and the noise band must both be
exceeded, a first run is n/a, another machine or target version is inconclusive with the reason."""

from __future__ import annotations

from typing import Any

import pytest

from reports.criteria import load_criteria
from reports.regression import CRITERION, Current, _saturated, compare, mad, passing, scenario_trend
from reports.tracked import TRACKED, HistoryRun, RunFacts
from reports.verdict import FAIL, INCONCLUSIVE, NA, PASS

MACHINE = {"cpu_model": "Test CPU 3000", "cores": 8, "memory_mib": 32768, "kernel": "6.1.0"}
CFG = load_criteria()[CRITERION]


def facts(n: int, machine: dict[str, Any] | None = None, version: str = "1.0", **extra: Any) -> RunFacts:
    fields: dict[str, Any] = {
        "run_id": f"run-{n:03d}", "scenario": "live.high-frequency", "profile": "quick", "target": "ref",
        "target_version": version, "harness_version": "0.1.0", "machine": machine or MACHINE,
        "started_at": 1_000.0 + n, "run_dir": f"runs/run-{n:03d}",
    }  # fmt: skip
    fields.update(extra)
    return RunFacts(**fields)


def history(values: list[float], metric: str = "delivery_p99_ms", verdict: str = PASS, **kw: Any) -> list[HistoryRun]:
    return [HistoryRun(facts(i, **kw), verdict, {"SC-054": verdict}, {metric: v}) for i, v in enumerate(values)]


def current(value: float, metric: str = "delivery_p99_ms", n: int = 100, **kw: Any) -> Current:
    return Current(facts(n, **kw), {metric: value})


def test_every_tracked_measurement_has_a_limit_in_criteria_toml() -> None:
    assert {t.name for t in TRACKED} <= set(CFG)


def test_mad_is_the_median_absolute_deviation() -> None:
    assert mad([1.0, 2.0, 3.0, 4.0, 100.0]) == 1.0
    assert mad([5.0]) == 0.0


def test_twenty_percent_slowdown_outside_the_band_fails_with_evidence() -> None:
    result = compare(current(12.0), history([10.0, 10.1, 9.9, 10.0, 10.05]), CFG)
    assert result.verdict == FAIL
    change = next(c for c in result.changes if c.name == "delivery_p99_ms")
    assert change.regressed and change.baseline == 10.0 and change.current == 12.0
    assert change.change_pct == pytest.approx(20.0)
    assert change.band == pytest.approx(3 * 0.05)
    assert "delivery latency p99 (delivery_p99_ms): baseline 10 ms, current 12 ms, change +20.0% worse" in (
        result.evidence
    )
    assert "noise band ±0.15 ms" in result.evidence and "median of the last 5" in result.evidence


def test_twenty_percent_change_inside_a_wide_noise_band_passes() -> None:
    result = compare(current(12.0), history([10.0, 6.0, 14.0, 8.0, 12.0]), CFG)
    change = next(c for c in result.changes if c.name == "delivery_p99_ms")
    assert change.change_pct == pytest.approx(20.0) and change.band == pytest.approx(6.0)
    assert result.verdict == PASS and not change.regressed


def test_ten_percent_slowdown_passes() -> None:
    result = compare(current(11.0), history([10.0, 10.0, 10.0, 10.0]), CFG)
    assert result.verdict == PASS
    assert "largest change delivery_p99_ms +10.0%" in result.evidence


def test_lower_throughput_is_the_worse_direction() -> None:
    runs = history([1000.0, 1010.0, 990.0], metric="delivery_per_s")
    assert compare(current(700.0, metric="delivery_per_s"), runs, CFG).verdict == FAIL
    assert compare(current(1500.0, metric="delivery_per_s"), runs, CFG).verdict == PASS


def test_a_trended_only_measurement_never_fails() -> None:
    runs = history([1.0, 1.0, 1.0], metric="rss_growth_pct")
    result = compare(current(9.0, metric="rss_growth_pct"), runs, CFG)
    assert CFG["rss_growth_pct"] == 0.0 and result.verdict == PASS and not result.changes[0].regressed


def test_a_first_run_is_not_applicable() -> None:
    result = compare(current(12.0), [], CFG)
    assert result.verdict == NA and "no comparable history" in result.evidence


def test_another_scenario_or_profile_is_not_comparable_history() -> None:
    others = history([10.0, 10.0, 10.0], scenario="live.inserts") + history([10.0] * 3, profile="full")
    assert compare(current(50.0), others, CFG).verdict == NA


def test_a_different_machine_fingerprint_is_inconclusive_with_the_reason() -> None:
    other = dict(MACHINE, cpu_model="Other CPU 1000", cores=4)
    result = compare(current(50.0), history([10.0, 10.0, 10.0], machine=other), CFG)
    assert result.verdict == INCONCLUSIVE
    assert "machine fingerprint differs" in result.evidence
    assert "cpu_model 'Test CPU 3000' vs 'Other CPU 1000'" in result.evidence and "cores 8 vs 4" in result.evidence


def test_a_different_target_version_is_inconclusive_with_the_reason() -> None:
    elsewhere = [HistoryRun(facts(-1, machine=dict(MACHINE, cores=2), version="2.0"), PASS, {}, {})]
    result = compare(current(50.0, version="2.0"), elsewhere + history([10.0, 10.0, 10.0]), CFG)
    assert result.verdict == INCONCLUSIVE
    assert "target version differs (this run 2.0, history 1.0)" in result.evidence


def test_too_few_comparable_passing_runs_is_not_applicable() -> None:
    runs = [*history([10.0, 10.0]), HistoryRun(facts(5), FAIL, {"SC-054": FAIL}, {"delivery_p99_ms": 10.0})]
    result = compare(current(50.0), runs, CFG)
    assert result.verdict == NA and "only 2 comparable passing run(s)" in result.evidence
    assert result.trend is not None and len(result.trend.runs) == 3 and result.trend.baseline == {}


def test_runs_that_did_not_pass_are_not_baselines() -> None:
    slow = [HistoryRun(facts(10 + i), FAIL, {"SC-054": FAIL}, {"delivery_p99_ms": 50.0}) for i in range(5)]
    result = compare(current(12.0), history([10.0, 10.0, 10.0]) + slow, CFG)
    assert result.verdict == FAIL and result.changes[0].baseline == 10.0


def test_a_regression_that_was_only_na_or_inconclusive_does_not_keep_a_run_out() -> None:
    run = HistoryRun(facts(1), INCONCLUSIVE, {"SC-054": PASS, CRITERION: INCONCLUSIVE}, {})
    assert passing(run)
    assert not passing(HistoryRun(facts(2), FAIL, {"SC-054": PASS, CRITERION: FAIL}, {}))


def test_runs_inconclusive_only_on_size_are_baselines_but_not_failed_crashed_or_saturated_ones() -> None:
    """A quick profile is inconclusive on the specification's sizes while its measurements are sound:
    three such runs make a baseline, so a slowed fourth fails; a failed, crashed or saturated run never does."""
    sized = {"SC-051": PASS, "SC-054": INCONCLUSIVE, "SC-057": INCONCLUSIVE, "RUN": PASS}
    runs = [HistoryRun(facts(i), INCONCLUSIVE, sized, {"delivery_p99_ms": 10.0}) for i in range(3)]
    assert all(passing(r) for r in runs)
    assert compare(current(20.0), runs, CFG).verdict == FAIL
    assert not passing(HistoryRun(facts(7), FAIL, {**sized, "SC-051": FAIL}, {"delivery_p99_ms": 10.0}))
    assert not passing(HistoryRun(facts(8), INCONCLUSIVE, {**sized, "RUN": INCONCLUSIVE}, {}))
    assert not passing(HistoryRun(facts(9), INCONCLUSIVE, sized, {"generator_saturated_fraction": 0.2}))


def test_only_earlier_runs_count() -> None:
    later = [HistoryRun(facts(200 + i), PASS, {}, {"delivery_p99_ms": 10.0}) for i in range(3)]
    assert compare(current(50.0), later, CFG).verdict == NA


def test_the_pinned_baseline_replaces_the_median() -> None:
    runs = history([10.0, 10.0, 10.0, 10.0])
    pin = HistoryRun(facts(50), PASS, {}, {"delivery_p99_ms": 20.0})
    result = compare(current(22.0), runs, CFG, pinned=pin)
    assert (
        result.verdict == PASS and result.changes[0].baseline == 20.0 and "pinned baseline run-050" in (result.evidence)
    )
    assert compare(current(22.0), [], CFG, pinned=pin).verdict == PASS  # a pin needs no median history


def test_a_pinned_or_given_baseline_of_another_version_or_machine_is_inconclusive() -> None:
    pin = HistoryRun(facts(50, version="0.9"), PASS, {}, {"delivery_p99_ms": 10.0})
    result = compare(current(22.0), [], CFG, pinned=pin)
    assert result.verdict == INCONCLUSIVE and "ran target version 0.9, this run 1.0" in result.evidence
    given = HistoryRun(facts(51, machine=dict(MACHINE, kernel="5.10")), PASS, {}, {"delivery_p99_ms": 10.0})
    result = compare(current(22.0), [], CFG, explicit=given)
    assert result.verdict == INCONCLUSIVE and "kernel '6.1.0' vs '5.10'" in result.evidence


def test_the_trend_of_a_scenario_without_a_run_uses_its_latest_group() -> None:
    elsewhere = [HistoryRun(facts(i, machine=dict(MACHINE, cores=2)), PASS, {}, {"delivery_p99_ms": 99.0})
                 for i in range(-5, 0)]  # fmt: skip
    runs = elsewhere + history([10.0, 11.0, 12.0])
    trend = scenario_trend(runs, "live.high-frequency", CFG, lambda f: None)
    assert trend.baseline["delivery_p99_ms"] == 11.0 and trend.bands["delivery_p99_ms"] == 3.0
    assert len(trend.runs) == 3 and trend.current is None


def test_a_regression_while_the_generator_saturated_is_inconclusive() -> None:
    failed = compare(current(12.0), history([10.0, 10.0, 10.0]), CFG)
    scenario = {"generator": {"state": "saturated", "evidence": "generator local pid 7 at >= 90% of a core"}}
    result = _saturated(failed, scenario)
    assert failed.verdict == FAIL and result.verdict == INCONCLUSIVE
    assert result.evidence.startswith("load generator saturated (generator local pid 7") and result.changes
    assert _saturated(failed, {"generator": {"state": "healthy"}}) is failed
