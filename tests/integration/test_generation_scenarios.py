"""The scenarios of both KalamDB protocol generations, each run --quick on ``serve --protocol 0.7`` and ``0.4``.

``live.filter-move``, ``live.replay-gap``, ``live.replay-expired`` and ``live.restart-resume`` are judged
by the same criteria on both generations; what differs is what each generation owes (docs/kalamdb-0.7.md),
checked here by its counts: under 0.7 a filtered listener gets one filter-leave per move out of its
conversation and a replay delivers every change; under 0.4 leaves send nothing and a resume re-reads rows.
The 0.7 runs are in the default suite (``test_live_query_changes.py`` runs the two replay scenarios on 0.7
with exact counts, so they are not repeated here); the 0.4 ones are nightly, together they exceed 40 s.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from harness.orchestration.runner import Runner, RunOptions
from harness.scenarios.catalogue import resolve
from reports.judge import RULES
from tests.support.verdicts import FEW_NOTIFICATIONS, Allowances, assert_passes, criteria_of

SCENARIOS = ("live.filter-move", "live.replay-gap", "live.replay-expired", "live.restart-resume")
# SC-054 may be inconclusive for any reason it gives (too few samples, a lagging load generator on a
# shared machine): these runs are about what each generation delivers; a latency over the limit still fails.
ALLOWED: Allowances = {
    **{(name, "SC-057"): FEW_NOTIFICATIONS for name in SCENARIOS},
    **{(name, "SC-054"): "" for name in SCENARIOS},
}
# per listener: (expected, received by op); None where the count rests on timing (what a 0.4 resume sends)
OWED: dict[tuple[str, str], dict[str, tuple[int, dict[str, int]]] | None] = {
    ("live.filter-move", "0.7"): {
        "L1": (68, {"insert": 38, "update": 15, "delete": 15}),  # 30 + 8 re-entering; 15 leaves
        "L2": (33, {"insert": 15, "update": 5, "delete": 13}),  # 15 entering; 8 leaves + 5 deletes
        "L3": (78, {"insert": 30, "update": 43, "delete": 5}),
    },
    ("live.filter-move", "0.4"): {
        "L1": (53, {"insert": 30, "update": 23}),  # the 8 re-entering rows are updates; no leave
        "L2": (25, {"update": 20, "delete": 5}),
        "L3": (78, {"insert": 30, "update": 43, "delete": 5}),
    },
    ("live.replay-gap", "0.4"): None,
    ("live.replay-expired", "0.4"): {"L1": (1150, {"insert": 50, "snapshot": 1100})},
    ("live.restart-resume", "0.7"): {"L1": (130, {"insert": 60, "update": 10, "snapshot": 60})},
    ("live.restart-resume", "0.4"): {"L1": (130, {"insert": 60, "update": 10, "snapshot": 60})},
}
CASES = [
    pytest.param(
        name, generation, marks=[pytest.mark.nightly] if generation == "0.4" else [], id=f"{name}-{generation}"
    )
    for name, generation in OWED
]


def _run(tmp_path: Path, name: str, generation: str, *faults: str) -> tuple[int, dict[str, Any], Path]:
    out = tmp_path / "runs"
    args = ("--protocol", generation, *(a for f in faults for a in ("--fault", f)))
    runner = Runner(RunOptions(quick=True, out_dir=out, progress=lambda _msg: None, server_args=args))
    (scenario,) = resolve([name], RULES)
    code = runner.run(scenario)
    (run_dir,) = [p for p in out.iterdir() if p.name.endswith(name)]
    return code, json.loads((run_dir / "verdict.json").read_text()), run_dir


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("name", "generation"), CASES)
def test_scenario_passes_on_each_generation_with_what_it_owes(tmp_path: Path, name: str, generation: str) -> None:
    code, verdict, run_dir = _run(tmp_path, name, generation)
    (scenario,) = resolve([name], RULES)
    assert_passes(name, scenario.criteria, code, verdict, ALLOWED)
    run = json.loads((run_dir / "run.json").read_text())
    assert run["target"]["protocol"] == generation
    # the plan carries the detected generation, so every Locust process (a master too) judges by its promises
    assert json.loads((run_dir / "plan.json").read_text())["target"]["options"]["protocol"] == generation
    delivery = json.loads((run_dir / "delivery.json").read_text())
    for key in ("lost", "duplicates", "out_of_order", "phantom", "old_value_errors", "delete_flag_errors"):
        assert delivery["totals"][key] == 0, key
    owed = OWED[(name, generation)]
    rows = {r["listener"]: r for r in delivery["listeners"]}
    if owed is None:
        assert all(r["delivered"] >= r["expected"] > 0 for r in rows.values())
    else:
        got = {lid: (r["expected"], {op: n for op, n in r["received_by_op"].items() if n}) for lid, r in rows.items()}
        assert got == owed
        assert all(r["delivered"] == r["expected"] for r in rows.values())
    sources = delivery["totals"]["latency_sources"]
    if delivery["totals"]["received_by_op"][
        "delete"
    ]:  # deletes: commit time under 0.4, the writers' send time under 0.7
        assert sorted(k for k in sources if k != "sent_at") == (
            ["commit_time"] if generation == "0.4" else ["writer_send_time"]
        )
    if name == "live.restart-resume":
        (restart,) = run["server_restarts"]
        assert restart["pid_after"] not in (None, restart["pid_before"]) and restart["up"] > restart["down"]
        assert [i["kind"] for i in run["incidents"]] == ["server_restart"]
        assert criteria_of(verdict)["SC-060"]["verdict"] == "pass"


@pytest.mark.timeout(120)
@pytest.mark.parametrize("generation", [pytest.param("0.7"), pytest.param("0.4", marks=pytest.mark.nightly)])
def test_a_filter_leak_fails_filter_move_with_a_witness(tmp_path: Path, generation: str) -> None:
    """``--fault filter-leak``: the first move out of conversation 1 reaches its listener as a plain update."""
    code, verdict, run_dir = _run(tmp_path, "live.filter-move", generation, "filter-leak")
    assert code == 1 and criteria_of(verdict)["SC-051"]["verdict"] == "fail"
    delivery = json.loads((run_dir / "delivery.json").read_text())
    kinds = {w["kind"]: w for w in delivery["witnesses"] if w["listener"] == "L1"}
    assert kinds["outside_filter"]["op"] == "update" and "conversation 2" in kinds["outside_filter"]["observed"]
    if generation == "0.7":  # the leave the leaked update replaced is owed and missing
        assert "filter-leave" in kinds["lost"]["expected"]
