"""The ten memory and stress scenarios, through the same runner as `lqharness run stress`.

The quick profiles run in `make test`: each must complete against the reference server
with every criterion it lists judged — pass, or inconclusive with a reason — and never
fail. The full-length profiles (the specification's numbers) are marked `nightly` and
run by `make nightly`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.orchestration.runner import Runner, RunOptions
from harness.scenarios.catalogue import resolve
from reports.judge import RULES

STRESS = resolve(["stress"], RULES)


def run_scenario(tmp_path: Path, scenario, quick: bool) -> tuple[int, dict, dict]:
    out = tmp_path / "runs"
    code = Runner(RunOptions(quick=quick, out_dir=out, progress=lambda _msg: None)).run(scenario)
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]  # history.sqlite lies beside the run folders
    verdict = json.loads((run_dir / "verdict.json").read_text())
    run = json.loads((run_dir / "run.json").read_text())
    return code, verdict, run


def assert_judged(scenario, code: int, verdict: dict, run: dict) -> None:
    assert run["status"] == "completed", run["error"]
    criteria = {c["id"]: c for s in verdict["scenarios"] for c in s["criteria"]}
    assert set(scenario.criteria) <= set(criteria), "a listed criterion was not judged"
    failed = {k: c["evidence"] for k, c in criteria.items() if c["verdict"] == "fail"}
    assert not failed, failed
    for c in criteria.values():
        assert c["verdict"] in ("pass", "inconclusive", "n/a")
        if c["verdict"] != "pass":
            assert c["evidence"], f"{c['id']} is {c['verdict']} without a reason"
    assert code in (0, 2)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("scenario", STRESS, ids=[s.name for s in STRESS])
def test_quick_stress_profile_is_judged(tmp_path: Path, scenario) -> None:
    assert_judged(scenario, *run_scenario(tmp_path, scenario, quick=True))


@pytest.mark.nightly
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("scenario", STRESS, ids=[s.name for s in STRESS])
def test_full_stress_profile_is_judged(tmp_path: Path, scenario) -> None:
    assert_judged(scenario, *run_scenario(tmp_path, scenario, quick=False))
