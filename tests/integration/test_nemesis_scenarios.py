"""The nemesis scenarios end to end, through the fault proxy: each passes every criterion it lists (they
waive the specification's size minimums, and a network fault is never the target's), except the
inconclusives of ``NEMESIS_ALLOWED``. About 20 s each, so nightly; the fault matrix runs them too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.orchestration.runner import Runner, RunOptions
from harness.scenarios.catalogue import Scenario, resolve
from reports.judge import RULES
from tests.support.verdicts import NEMESIS_ALLOWED, assert_passes

NEMESIS = resolve(["nemesis"], RULES)


@pytest.mark.nightly
@pytest.mark.timeout(120)
@pytest.mark.parametrize("scenario", NEMESIS, ids=[s.name for s in NEMESIS])
def test_nemesis_scenario_passes_its_attribution(tmp_path: Path, scenario: Scenario) -> None:
    out = tmp_path / "runs"
    code = Runner(RunOptions(quick=True, out_dir=out, progress=lambda _msg: None)).run(scenario)
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert (run_dir / "nemesis.jsonl").exists()
    assert_passes(scenario.name, scenario.criteria, code, verdict, NEMESIS_ALLOWED)
