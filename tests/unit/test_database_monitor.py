"""The target's database as a second monitored series: the process-tree sampler on a real process tree, and
how the judge and the report treat ``database.jsonl`` (shown, not judged; the criteria name the server process).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

from reports.judge import judge_run
from tests.support.synthetic import T0, Synthetic, write_run
from tests.unit.test_report import parse_report

MIB = 1 << 20
# A parent that starts a child burning 0.3 s of CPU, says so, waits for (reaps) it, says so, then idles.
TREE = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time\\nwhile time.process_time() < 0.3: pass"])
print("started", flush=True)
child.wait()
print("reaped", flush=True)
sys.stdin.read()
"""


def test_tree_sampler_sums_the_tree_and_keeps_the_cpu_of_a_child_that_ended_between_samples() -> None:
    from monitors.tree import ProcessTreeSampler

    root = subprocess.Popen(
        [sys.executable, "-c", TREE], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )  # fmt: skip
    try:
        assert root.stdout is not None and root.stdout.readline().strip() == "started"
        sampler = ProcessTreeSampler(psutil.Process(root.pid))
        began = time.monotonic()
        first = sampler.sample()
        assert first["alive"] and first["processes"] == 2 and first["cpu_core_pct"] is None
        assert first["name"] == psutil.Process(root.pid).name() and first["pid"] == root.pid
        assert 0 < first["pss"] <= first["rss"]  # each shared page divided among its sharers, not counted in each
        assert root.stdout.readline().strip() == "reaped"
        second = sampler.sample()
        elapsed = time.monotonic() - began
        assert second["alive"] and second["processes"] == 1
        # the child's 0.3 s are counted though it is gone: the parent's reaped-children times hold them
        assert second["cpu_core_pct"] / 100 * elapsed >= 0.28, (second, elapsed)
        assert second["cpu_machine_pct"] == pytest.approx(second["cpu_core_pct"] / (psutil.cpu_count() or 1))
    finally:
        root.kill()
        root.wait()
    dead = sampler.sample()
    assert dead["alive"] is False and dead["rss"] is None and sampler.gone


def _with_database(run_dir: Path, rows: list[dict[str, Any]] | None) -> None:
    """Make a synthetic run a Parse-like one: Node's monitor rows, the postmaster's pid and (given) its rows."""
    record = orjson.loads((run_dir / "run.json").read_bytes())
    record["target"].update({"name": "parse", "database_pid": 777})
    (run_dir / "run.json").write_bytes(orjson.dumps(record))
    monitor = [orjson.loads(line) for line in (run_dir / "monitor.jsonl").read_bytes().splitlines()]
    (run_dir / "monitor.jsonl").write_bytes(b"".join(orjson.dumps({**r, "name": "node"}) + b"\n" for r in monitor))
    if rows is not None:
        (run_dir / "database.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))


@pytest.mark.timeout(60)
def test_the_report_draws_the_database_and_the_criteria_judge_the_server_process(tmp_path: Path) -> None:
    rows = [
        {"t": T0 + t, "name": "postgres", "pid": 777, "alive": True, "processes": 9, "rss": 900 * MIB,
         "pss": 60 * MIB, "cpu_core_pct": None if t == 0 else 15.0, "cpu_machine_pct": None if t == 0 else 7.5,
         "fds": 90, "conns": {"ESTABLISHED": 8}}
        for t in range(0, 120)
    ]  # fmt: skip
    run_dir = write_run(tmp_path / "db", Synthetic(criteria=["SC-056", "SC-060", "CPU-1000", "MEM-BOUND"]))
    _with_database(run_dir, rows)
    judge_run(run_dir, quiet=True)
    _, parsed = parse_report(run_dir)
    assert parsed.figures["fig-database"] and "fig-database" not in parsed.notes  # drawn, no "no data" note
    verdict = orjson.loads((run_dir / "verdict.json").read_bytes())
    (scenario,) = verdict["scenarios"]
    by_id = {c["id"]: c for c in scenario["criteria"]}
    for cid in ("SC-056", "SC-060", "CPU-1000", "MEM-BOUND"):
        assert "server process node pid 4242" in by_id[cid]["evidence"], by_id[cid]
        assert "postgres" not in by_id[cid]["evidence"]
    assert by_id["MEM-BOUND"]["value"] < 900  # Node's RSS, not the database's 900 MiB
    assert "database.jsonl" not in scenario["inputs"]["problems"]


@pytest.mark.timeout(60)
def test_a_missing_database_series_is_named_only_when_the_run_had_a_database(tmp_path: Path) -> None:
    parse_run = write_run(tmp_path / "parse", Synthetic(criteria=["SC-060"]))
    _with_database(parse_run, None)
    judge_run(parse_run, quiet=True)
    _, parsed = parse_report(parse_run)
    problems = orjson.loads((parse_run / "verdict.json").read_bytes())["scenarios"][0]["inputs"]["problems"]
    assert problems["database.jsonl"] == "missing"
    assert "no database samples (database.jsonl: missing)" in parsed.notes["fig-database"]

    ref_run = write_run(tmp_path / "ref", Synthetic(criteria=["SC-060"]))
    judge_run(ref_run, quiet=True)
    _, parsed = parse_report(ref_run)
    problems = orjson.loads((ref_run / "verdict.json").read_bytes())["scenarios"][0]["inputs"]["problems"]
    assert "database.jsonl" not in problems
    assert "the target runs no database the harness started" in parsed.notes["fig-database"]
