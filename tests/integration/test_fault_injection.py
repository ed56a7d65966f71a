"""Fault injection: the reference server misbehaves on purpose, the judge must name it exactly.

Each case starts the embedded server with one ``--fault`` and runs a scenario through the same
runner as ``lqharness run``. The run must fail by the criterion that fault exists to prove, with
that criterion's own ``<failure>`` in junit.xml; every criterion the fault does not touch must
still pass (each case lists at least one), so a judge that fails everything cannot pass.

Delivery faults count notifications per subscription from 1 and fire on every multiple of
``every`` (refserver/faults.py ``Faults.hits``, refserver/live.py ``_fan_out``), so their counts
are fixed: on live.inserts' 100 notifications ``every=7`` fires at 7, 14, ..., 98, 14 times;
a reordered notification is held and sent after the next one, which the checker counts as one
out of order. Every other anomaly counter must stay at 0.

The delivery cases judge with ``SMALL_RUN_CRITERIA``, which lowers the size minimums of SC-054
and SC-057 to these scenarios' size: the matrix proves detection, while the unit tests and the
nightly profiles prove the specification's sizes. The health cases (leak, crash, keep-closed)
run stress scenarios' quick profiles with the default criteria. Durations on the 2-core
development machine are noted per case.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.delivery.anomalies import LEGACY_PHANTOM, Anomaly
from tests.support.runs import run_with_fault
from tests.support.verdicts import SMALL_RUN_CRITERIA, criteria_of

# every anomaly counter of delivery.json (late arrivals are no anomaly), and the phantom family's sum
ANOMALY_COUNTERS = (*(str(a) for a in Anomaly if a is not Anomaly.LATE), LEGACY_PHANTOM)
CASES = [
    # fault, scenario, criterion that must fail, exact anomaly counts (others 0), criteria that must still pass
    ("drop:every=7", "live.inserts", "SC-051", {"lost": 14}, ["SC-054", "SC-055", "SC-057"]),
    ("duplicate:every=7", "live.inserts", "SC-051", {"duplicates": 14}, ["SC-054", "SC-057"]),
    ("reorder:every=7", "live.inserts", "SC-051", {"out_of_order": 14}, ["SC-054", "SC-055", "SC-057"]),
    # live.updates: inserts are notifications 1-50, updates 51-100; stale-old fires on the updates 51, 54, ..., 99
    ("stale-old:every=3", "live.updates", "SC-052", {"old_value_errors": 17}, ["SC-051", "SC-054", "SC-055"]),
    # corrupt-new fires on every non-delete multiple of 4 in 1..100
    ("corrupt-new:every=4", "live.updates", "SC-052", {"new_value_errors": 25}, ["SC-051", "SC-054", "SC-055"]),
    # live.deletes: 30 inserts, then 15 deletes, every one without _deleted
    ("no-deleted", "live.deletes", "SC-053", {"delete_flag_errors": 15}, ["SC-051", "SC-054", "SC-055"]),
    # a subscription error mid-stream: the listener resumes (nothing lost), the drop is on record
    ("sub-error:every=30", "live.inserts", "SC-057", {}, ["SC-051", "SC-054", "SC-055"]),
    ("delay:ms=80,every=10", "live.inserts", "SC-054", {}, ["SC-051", "SC-055", "SC-057"]),
    ("skew-changes:by=3", "live.changes-counter", "SC-055", {}, ["SC-051", "SC-052", "SC-053", "SC-054", "SC-057"]),
]


def junit_states(run_dir: Path) -> dict[str, tuple[str, str]]:
    """Criterion id -> ("failure" | "skipped" | "pass", message) from the run's junit.xml testcases."""
    states = {}
    for case in ET.parse(run_dir / "junit.xml").getroot().iter("testcase"):
        cid = case.get("name", "").split(" ", 1)[0]
        state, message = "pass", ""
        for tag in ("failure", "skipped"):
            element = case.find(tag)
            if element is not None:
                state, message = tag, element.get("message", "")
                break
        states[cid] = (state, message)
    return states


def assert_fails_only(run_dir: Path, verdict: dict, code: int, criterion: str, still_pass: list[str]) -> dict:
    """The run failed, ``criterion`` failed in verdict.json and in its own junit testcase, and every
    criterion of ``still_pass`` passed in both; returns the criteria by id."""
    found = criteria_of(verdict)
    assert code == 1 and verdict["verdict"] == "fail", {k: c["verdict"] for k, c in found.items()}
    assert found[criterion]["verdict"] == "fail", found[criterion]
    states = junit_states(run_dir)
    assert states[criterion][0] == "failure", states[criterion]
    assert still_pass, "a case must name the criteria the fault leaves alone"
    for other in still_pass:
        assert found[other]["verdict"] == "pass", (other, found[other])
        assert states[other][0] == "pass", (other, states[other])
    return found


def anomaly_totals(run_dir: Path) -> dict[str, int]:
    totals = json.loads((run_dir / "delivery.json").read_text())["totals"]
    return {k: totals[k] for k in ANOMALY_COUNTERS}


# 5-8 s each (measured on the shared 2-core machine, as below)
@pytest.mark.timeout(90)
@pytest.mark.parametrize(("fault", "scenario", "criterion", "counts", "still_pass"), CASES, ids=[c[0] for c in CASES])
def test_fault_is_caught_by_its_criterion_with_exact_counts(
    tmp_path: Path, fault: str, scenario: str, criterion: str, counts: dict[str, int], still_pass: list[str]
) -> None:
    code, verdict, run_dir = run_with_fault(tmp_path, scenario, fault, criteria=SMALL_RUN_CRITERIA)
    assert_fails_only(run_dir, verdict, code, criterion, still_pass)
    assert anomaly_totals(run_dir) == {**dict.fromkeys(ANOMALY_COUNTERS, 0), **counts}
    witnesses = json.loads((run_dir / "delivery.json").read_text())["witnesses"]
    for kind in counts:
        assert any(w["kind"] == kind for w in witnesses), (kind, witnesses[:3])


# about 8 s
@pytest.mark.timeout(90)
def test_server_crash_fails_the_run_criterion(tmp_path: Path) -> None:
    # live.reconnect keeps the run going past the crash: the listener is away when it happens.
    code, verdict, run_dir = run_with_fault(tmp_path, "live.reconnect", "crash:after=4")
    assert code == 1 and verdict["verdict"] == "fail"
    assert json.loads((run_dir / "run.json").read_text())["status"] == "target_crashed"
    found = criteria_of(verdict)
    assert found["RUN"]["verdict"] == "fail" and "the target crashed" in found["RUN"]["evidence"]
    assert junit_states(run_dir)["RUN"][0] == "failure"


# about 12 s: 3,000 notifications each keep 20 kB, about 60 MiB within the 6 s load
@pytest.mark.timeout(180)
def test_leak_fails_memory_growth_and_nothing_else(tmp_path: Path) -> None:
    code, verdict, run_dir = run_with_fault(tmp_path, "stress.memory-write", "leak:bytes=20000")
    found = assert_fails_only(run_dir, verdict, code, "SC-056", ["SC-051", "SC-060"])
    assert found["SC-056"]["value"] > 10.0 and "growth +" in found["SC-056"]["evidence"]


# about 50 s (the quick profile observes 28 s after the load): 10 listeners see about 5,000 writes,
# 2 kB kept per notification, never given back
@pytest.mark.timeout(180)
def test_leak_fails_memory_release(tmp_path: Path) -> None:
    code, verdict, run_dir = run_with_fault(tmp_path, "stress.memory-release", "leak:bytes=2000")
    found = assert_fails_only(run_dir, verdict, code, "SC-059", ["SC-060"])
    assert found["SC-059"]["value"] > 5.0 and "vs baseline" in found["SC-059"]["evidence"]


# about 18 s: the server exits 8 s after its start, during the ws-leak load
@pytest.mark.timeout(180)
def test_crash_during_a_stress_run_fails_sc060_with_the_death_in_its_evidence(tmp_path: Path) -> None:
    code, verdict, run_dir = run_with_fault(tmp_path, "stress.ws-leak", "crash:after=8")
    found = criteria_of(verdict)
    assert code == 1 and verdict["verdict"] == "fail"
    assert found["SC-060"]["verdict"] == "fail", found["SC-060"]
    assert "server crashed" in found["SC-060"]["evidence"] and "target_crashed" in found["SC-060"]["evidence"]
    assert found["RUN"]["verdict"] == "fail" and "the target crashed" in found["RUN"]["evidence"]
    states = junit_states(run_dir)
    assert states["SC-060"][0] == "failure" and "server crashed" in states["SC-060"][1]


# about 22 s: the server never releases the 25 subscriptions the churn user closes
@pytest.mark.timeout(180)
def test_kept_subscriptions_fail_conn_release_with_the_lingering_count(tmp_path: Path) -> None:
    code, verdict, run_dir = run_with_fault(tmp_path, "stress.ws-leak", "keep-closed")
    found = assert_fails_only(run_dir, verdict, code, "CONN-RELEASE", ["SC-060"])
    assert found["CONN-RELEASE"]["value"]["lingering_subscriptions"] == 25, found["CONN-RELEASE"]


# about 21 s: 5 listeners x up to 7,500 inserts, 25 kB kept per notification: past the scenario's 256 MiB
# bound even when a busy machine lets the writers reach a third of their rate
@pytest.mark.timeout(180)
def test_leak_past_the_memory_limit_fails_mem_bound(tmp_path: Path) -> None:
    code, verdict, run_dir = run_with_fault(tmp_path, "stress.storage-bounds", "leak:bytes=25000")
    found = assert_fails_only(run_dir, verdict, code, "MEM-BOUND", ["SC-051", "SC-060"])
    assert found["MEM-BOUND"]["value"] > 256.0 and "(limit 256 MiB)" in found["MEM-BOUND"]["evidence"]


# about 4 s: live.ordering's notifications are i1, u1, i2, d1; reorder:every=3 holds i2 until after d1
@pytest.mark.timeout(90)
def test_a_delete_reordered_ahead_of_an_insert_fails_live_ordering(tmp_path: Path) -> None:
    code, verdict, run_dir = run_with_fault(tmp_path, "live.ordering", "reorder:every=3", criteria=SMALL_RUN_CRITERIA)
    assert_fails_only(run_dir, verdict, code, "SC-051", ["SC-052", "SC-053", "SC-055"])
    assert anomaly_totals(run_dir) == {**dict.fromkeys(ANOMALY_COUNTERS, 0), "out_of_order": 1}
