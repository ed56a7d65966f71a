"""The Parse target for real: installed from the npm registry (once, then from the cache), started on a
private PostgreSQL cluster, driven through the target interface and through one live scenario.

Two Parse + PostgreSQL pairs start in all: the session's shared one (``parse_up``: ``lqharness target up``
and ``down``, used by the driver test here and by test_parse_contention.py), and the one ``lqharness run
--target parse`` starts, monitors and stops by itself, which is what the live scenario test proves.

Needs ``node`` (>=20.19), ``npm`` and the PostgreSQL server (``scripts/install-parse-deps.sh``).
Without them the tests skip, except under ``CI=true``, where a missing prerequisite fails them.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from harness.delivery.identity import COLUMNS, insert_row, row_id, update_changes
from harness.orchestration import parse_process
from harness.orchestration.parse_process import recorded_spec
from harness.orchestration.runner import Runner, RunOptions
from harness.scenarios.catalogue import resolve
from harness.targets import create_target
from harness.targets.base import Change, Eq, Listener, Op, Outcome, Schema
from reports.judge import RULES
from tests.support.parse import INSTALL_SECONDS, TARGET_CLI, alive, require_parse
from tests.support.verdicts import small_run_criteria


@pytest.mark.timeout(INSTALL_SECONDS + 60)  # the session's server may be the one that installs
def test_target_up_serves_health_with_both_pids_and_refuses_a_second_up(parse_up: Path) -> None:
    state = json.loads((parse_up / parse_process.STATE_FILE).read_text())
    req = urllib.request.Request(f"{state['url']}/health", headers={"X-Parse-Application-Id": state["app_id"]})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert json.loads(resp.read()) == {"status": "ok"}
    assert alive(state["node_pid"]) and alive(state["postgres_pid"])
    again = subprocess.run([*TARGET_CLI, "up", "parse", "--dir", str(parse_up)], capture_output=True, text=True,
                           timeout=60)  # fmt: skip
    assert again.returncode == 2 and "already up" in again.stderr and again.stderr.count("\n") == 1
    # stopping it by pid (lqharness target down) is checked when the session's last Parse test is done


@pytest.mark.timeout(INSTALL_SECONDS + 60)
def test_writes_single_and_batched_arrive_as_live_events_with_old_values(parse_up: Path) -> None:
    target = create_target(recorded_spec(parse_up))
    schema = Schema("lqh", f"itest_{os.getpid()}", COLUMNS)
    admin = target.admin()
    admin.setup(schema)
    admin.setup(schema)  # idempotent
    filtered, everything = target.listener(schema), target.listener(schema)
    filtered.subscribe(Eq("conversation_id", 1))
    everything.subscribe(None)
    writer = target.writer(schema)
    now_us = time.time_ns() // 1000
    assert writer.insert(insert_row(1, 1, 1, 1, now_us, 40)).outcome is Outcome.OK
    assert writer.insert(insert_row(1, 2, 2, 2, now_us, 40)).outcome is Outcome.OK
    rid = row_id(1, 1)
    assert writer.update(rid, update_changes(rid, 2, 3, now_us, 40)).outcome is Outcome.OK
    assert writer.delete(rid).outcome is Outcome.OK
    batch = writer.insert_batch([insert_row(1, 1, n, n + 1, now_us, 40) for n in (3, 4, 5)])
    assert [r.outcome for r in batch] == [Outcome.OK] * 3
    (dup,) = writer.insert_batch([insert_row(1, 1, 3, 9, now_us, 40)])
    assert dup.outcome is Outcome.FAILED and "137" in (dup.error or "")
    missing = writer.update(row_id(9, 9), {"version": 2})
    assert missing.outcome is Outcome.FAILED and "101" in (missing.error or "")

    def drain(listener: Listener, count: int) -> list[Change]:
        """The ``count`` events expected, then a short wait that must bring nothing more."""
        out = [change for _ in range(count) if (change := listener.recv(10.0)) is not None]
        extra = listener.recv(0.5)
        assert extra is None, extra
        return out

    got = drain(filtered, 6)
    assert [c.op for c in got] == [Op.INSERT, Op.UPDATE, Op.DELETE, Op.INSERT, Op.INSERT, Op.INSERT]
    assert got[1].row["version"] == 2 and got[1].old_row["version"] == 1 and got[1].row["id"] == rid
    assert got[2].deleted is True and got[2].row is None and got[2].old_row["id"] == rid
    assert all(c.server_seq is None for c in got)
    assert len(drain(everything, 7)) == 7  # the conversation 2 insert too
    assert admin.count(schema) == 4
    assert [r["id"] for r in admin.recent(schema, Eq("conversation_id", 1), 2)] == [row_id(1, 5), row_id(1, 4)]
    for session in (filtered, everything, writer, admin):
        session.close()


@pytest.mark.timeout(INSTALL_SECONDS + 120)
def test_live_ordering_runs_to_a_verdict_on_parse_with_the_counter_criterion_not_applicable(tmp_path: Path) -> None:
    require_parse()
    out = tmp_path / "runs"
    (scenario,) = resolve(["live.ordering"], RULES)
    criteria = small_run_criteria(tmp_path)  # SC-057 on 4 notifications: plumbing, not the specification's size
    options = RunOptions(target="parse", quick=True, out_dir=out, progress=lambda _msg: None, criteria=criteria)
    Runner(options).run(scenario)
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    verdict = json.loads((run_dir / "verdict.json").read_text())
    by_id = {c["id"]: c for s in verdict["scenarios"] for c in s["criteria"]}
    for criterion in ("SC-051", "SC-052", "SC-053", "SC-057"):
        assert by_id[criterion]["verdict"] == "pass", by_id[criterion]
    assert by_id["SC-055"]["verdict"] == "n/a" and "no changes counter" in by_id["SC-055"]["evidence"]
    delivery = json.loads((run_dir / "delivery.json").read_text())
    assert delivery["totals"]["delivered"] == scenario.expected
    record = json.loads((run_dir / "run.json").read_text())
    assert record["target"]["name"] == "parse" and record["target"]["features"] == []
    assert not alive(record["target"]["pid"]) and not alive(record["target"]["database_pid"])
    assert not (run_dir / "pg").exists() and (run_dir / "postgres.log").is_file()
    # the monitor sampled Node (monitor.jsonl, the process the health criteria judge) and, as a second
    # series, PostgreSQL's postmaster with its backends (database.jsonl)
    node, database = ([json.loads(line) for line in (run_dir / name).read_text().splitlines()]
                      for name in ("monitor.jsonl", "database.jsonl"))  # fmt: skip
    assert node and all(r["pid"] == record["target"]["pid"] and r["name"] == "node" for r in node)
    assert database and all(r["pid"] == record["target"]["database_pid"] for r in database)
    live = [r for r in database if r["alive"]]
    assert live and all(r["name"] == "postgres" and r["processes"] >= 2 and r["pss"] > 0 for r in live)
    assert max(r["conns"].get("ESTABLISHED", 0) for r in live) >= 1  # Parse's pool on the postmaster's port
    assert "database.jsonl" not in verdict["scenarios"][0]["inputs"]["problems"]
