"""`make nightly`'s verdict: each live and stress run it made passes, but for the listed inconclusives.

`make nightly` runs `lqharness run live stress` into NIGHTLY_OUT (recording the history), then this
module with LQH_NIGHTLY_RUNS naming that folder and LQH_NIGHTLY_SINCE the run's start (Unix seconds),
so a run folder left from an earlier night never stands in for a missing one. A live scenario is the
specification's own size, below SC-054's and SC-057's minimums: those inconclusives are allowed for
that reason only (``live_allowances``). A stress scenario's full profile must pass every criterion it
lists, with no allowance. Without LQH_NIGHTLY_RUNS there is nothing to read and the module is skipped.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from harness.runfolder import verdict_exit_code
from harness.scenarios.catalogue import Scenario, resolve
from reports.judge import RULES
from tests.support.verdicts import assert_passes, live_allowances

RUNS = os.environ.get("LQH_NIGHTLY_RUNS", "")
SINCE = float(os.environ.get("LQH_NIGHTLY_SINCE", "0"))
SCENARIOS = resolve(["live", "stress"], RULES)
ALLOWED = live_allowances(s for s in SCENARIOS if s.name.startswith("live."))

pytestmark = [
    pytest.mark.nightly,
    pytest.mark.skipif(not RUNS, reason="reads the run folders `make nightly` wrote (LQH_NIGHTLY_RUNS)"),
]


def _latest_run(scenario: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """run.json and verdict.json of the newest folder of ``scenario`` started since LQH_NIGHTLY_SINCE."""
    found: list[tuple[float, Path, dict[str, Any]]] = []
    for folder in Path(RUNS).iterdir():
        if folder.is_dir() and folder.name.endswith("-" + scenario) and (folder / "run.json").is_file():
            run = json.loads((folder / "run.json").read_text())
            if float(run.get("started_at") or 0) >= SINCE:
                found.append((float(run["started_at"]), folder, run))
    assert found, f"no run folder of {scenario} in {RUNS} started since {SINCE:.0f}"
    _, folder, run = max(found, key=lambda item: item[0])
    assert (folder / "verdict.json").is_file(), f"{folder} was never judged: {run.get('error')}"
    return run, json.loads((folder / "verdict.json").read_text())


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_nightly_run_passes_but_for_its_listed_inconclusives(scenario: Scenario) -> None:
    run, verdict = _latest_run(scenario.name)
    assert run["status"] == "completed", run["error"]
    code = verdict_exit_code(verdict["verdict"])
    assert_passes(scenario.name, scenario.criteria, code, verdict, ALLOWED)
