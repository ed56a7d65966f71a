"""The stress users through Locust against the reference server: queriers, churn, flush, ramp steps, phases.

Small plans run ``locust -f locustfiles/live.py`` as ``lqharness run`` does (``-u`` from
``users_needed``) and read the run folder: Locust's stats, ``phases.jsonl`` and ``target.json``.
"""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest

from harness.plan import (
    ChurnSettings,
    FlushSettings,
    ListenerSpec,
    Plan,
    QuerierSettings,
    RampSettings,
    Step,
    WriterSpec,
)
from harness.ramp_steps import StepSlo
from monitors.launch import start_monitor_process, stop_monitor_process
from tests.support.locust_flow import ANOMALIES, flow_plan, run_locust
from tests.support.refserver import start_refserver


def _plan(refserver: Any, tmp_path: Path, name: str, writers: tuple[WriterSpec, ...], **extra: Any) -> Plan:
    plan = flow_plan(
        refserver.url, tmp_path / name, f"stress_{name}", writers, (ListenerSpec("L1"),),
        tuple((w.writer_id,) for w in writers),
    )  # fmt: skip
    return replace(plan, extra=replace(plan.extra, **extra))


def _stats(plan: Plan) -> dict[tuple[str, str], dict[str, str]]:
    with (Path(plan.extra.run_dir) / "locust_stats.csv").open() as f:
        return {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}


def _phases(plan: Plan) -> dict[str, dict[str, Any]]:
    lines = (Path(plan.extra.run_dir) / "phases.jsonl").read_bytes().splitlines()
    return {p["name"]: p for p in map(orjson.loads, lines)}


def _clean(result: dict[str, Any]) -> None:
    totals = result["delivery"]["totals"]
    assert all(totals[k] == 0 for k in ANOMALIES), totals
    assert totals["expected"] == totals["delivered"] > 0
    assert result["delivery"]["error"] is None


@pytest.mark.timeout(90)
def test_queriers_fire_query_events_while_writers_run(tmp_path: Path, refserver: Any) -> None:
    writers = (WriterSpec(1, 1, (Step("insert", seconds=2.0, rate=25.0),)),)
    plan = _plan(refserver, tmp_path, "query", writers, queriers=QuerierSettings(2, 5))
    result = run_locust(plan, workers=0)
    _clean(result)
    stats = _stats(plan)
    for kind in ("recent", "count"):
        row = stats[("QUERY", kind)]
        assert int(row["Request Count"]) >= 4, row  # 2 users x 5/s x 2 s, two kinds taking turns
        assert int(row["Failure Count"]) == 0, (tmp_path / "query" / "locust_failures.csv").read_text()
    queries = sum(int(stats[("QUERY", k)]["Request Count"]) for k in ("recent", "count"))
    assert queries <= 2 * 5 * 4  # paced, and stopped with the load (2 s plus start-up slack)
    phases = _phases(plan)
    assert phases["subscribe"]["end"] <= phases["load"]["start"] < phases["load"]["end"] <= phases["drain"]["start"]
    assert phases["load"]["end"] - phases["load"]["start"] >= 2.0  # the program's clock starts with the load


@pytest.mark.timeout(90)
def test_churn_records_released_subscriptions_and_sockets(tmp_path: Path, refserver: Any) -> None:
    writers = (WriterSpec(1, 1, (Step("insert", seconds=5.0, rate=10.0),)),)
    plan = _plan(refserver, tmp_path, "churn", writers, churn=ChurnSettings(6, 4, 1.0))
    run_dir = Path(plan.extra.run_dir)
    run_dir.mkdir(parents=True)
    monitor = start_monitor_process(refserver.pid, run_dir, interval=0.2)
    try:
        result = run_locust(plan, workers=0)
    finally:
        stop_monitor_process(monitor)
    _clean(result)
    released = result["target"]["released"]
    assert released["opened"] == 6 and released["closed"] == 4 and released["errors"] == []
    assert released["before"]["live"] == 7 and released["after"]["live"] == 3  # the listener's plus the churn's
    assert released["closed_still_live"] == 0
    before, after = released["before"], released["after"]
    assert before["sockets"] is not None and before["sockets"] - after["sockets"] == 4, released
    assert before["t"] <= before["sockets_t"] < released["churn_closed_at"] <= after["t"] <= after["sockets_t"]
    assert after["t"] - released["churn_closed_at"] >= 1.0
    phases = _phases(plan)
    assert phases["load"]["start"] <= released["churn_opened_at"] and after["t"] <= phases["load"]["end"]


@pytest.mark.timeout(90)
def test_churn_without_a_monitor_has_no_socket_counts(tmp_path: Path, refserver: Any) -> None:
    writers = (WriterSpec(1, 1, (Step("insert", count=5, rate=10.0),)),)
    plan = _plan(refserver, tmp_path, "churn_nomon", writers, churn=ChurnSettings(2, 2, 0.5))
    released = run_locust(plan, workers=0)["target"]["released"]
    assert released["before"]["live"] - released["after"]["live"] == 2
    assert released["before"]["sockets"] is None and released["after"]["sockets"] is None


@pytest.mark.timeout(90)
def test_churn_sees_subscriptions_a_server_keeps_after_close(tmp_path: Path) -> None:
    """With ``keep-closed`` the server never echoes a close, so each close waits about a second; the
    subscriptions left open must be kept alive meanwhile (this server drops clients silent for 2 s)."""
    with start_refserver(tmp_path / "leaky", "--fault", "keep-closed", "--heartbeat-timeout", "2") as srv:
        writers = (WriterSpec(1, 1, (Step("insert", count=5, rate=10.0),)),)
        plan = _plan(srv, tmp_path, "churn_leak", writers, churn=ChurnSettings(6, 3, 0.5))
        plan = replace(plan, target=replace(plan.target, options={**plan.target.options, "heartbeat_interval": 0.5}))
        released = run_locust(plan, workers=0)["target"]["released"]
    assert released["closed"] == 3 and released["closed_still_live"] == 3
    assert released["before"]["live"] == released["after"]["live"] == 7
    assert released["errors"] == []  # the three left open were kept alive through the slow closes


@pytest.mark.timeout(90)
def test_flush_user_follows_every_job_to_its_end(tmp_path: Path, refserver: Any) -> None:
    writers = (WriterSpec(1, 1, (Step("insert", seconds=3.0, rate=30.0),)),)
    plan = _plan(refserver, tmp_path, "flush", writers, flush=FlushSettings(0.5))
    result = run_locust(plan, workers=0)
    _clean(result)
    jobs = result["target"]["jobs"]
    assert len(jobs) >= 3 and set(jobs.values()) == {"completed"}, jobs
    assert result["target"]["flush"]["error"] is None
    stats = _stats(plan)
    flushes, ended = stats[("FLUSH", "flush")], stats[("FLUSH", "job")]
    assert int(flushes["Request Count"]) == len(jobs) + result["target"]["flush"]["skipped"]
    assert int(ended["Request Count"]) == len(jobs) and int(ended["Failure Count"]) == 0


@pytest.mark.timeout(90)
def test_ramp_writes_one_phase_per_step(tmp_path: Path, refserver: Any) -> None:
    writers = (
        WriterSpec(1, 1, (Step("insert", seconds=3.0, rate=20.0),)),
        WriterSpec(2, 2, (Step("pause", seconds=1.5), Step("insert", seconds=1.5, rate=20.0))),
    )
    # an SLO no step can miss: what this test checks is the steps' record, not how this machine performs
    loose = StepSlo(notify_p95_ms=1e6, write_p95_ms=1e6, min_rate_fraction=0.0, generator_lag_ms=1e6)
    settings = RampSettings(2, 1.5, 1, 2.0, 20.0, past_capacity_steps=0, settle_seconds=0.5, slo=loose)
    plan = _plan(refserver, tmp_path, "ramp", writers, ramp=settings)
    result = run_locust(plan, workers=0)
    _clean(result)
    phases = _phases(plan)
    load, one, two, ramp = phases["load"], phases["step-1"], phases["step-2"], phases["ramp"]
    assert (one["users"], one["rate"], two["users"], two["rate"]) == (1, 20.0, 2, 40.0)
    assert one["start"] == load["start"] and one["end"] == two["start"] and two["end"] <= load["end"]
    assert one["end"] - one["start"] == pytest.approx(1.5)
    # each step measured after its settle time from Locust's stats; the ramp stops after its two steps
    assert one["measured_from"] - one["start"] >= 0.5 and one["writes"] > 0 and one["state"] == "held"
    assert ramp["stop"] == "max-steps" and ramp["steps"] == 2
    ok = result["writes"]["writers"]
    # writer 2 paused half the load: 20/s for 1.5 s allows at most 31 (+1), and it wrote less than writer 1
    assert 1 <= ok["2"]["ok"]["insert"] <= 32 and ok["2"]["ok"]["insert"] < ok["1"]["ok"]["insert"]


@pytest.mark.timeout(120)
def test_extra_users_work_across_workers(tmp_path: Path, refserver: Any) -> None:
    writers = (WriterSpec(1, 1, (Step("insert", seconds=3.0, rate=20.0),)),)
    extra = {"queriers": QuerierSettings(2, 4), "churn": ChurnSettings(4, 2, 0.5), "flush": FlushSettings(1.0)}
    plan = _plan(refserver, tmp_path, "distributed", writers, **extra)
    result = run_locust(plan, workers=2)
    _clean(result)
    agg = result["delivery"]["aggregation"]
    assert agg["users_expected"] == agg["users_received"] == 4  # listener, writer, churn, flush
    assert agg["summaries_expected"] == agg["summaries_received"]
    released = result["target"]["released"]
    assert released["closed"] == 2 and released["before"]["live"] - released["after"]["live"] == 2
    assert result["target"]["jobs"] and set(result["target"]["jobs"].values()) == {"completed"}
    stats = _stats(plan)
    assert int(stats[("QUERY", "recent")]["Request Count"]) > 0
    assert int(stats[("CHURN", "open-close")]["Failure Count"]) == 0
