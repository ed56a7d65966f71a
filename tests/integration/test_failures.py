"""Target failures end in verdicts: stopped, killed, restarted, connections reset, each mid-run.

Each run must end within a bounded wall time in a verdict that names the failure and when it
happened, with the run folder's artifacts up to then kept and no process of the run left behind.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from harness.orchestration.runner import Runner, RunOptions
from harness.orchestration.server import start_local_server
from harness.scenarios.catalogue import resolve
from reports.judge import RULES
from tests.support.refserver import ROOT_PASSWORD

KEPT = ("run.json", "plan.json", "monitor.jsonl", "locust_stats.csv", "server.log", "verdict.json", "report.html")


def _when_loading(out: Path, action: Callable[[dict], None], delay: float = 1.0) -> threading.Thread:
    """Run ``action(run.json)`` ``delay`` s after the run's listeners are ready (its ``subscribe`` phase ended)."""

    def wait_then_act() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            phases = list(out.glob("*/phases.jsonl"))
            if phases and b'"subscribe"' in phases[0].read_bytes():
                time.sleep(delay)
                action(json.loads(next(out.glob("*/run.json")).read_text()))
                return
            time.sleep(0.05)

    thread = threading.Thread(target=wait_then_act, daemon=True)
    thread.start()
    return thread


def _run(out: Path, scenario: str, **options: object) -> tuple[int, Path, dict, float]:
    (chosen,) = resolve([scenario], RULES)
    runner = Runner(RunOptions(quick=True, out_dir=out, progress=lambda _m: None, **options))  # type: ignore[arg-type]
    started = time.monotonic()
    code = runner.run(chosen)
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    return code, run_dir, json.loads((run_dir / "verdict.json").read_text()), time.monotonic() - started


def _run_row(verdict: dict) -> dict:
    (scenario,) = verdict["scenarios"]
    return next(c for c in scenario["criteria"] if c["id"] == "RUN")


def _no_children_left() -> None:
    """Every process this test's runs started has ended (the monitor, Locust, the server)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = [p for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE]
        if not left:
            return
        time.sleep(0.2)
    raise AssertionError(f"processes left behind: {[' '.join(p.cmdline()[:6]) for p in left]}")


@pytest.mark.timeout(120)
def test_a_stopped_server_ends_the_run_as_unresponsive(tmp_path: Path) -> None:
    """SIGSTOP past the limit: the run is cut, RUN fails naming the stopped process and when."""
    out = tmp_path / "runs"
    _when_loading(out, lambda run: os.kill(run["target"]["pid"], signal.SIGSTOP))
    code, run_dir, verdict, seconds = _run(out, "stress.writers-listeners", unresponsive_limit=4.0)
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "target_unresponsive" and "stopped for" in run["error"]
    assert [i["kind"] for i in run["incidents"]][:1] == ["target_stopped"]
    row = _run_row(verdict)
    assert row["verdict"] == "fail" and "target_stopped" in row["evidence"] and "+" in row["evidence"]
    assert code == 1 and verdict["verdict"] == "fail"
    assert all((run_dir / name).exists() for name in KEPT)
    assert seconds < 75
    _no_children_left()


@pytest.mark.timeout(120)
def test_a_killed_server_ends_the_run_as_crashed(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    _when_loading(out, lambda run: os.kill(run["target"]["pid"], signal.SIGKILL))
    code, run_dir, verdict, seconds = _run(out, "stress.writers-listeners")
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "target_crashed" and "exited with code -9" in run["error"]
    assert "target_exited" in _run_row(verdict)["evidence"]
    assert code == 1
    assert all((run_dir / name).exists() for name in KEPT)
    assert seconds < 75
    _no_children_left()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(150)
def test_a_server_restarted_on_its_port_and_data_fails_the_run_naming_the_restart(tmp_path: Path) -> None:
    port = _free_port()
    server_dir = tmp_path / "server"
    servers = [start_local_server(server_dir, ["--port", str(port)], root_password=ROOT_PASSWORD)]

    def restart(_run: dict) -> None:
        servers[0].stop()
        servers.append(start_local_server(server_dir, ["--port", str(port)], root_password=ROOT_PASSWORD))

    out = tmp_path / "runs"
    _when_loading(out, restart, delay=2.0)
    try:
        url = f"http://127.0.0.1:{port}"
        code, run_dir, verdict, seconds = _run(
            out, "stress.writers-listeners", target_url=url, password=ROOT_PASSWORD
        )  # fmt: skip
    finally:
        for server in servers:
            server.stop()
    assert len(servers) == 2, "the restart did not happen during the run"
    run = json.loads((run_dir / "run.json").read_text())
    assert "target_restarted" in [i["kind"] for i in run["incidents"]]
    row = _run_row(verdict)
    assert row["verdict"] == "fail" and "target_restarted" in row["evidence"]
    assert code == 1 and seconds < 120
    _no_children_left()


@pytest.mark.timeout(120)
@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss -K (iproute2) to reset sockets")
def test_reset_connections_are_named_in_the_verdict(tmp_path: Path) -> None:
    """Every TCP connection of the server reset mid-run: the listeners' unexpected disconnects are named."""
    out = tmp_path / "runs"
    resets: list[int] = []

    def reset(run: dict) -> None:
        port = run["target"]["url"].rsplit(":", 1)[1]
        done = subprocess.run(["ss", "-K", "sport", "=", f":{port}"], capture_output=True, timeout=10)
        resets.append(done.returncode)

    _when_loading(out, reset)
    code, run_dir, verdict, seconds = _run(out, "stress.writers-listeners")
    if resets != [0]:
        pytest.skip("ss -K cannot reset sockets here (needs CAP_NET_ADMIN and INET_DIAG_DESTROY)")
    (scenario,) = verdict["scenarios"]
    uptime = next(c for c in scenario["criteria"] if c["id"] == "SC-057")
    assert uptime["verdict"] == "fail" and "unexpected disconnect" in uptime["evidence"]
    assert code == 1 and seconds < 90
    _no_children_left()


def _workers() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if "--worker" in p.cmdline()]


@pytest.mark.timeout(150)
def test_a_lost_worker_makes_the_run_inconclusive_and_keeps_the_others_data(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    killed: list[int] = []

    def kill_one_worker(_run: dict) -> None:
        victim = _workers()[0]
        killed.append(victim.pid)
        victim.kill()

    _when_loading(out, kill_one_worker)
    code, run_dir, verdict, seconds = _run(out, "stress.writers-listeners", workers=2)
    assert len(killed) == 1
    run = json.loads((run_dir / "run.json").read_text())
    lost = [i for i in run["incidents"] if i["kind"] == "worker_lost"]
    assert len(lost) == 1 and str(killed[0]) in lost[0]["detail"]
    row = _run_row(verdict)
    assert row["verdict"] == "inconclusive" and f"worker pid {killed[0]}" in row["evidence"]
    (scenario,) = verdict["scenarios"]
    complete = next(c for c in scenario["criteria"] if c["id"] == "SC-051")
    assert complete["verdict"] == "inconclusive" and "went missing" in complete["evidence"]  # the master noticed
    assert verdict["verdict"] != "pass" and code != 0  # (latency, judged on the other worker's data, may fail)
    delivery = json.loads((run_dir / "delivery.json").read_text())
    aggregation = delivery["aggregation"]
    assert aggregation["summaries_received"] == 1 and len(aggregation["lost_workers"]) == 1
    assert delivery["listeners"]  # the surviving worker's listeners are judged
    assert seconds < 120
    _no_children_left()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_is_marked_judged_and_leaves_no_process(tmp_path: Path, sig: signal.Signals) -> None:
    import sys

    out = tmp_path / "runs"
    cmd = [sys.executable, "-m", "harness.cli", "run", "stress.writers-listeners", "--quick", "--out", str(out)]
    runner = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    seen: set[psutil.Process] = set()
    try:
        deadline = time.monotonic() + 60
        while not any(b'"subscribe"' in p.read_bytes() for p in out.glob("*/phases.jsonl")):
            assert time.monotonic() < deadline and runner.poll() is None, "the run did not get to its load"
            time.sleep(0.1)
        seen = set(psutil.Process(runner.pid).children(recursive=True))
        assert len(seen) >= 3  # server, monitor, Locust
        started = time.monotonic()
        runner.send_signal(sig)
        stdout, stderr = runner.communicate(timeout=60)
        assert time.monotonic() - started < 45
    finally:
        if runner.poll() is None:
            os.killpg(runner.pid, signal.SIGKILL)
            runner.wait()
    assert runner.returncode == 130, stderr.decode()[-1000:]
    assert b"Traceback" not in stderr and b"interrupted" in stderr
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "interrupted" and sig.name in run["error"]
    assert any(i["kind"] == "interrupted" for i in run["incidents"]) and run["ended_at"] is not None
    verdict = json.loads((run_dir / "verdict.json").read_text())
    assert _run_row(verdict)["verdict"] == "inconclusive" and verdict["verdict"] != "pass"
    assert (run_dir / "report.html").exists() and (run_dir / "monitor.jsonl").exists()
    left = [p for p in seen if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not left, f"left behind: {[' '.join(p.cmdline()[:6]) for p in left]}"
