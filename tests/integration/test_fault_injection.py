"""Fault injection: the reference server misbehaves on purpose, the judge must name it.

Each case starts the embedded server with one ``--fault`` and runs a scenario through
the same runner as ``lqharness run``. The run must fail, by the criterion that fault
exists to prove, with the anomaly in its evidence — and the criteria the fault does not
touch must still pass, so a judge that fails everything cannot pass this test.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.orchestration.runner import Runner, RunOptions
from harness.scenarios.catalogue import resolve
from reports.judge import RULES

CASES = [
    # fault, scenario, criterion that must fail, counter that must be non-zero, criteria that must still pass
    ("drop:every=7", "live.inserts", "SC-051", "lost", ["SC-055"]),
    ("duplicate:every=7", "live.inserts", "SC-051", "duplicates", []),
    ("reorder:every=7", "live.inserts", "SC-051", "out_of_order", []),
    ("stale-old:every=3", "live.updates", "SC-052", "old_value_errors", ["SC-051", "SC-055"]),
    ("corrupt-new:every=4", "live.updates", "SC-052", "new_value_errors", ["SC-051", "SC-055"]),
    ("no-deleted", "live.deletes", "SC-053", "delete_flag_errors", ["SC-051", "SC-055"]),
    # a subscription error mid-stream: the listener resumes (nothing lost), the drop is on record
    ("sub-error:every=30", "live.inserts", "SC-057", None, ["SC-051", "SC-055"]),
    ("delay:ms=80,every=10", "live.inserts", "SC-054", None, ["SC-051", "SC-055"]),
    ("skew-changes:by=3", "live.changes-counter", "SC-055", None, ["SC-051", "SC-052", "SC-053"]),
]


def run_with_fault(tmp_path: Path, scenario: str, *faults: str) -> tuple[int, dict, Path]:
    out = tmp_path / "runs"
    options = RunOptions(
        quick=True,
        out_dir=out,
        progress=lambda _msg: None,
        server_args=tuple(a for f in faults for a in ("--fault", f)),
    )
    code = Runner(options).run(resolve([scenario], RULES)[0])
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]  # history.sqlite lies beside the run folders
    return code, json.loads((run_dir / "verdict.json").read_text()), run_dir


def criteria_of(verdict: dict) -> dict[str, dict]:
    return {c["id"]: c for s in verdict["scenarios"] for c in s["criteria"]}


@pytest.mark.timeout(90)
@pytest.mark.parametrize(("fault", "scenario", "criterion", "counter", "still_pass"), CASES, ids=[c[0] for c in CASES])
def test_fault_is_caught_by_its_criterion(tmp_path, fault, scenario, criterion, counter, still_pass) -> None:
    code, verdict, run_dir = run_with_fault(tmp_path, scenario, fault)
    found = criteria_of(verdict)
    assert code == 1 and verdict["verdict"] == "fail"
    assert found[criterion]["verdict"] == "fail", found[criterion]
    for other in still_pass:
        assert found[other]["verdict"] == "pass", (other, found[other])
    if counter is not None:
        totals = json.loads((run_dir / "delivery.json").read_text())["totals"]
        assert totals[counter] > 0
        witnesses = json.loads((run_dir / "delivery.json").read_text())["witnesses"]
        assert any(w["kind"] == counter for w in witnesses), witnesses[:3]
    junit = (run_dir / "junit.xml").read_text()
    assert f'name="{criterion}' in junit and "<failure" in junit


@pytest.mark.timeout(90)
def test_server_crash_fails_the_run_with_evidence(tmp_path: Path) -> None:
    # live.reconnect keeps the run going past the crash: the listener is away when it happens.
    code, verdict, run_dir = run_with_fault(tmp_path, "live.reconnect", "crash:after=4")
    assert code == 1 and verdict["verdict"] == "fail"
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "target_crashed"
    failed = [c for c in criteria_of(verdict).values() if c["verdict"] == "fail"]
    assert any("crash" in str(c["evidence"]).lower() or "exit" in str(c["evidence"]).lower() for c in failed), failed
