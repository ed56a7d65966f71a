"""A master and two workers started as three separate commands on loopback (the workers given only the master's
address) deliver the same totals as an in-process run of the same scenario; each worker's clock offset is in
run.json. About 30 s."""

from __future__ import annotations

from pathlib import Path

from tests.support.plain_locust import (
    delivery_totals,
    free_port,
    locust_cmd,
    locust_env,
    only_run,
    read_json,
    run,
    run_together,
)  # fmt: skip

SCENARIO = "live.multi-listener"


def test_master_and_two_workers_match_an_in_process_run(tmp_path: Path) -> None:
    local = tmp_path / "local"
    local.mkdir()
    result = run(["--headless", "-t", "60s", "--scenario", SCENARIO, "--runs-dir", str(local / "runs"),
                  "--only-summary"], local)  # fmt: skip
    in_process = delivery_totals(only_run(local / "runs"))

    dist = tmp_path / "dist"
    dist.mkdir()
    port = free_port()
    master = locust_cmd(
        "--headless", "-t", "60s", "--scenario", SCENARIO, "--runs-dir", str(dist / "runs"), "--only-summary",
        "--master", "--expect-workers", "2", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
    )  # fmt: skip
    worker = locust_cmd("--worker", "--master-host", "127.0.0.1", "--master-port", str(port))
    codes = run_together([master, worker, worker], locust_env(), dist / "locust.out", 120, cwd=dist)
    out = (dist / "locust.out").read_text(errors="replace")
    run_dir = only_run(dist / "runs")
    assert delivery_totals(run_dir) == in_process, out[-3000:] + result.stderr[-2000:]
    assert in_process["expected"] == in_process["delivered"] == 60 and in_process["lost"] == 0
    verdict = read_json(run_dir / "verdict.json")["verdict"]
    assert codes[0] == {"pass": 0, "fail": 1}.get(verdict, 2), out[-3000:]
    record = read_json(run_dir / "run.json")
    assert record["workers"] == 2 and len(record["clocks"]) == 2
    assert read_json(only_run(local / "runs") / "run.json")["clocks"] == {}  # in-process: no worker, no offset
