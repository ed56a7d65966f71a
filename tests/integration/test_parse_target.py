"""The Parse target for real: installed from the npm registry (once, then from the cache), started on a
private PostgreSQL cluster, driven through the target interface and through one live scenario.

Needs ``node`` (>=20.19), ``npm`` and the PostgreSQL server (``scripts/install-parse-deps.sh``).
Without them the tests skip, except under ``CI=true``, where a missing prerequisite fails them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.delivery.identity import COLUMNS, insert_row, row_id, update_changes
from harness.orchestration import parse_process
from harness.orchestration.parse_process import ParseServer, start_parse
from harness.orchestration.runner import Runner, RunOptions
from harness.scenarios.catalogue import resolve
from harness.targets import create_target
from harness.targets.base import Change, Eq, Listener, Op, Outcome, Schema
from reports.judge import RULES
from tests.support.parse import INSTALL_SECONDS, require_parse
from tests.support.verdicts import small_run_criteria


@pytest.fixture(scope="module")
def parse_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ParseServer]:
    """One Parse Server + PostgreSQL for the module's driver tests (installing first when not cached)."""
    require_parse()
    server = start_parse(tmp_path_factory.mktemp("parse"), progress=lambda _msg: None)
    try:
        yield server
    finally:
        server.stop()


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.timeout(INSTALL_SECONDS + 60)
def test_target_up_serves_health_and_target_down_stops_it_by_pid(tmp_path: Path) -> None:
    require_parse()
    folder = tmp_path / "target"
    cli = [sys.executable, "-m", "harness.cli", "target"]
    up = subprocess.run([*cli, "up", "parse", "--dir", str(folder)], capture_output=True, text=True, timeout=660)
    assert up.returncode == 0, up.stderr
    state = json.loads((folder / parse_process.STATE_FILE).read_text())
    try:
        req = urllib.request.Request(f"{state['url']}/health", headers={"X-Parse-Application-Id": state["app_id"]})
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert json.loads(resp.read()) == {"status": "ok"}
        assert _alive(state["node_pid"]) and _alive(state["postgres_pid"])
        again = subprocess.run([*cli, "up", "parse", "--dir", str(folder)], capture_output=True, text=True, timeout=60)
        assert again.returncode == 2 and "already up" in again.stderr and again.stderr.count("\n") == 1
        out = tmp_path / "runs"
        run = [sys.executable, "-m", "harness.cli", "run", "live.inserts", "--target", "parse", "--quick"]
        done = subprocess.run(
            [*run, "--target-dir", str(folder), "--out", str(out)], capture_output=True, text=True, timeout=180
        )
        (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
        verdict = json.loads((run_dir / "verdict.json").read_text())
        by_id = {c["id"]: c["verdict"] for s in verdict["scenarios"] for c in s["criteria"]}
        assert by_id["SC-051"] == "pass", done.stdout[-2000:]
        assert json.loads((run_dir / "run.json").read_text())["target"]["url"] == state["url"]
    finally:
        down = subprocess.run([*cli, "down", "--dir", str(folder)], capture_output=True, text=True, timeout=60)
    assert down.returncode == 0, down.stderr
    deadline = time.monotonic() + 10
    while (_alive(state["node_pid"]) or _alive(state["postgres_pid"])) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(state["node_pid"]) and not _alive(state["postgres_pid"])
    assert not Path(state["postgres_dir"]).exists() and (folder / "postgres.log").is_file()
    gone = subprocess.run([*cli, "down", "--dir", str(folder)], capture_output=True, text=True, timeout=60)
    assert gone.returncode == 2 and "no target is up" in gone.stderr


@pytest.mark.timeout(INSTALL_SECONDS + 60)  # the module's server may be the one that installs
def test_writes_single_and_batched_arrive_as_live_events_with_old_values(parse_server: ParseServer) -> None:
    target = create_target(parse_server.spec())
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

    def drain(listener: Listener) -> list[Change]:
        out = []
        while (change := listener.recv(2.0)) is not None:
            out.append(change)
        return out

    got = drain(filtered)
    assert [c.op for c in got] == [Op.INSERT, Op.UPDATE, Op.DELETE, Op.INSERT, Op.INSERT, Op.INSERT]
    assert got[1].row["version"] == 2 and got[1].old_row["version"] == 1 and got[1].row["id"] == rid
    assert got[2].deleted is True and got[2].row is None and got[2].old_row["id"] == rid
    assert all(c.server_seq is None for c in got)
    assert len(drain(everything)) == 7  # the conversation 2 insert too
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
    assert not _alive(record["target"]["pid"])
    assert not (run_dir / "pg").exists() and (run_dir / "postgres.log").is_file()
