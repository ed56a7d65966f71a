"""End to end through Locust: the same plan in-process and as master + 2 workers, against the reference server.

Runs ``locust -f locustfiles/live.py`` with the command lines ``lqharness run`` builds
(``harness.orchestration.runner._locust_cmd``) and reads the run folder's ``delivery.json``,
``writes.json`` and ``target.json``.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.plan import ListenerSpec, Plan, ReconnectSpec, Step, WriterSpec
from tests.support.locust_flow import ANOMALIES, flow_plan, run_locust
from tests.support.refserver import start_refserver


def _inserts(tmp_path: Path, refserver: Any, name: str) -> Plan:
    writers = (WriterSpec(1, 1, (Step("insert", count=20),)), WriterSpec(2, 2, (Step("insert", count=20),)))
    listeners = (ListenerSpec("L1"), ListenerSpec("L2", conversation_id=1))
    return flow_plan(refserver.url, tmp_path / name, name, writers, listeners, ((1,), (2,)))


@pytest.mark.timeout(120)
def test_in_process_and_distributed_runs_agree(tmp_path: Path, refserver: Any) -> None:
    local = run_locust(_inserts(tmp_path, refserver, "flow_local"), workers=0)
    dist = run_locust(_inserts(tmp_path, refserver, "flow_dist"), workers=2)
    for result in (local, dist):
        totals = result["delivery"]["totals"]
        assert totals["expected"] == totals["delivered"] == 60  # L1: 40, L2 (conversation 1): 20
        assert all(totals[k] == 0 for k in ANOMALIES), totals
        assert result["delivery"]["error"] is None
        assert result["delivery"]["aggregation"]["timed_out"] is False
        assert result["writes"]["totals"]["ok"]["insert"] == 40
        listeners = result["target"]["listeners"]
        assert {lid: v["received"] for lid, v in listeners.items()} == {"L1": 40, "L2": 20}
        assert sorted(result["target"]["live"].values()) == [20, 40]
    strip = ("latency_ms",)
    assert {k: v for k, v in local["delivery"]["totals"].items() if k not in strip} == {
        k: v for k, v in dist["delivery"]["totals"].items() if k not in strip
    }
    for result, nodes in ((local, 1), (dist, 2)):
        agg = result["delivery"]["aggregation"]
        assert agg["summaries_expected"] == agg["summaries_received"] == nodes
        assert agg["users_expected"] == agg["users_received"] == 4
    assert dist["delivery"]["aggregation"]["workers_expected"] == 2


@pytest.mark.timeout(90)
def test_updates_deletes_and_a_resuming_listener(tmp_path: Path, refserver: Any) -> None:
    """Old values and delete flags from the real server; a listener leaves mid-stream and resumes."""
    program = (Step("insert", count=20, rate=50.0), Step("pause", seconds=0.3), Step("update", count=10, rate=20.0),
               Step("insert", count=10, rate=20.0), Step("delete", count=5, rate=20.0))  # fmt: skip
    writers = (WriterSpec(1, 1, program), WriterSpec(2, 1, program))
    listeners = (ListenerSpec("steady", 1), ListenerSpec("away", reconnect=ReconnectSpec(30, 0.5)))
    plan = flow_plan(refserver.url, tmp_path / "mixed", "flow_mixed", writers, listeners, ((1, 2),))
    result = run_locust(plan, workers=0)
    delivery = result["delivery"]
    assert all(delivery["totals"][k] == 0 for k in ANOMALIES), delivery["witnesses"]
    rows = {r["listener"]: r for r in delivery["listeners"]}
    assert rows["steady"]["expected"] == rows["steady"]["delivered"] == 2 * 45
    away = rows["away"]
    assert away["expected"] > 60 and away["may"] > 0 and away["delivered"] >= away["expected"]
    subs = {sid: n for li in result["target"]["listeners"].values() for sid, n in li["subscriptions"].items()}
    assert len(result["target"]["listeners"]["away"]["subscriptions"]) == 2
    assert all(subs[sid] == n for sid, n in result["target"]["live"].items()), (
        subs,
        result["target"]["live"],
    )
    assert delivery["connections"]["unexpected_disconnects"] == 0
    assert result["writes"]["totals"]["ok"] == {"insert": 60, "update": 20, "delete": 10}


@pytest.mark.timeout(90)
def test_server_faults_show_up_in_the_right_counters(tmp_path: Path) -> None:
    faults = ("--fault", "drop:every=9", "--fault", "duplicate:every=7", "--fault", "stale-old:every=2",
              "--fault", "no-deleted")  # fmt: skip
    with start_refserver(tmp_path / "faulty", *faults) as srv:
        program = (Step("insert", count=20, rate=100.0), Step("update", count=10), Step("delete", count=5))
        plan = flow_plan(
            srv.url, tmp_path / "faults", "flow_faults", (WriterSpec(1, 1, program),), (ListenerSpec("L1"),), ((1,),)
        )
        result = run_locust(plan, workers=0)
    totals = result["delivery"]["totals"]
    # Notifications n = 1..35: inserts 1-20, updates 21-30, deletes 31-35. drop:every=9 loses 9, 18, 27;
    # duplicate:every=7 repeats 7, 14, 21, 28, 35; stale-old:every=2 hits the updates 22..30 (5), and the
    # repeat of 28 carries the stale value again; no-deleted hits the 5 deletes, and the repeat of 35 again.
    expected = {"lost": 3, "duplicates": 5, "old_value_errors": 6, "delete_flag_errors": 6}
    assert {k: totals[k] for k in ANOMALIES} == {**dict.fromkeys(ANOMALIES, 0), **expected}, totals
    for kind in ("lost", "duplicates", "old_value_errors", "delete_flag_errors"):
        assert any(w["kind"] == kind for w in result["delivery"]["witnesses"]), kind
    failures = (tmp_path / "faults" / "locust_failures.csv").read_text()
    assert "NOTIFY" in failures and "duplicates" in failures


@pytest.mark.timeout(60)
def test_listeners_that_never_get_ready_end_the_run_with_an_error(tmp_path: Path, refserver: Any) -> None:
    plan = replace(_inserts(tmp_path, refserver, "flow_unready"), ready_timeout=2.0)
    t0 = time.monotonic()
    result = run_locust(plan, workers=0, setup=False)  # no app user: nobody can log in
    assert time.monotonic() - t0 < 20
    delivery = result["delivery"]
    assert "could not subscribe" in delivery["error"]
    assert delivery["totals"]["delivered"] == 0 and delivery["totals"]["expected"] == 0
    assert result["writes"]["totals"]["ok"]["insert"] == 0
