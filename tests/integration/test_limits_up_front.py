"""A scenario needing more subscriptions than the embedded server allows stops before the run, in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.orchestration.runner import Runner, RunOptions
from harness.runfolder import LOCUST_OUT
from harness.scenarios.catalogue import resolve
from reports.judge import RULES


@pytest.mark.timeout(60)
def test_a_per_user_limit_below_the_plan_stops_the_run_before_locust(tmp_path: Path) -> None:
    said: list[str] = []
    options = RunOptions(
        quick=True, out_dir=tmp_path, progress=said.append, server_args=("--max-subscriptions-per-user", "2")
    )
    (scenario,) = resolve(["live.multi-listener"], RULES)  # 3 listeners as the app user
    code = Runner(options).run(scenario)
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    run = json.loads((run_dir / "run.json").read_text())
    assert code == 2 and run["status"] == "harness_error"
    assert "needs 3 subscriptions" in run["error"] and "allows 2 per user" in run["error"] and "\n" not in run["error"]
    assert any("needs 3 subscriptions" in line for line in said)
    assert not (run_dir / LOCUST_OUT).exists(), "Locust was started"
