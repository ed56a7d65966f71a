"""The runner's nemesis hook without Locust: the plan is routed through the proxy, the schedule waits for
the end of ``subscribe``, and every window lands in nemesis.jsonl with what it did."""

from __future__ import annotations

import socket
import time
from dataclasses import replace
from pathlib import Path

import orjson

from harness.nemesis import parse_schedule
from harness.orchestration.nemesis import NemesisRun
from harness.plan import Plan, TargetSpec
from harness.runfolder import NEMESIS, PHASES, append_jsonl
from harness.scenarios.catalogue import build_plan, resolve
from reports.judge import RULES


def _plan(tmp_path: Path, port: int) -> Plan:
    scenario = resolve(["live.staggered-outages"], RULES)[0]
    target = TargetSpec("kalamdb", f"http://127.0.0.1:{port}", "root", "pw")
    return build_plan(scenario, quick=True, target=target, run_id="r1", run_dir=str(tmp_path))


def _lines(tmp_path: Path) -> list[dict]:
    return [orjson.loads(line) for line in (tmp_path / NEMESIS).read_bytes().splitlines()]


def test_listeners_and_writers_are_routed_and_windows_recorded(tmp_path: Path) -> None:
    upstream = socket.create_server(("127.0.0.1", 0))
    port = upstream.getsockname()[1]
    plan = _plan(tmp_path, port)
    schedule = parse_schedule(
        "t",
        [
            {"at": 0, "fault": "latency", "params": {"ms": 5}},  # opens at once, before any subscribe
            {"at": 0.2, "fault": "outage", "seconds": 0.3, "listeners": ["L2"], "writers": True},
        ],
        ("L1", "L2", "L3"),
    )
    notes: list[str] = []
    hook = NemesisRun(schedule, plan, tmp_path, notes.append)
    routed = hook.start(plan)
    try:
        ports = {li.listener_id: int(li.url.rsplit(":", 1)[1]) for li in routed.listeners}
        assert len(set(ports.values())) == 3 and port not in ports.values()
        assert routed.target.url != plan.target.url  # a fault touches the writers: they are routed too
        assert replace(routed, listeners=plan.listeners, target=plan.target) == plan  # nothing else changed
        time.sleep(0.4)
        assert [r["kind"] for r in _lines(tmp_path)] == ["begin"]  # the outage waits for the end of subscribe
        append_jsonl(tmp_path / PHASES, {"name": "subscribe", "start": time.time() - 1, "end": time.time()})
        deadline = time.monotonic() + 10
        while len(_lines(tmp_path)) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        hook.stop()
        upstream.close()
    lines = _lines(tmp_path)
    assert [(r["kind"], r["fault"]) for r in lines[:-1]] == [
        ("begin", "latency"), ("begin", "outage"), ("window", "outage"), ("window", "latency"),
    ]  # fmt: skip
    outage = lines[2]
    assert outage["routes"] == ["L2", "writers"] and outage["disruptive"] is True
    assert 0.25 <= outage["end"] - outage["start"]
    latency = lines[3]
    assert latency["until_end"] is True and latency["delays"] is True and latency["min_delay_ms"]["s2c"] == 5.0
    summary = lines[-1]
    assert summary["kind"] == "summary" and set(summary["routes"]) == {"L1", "L2", "L3", "writers"}
    assert any("outage on L2, writers" in n for n in notes)


def test_a_run_whose_listeners_never_subscribe_writes_only_the_summary(tmp_path: Path) -> None:
    plan = _plan(tmp_path, 9)
    schedule = parse_schedule("t", [{"at": 1, "fault": "outage", "seconds": 1}])
    hook = NemesisRun(schedule, plan, tmp_path, lambda _m: None)
    routed = hook.start(plan)
    assert routed.target == plan.target  # no fault touches the writers: they go straight to the target
    hook.stop()
    assert [r["kind"] for r in _lines(tmp_path)] == ["summary"]
