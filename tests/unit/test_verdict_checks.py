"""The stress tests' verdict check rejects a run in which nothing was measured (audit H1)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from harness.scenarios.catalogue import resolve
from reports.judge import RULES, judge_run
from tests.support.synthetic import Synthetic, spec_size, write_run
from tests.support.verdicts import verdict_problems

UNMEASURED = {"monitor.jsonl", "delivery.json", "locust_stats.csv", "target.json"}


def _judged(run_dir: Path) -> tuple[int, dict]:
    code = judge_run(run_dir, quiet=True, report=False)
    return code, orjson.loads((run_dir / "verdict.json").read_bytes())


@pytest.mark.parametrize("name", ["stress.memory-write", "stress.writers-listeners", "stress.memory-release"])
def test_a_run_with_nothing_measured_is_rejected(tmp_path: Path, name: str) -> None:
    (scenario,) = resolve([name], RULES)
    run_dir = write_run(tmp_path, Synthetic(scenario=name, criteria=list(scenario.criteria), omit=UNMEASURED))
    code, verdict = _judged(run_dir)
    problems = verdict_problems(name, scenario.criteria, code, verdict, {})
    assert code == 2
    assert sorted(p.split(" ", 1)[0] for p in problems) == sorted(scenario.criteria)
    assert all(" inconclusive (no allowance)" in p for p in problems)


def test_an_allowed_inconclusive_needs_its_own_reason_and_exit_code_2(tmp_path: Path) -> None:
    run_dir = write_run(tmp_path, Synthetic(criteria=["SC-056", "SC-051"]))  # 100 s of load
    code, verdict = _judged(run_dir)
    name = "stress.synthetic"
    assert verdict_problems(name, ["SC-056", "SC-051"], code, verdict, {(name, "SC-056"): "s of load"}) == []
    wrong = verdict_problems(name, ["SC-056"], code, verdict, {(name, "SC-056"): "notifications delivered"})
    assert len(wrong) == 1 and wrong[0].startswith("SC-056 inconclusive (allowed only inconclusive with")
    other = verdict_problems("stress.other", ["SC-056"], code, verdict, {(name, "SC-056"): "s of load"})
    assert len(other) == 1 and "(no allowance)" in other[0]
    assert verdict_problems(name, ["SC-056"], 0, verdict, {(name, "SC-056"): "s of load"}) == [
        "exit code 0, expected 2"
    ]


def test_a_clean_run_must_exit_0_and_judge_every_listed_criterion(tmp_path: Path) -> None:
    code, verdict = _judged(write_run(tmp_path, spec_size(criteria=["SC-051", "SC-056"])))
    assert code == 0
    assert verdict_problems("s", ["SC-051", "SC-056"], code, verdict, {}) == []
    assert verdict_problems("s", ["SC-051", "SC-059"], code, verdict, {}) == ["SC-059 was not judged"]
    assert verdict_problems("s", ["SC-051"], 2, verdict, {}) == ["exit code 2, expected 0"]


def test_only_the_na_of_an_unwritten_kind_needs_no_allowance(tmp_path: Path) -> None:
    spec = spec_size(criteria=["SC-051", "SC-052", "SC-055"], features=["resume"])  # no changes counter
    spec.writes = {"insert": 105_000, "update": 0, "delete": 0}
    code, verdict = _judged(write_run(tmp_path, spec))
    assert verdict_problems("s", ["SC-051", "SC-052", "SC-055"], code, verdict, {}) == [
        "SC-055 n/a (no allowance): the target has no changes counter (features: resume)"
    ]
