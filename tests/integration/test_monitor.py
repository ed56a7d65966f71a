"""The monitor against real processes: a child that grows memory and serves loopback TCP."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

from harness.plan import TargetSpec
from monitors.generator import GeneratorSampler
from monitors.jsonl import JsonlWriter
from monitors.launch import start_monitor_process, stop_monitor_process
from monitors.loop import StopReason, run_monitor
from monitors.sampler import ProcessSampler
from monitors.stats import StatsPoller

# Listens on a loopback port (closing a connection itself when the client sends "q"),
# grows by 10 MB every 0.2 s eight times, then waits for stdin to close.
SERVER = """
import socket, sys, threading, time
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(16)
print(srv.getsockname()[1], flush=True)
def serve(conn):
    if conn.recv(1) in (b"q", b""):
        conn.close()
def accept():
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
threading.Thread(target=accept, daemon=True).start()
hold = []
for _ in range(8):
    hold.append(b"\\x01" * (10 << 20))
    time.sleep(0.2)
sys.stdin.read()
"""

SLEEPER = "import time; time.sleep(30)"


class Server:
    """A running SERVER child with two open client connections and one server-closed one."""

    def __init__(self, *extra_args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, *extra_args], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.port = int(self.proc.stdout.readline())
        self.clients = [socket.create_connection(("127.0.0.1", self.port), timeout=5) for _ in range(2)]
        closed = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        closed.sendall(b"q")
        assert closed.recv(1) == b""  # the server closed first: its side goes to TIME_WAIT
        closed.close()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    yield srv
    srv.stop()


def monitor(*args: str, timeout: float = 15) -> subprocess.CompletedProcess[str]:
    """Run ``lqharness monitor`` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", "monitor", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


@pytest.mark.timeout(30)
def test_samples_memory_growth_threads_fds_and_connections_by_state(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "monitor.jsonl"
    result = monitor("--pid", str(server.pid), "--interval", "0.2", "--duration", "1.4", "--uss", "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = read_jsonl(out)
    assert 2 <= len(rows) <= 8  # a drift-free 0.2 s schedule over 1.4 s has at most 8 ticks
    assert all(r["alive"] and r["pid"] == server.pid for r in rows)
    assert rows[-1]["rss"] - rows[0]["rss"] >= 30 << 20
    assert all(r["uss"] is not None and 0 < r["uss"] <= r["rss"] for r in rows)
    assert rows[0]["cpu_core_pct"] is None
    assert all(r["cpu_core_pct"] >= 0 and r["cpu_machine_pct"] <= r["cpu_core_pct"] for r in rows[1:])
    assert all(r["threads"] >= 4 and r["fds"] >= 4 for r in rows)  # main, acceptor, two connection threads
    for row in rows:
        assert row["conns"]["ESTABLISHED"] == 2  # server side only: the clients' sockets are not counted
        assert row["conns"]["TIME_WAIT"] >= 1
        assert "LISTEN" not in row["conns"]
    gaps = [b["t"] - a["t"] for a, b in zip(rows, rows[1:], strict=False)]
    assert all(g > 0.1 for g in gaps), gaps  # no catch-up burst
    assert {r["stats"] for r in rows} == {None} and {r["live_count"] for r in rows} == {None}
    assert all(isinstance(r["io_read_bytes"], int) for r in rows)


@pytest.mark.timeout(30)
def test_finds_the_server_by_port(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "monitor.jsonl"
    result = monitor("--port", str(server.port), "--interval", "0.2", "--duration", "0.3", "--out", str(out))
    assert result.returncode == 0, result.stderr
    rows = read_jsonl(out)
    assert rows and all(r["pid"] == server.pid and r["conns"]["ESTABLISHED"] == 2 for r in rows)


@pytest.mark.timeout(30)
def test_finds_the_server_by_name_and_refuses_ambiguous_names(tmp_path: Path) -> None:
    token = f"lqh-{uuid.uuid4().hex}"
    first = Server(token)
    try:
        out = tmp_path / "monitor.jsonl"
        result = monitor("--name", token, "--interval", "0.2", "--duration", "0.3", "--out", str(out))
        assert result.returncode == 0, result.stderr
        assert {r["pid"] for r in read_jsonl(out)} == {first.pid}
        second = Server(token)
        try:
            result = monitor("--name", token, "--out", str(tmp_path / "other.jsonl"))
            assert result.returncode == 2
            lines = result.stderr.strip().splitlines()
            assert len(lines) == 1 and str(first.pid) in lines[0] and str(second.pid) in lines[0]
        finally:
            second.stop()
    finally:
        first.stop()


@pytest.mark.timeout(30)
def test_a_dying_process_gives_a_final_dead_sample_and_the_monitor_exits(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "monitor.jsonl"
    mon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "monitor",
            "--pid",
            str(server.pid),
            "--interval",
            "0.2",
            "--out",
            str(out),
        ],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while not (out.exists() and len(read_jsonl(out)) >= 2):
            assert time.monotonic() < deadline and mon.poll() is None
            time.sleep(0.05)
        server.proc.kill()
        server.proc.wait(5)
        assert mon.wait(5) == 0
    finally:
        if mon.poll() is None:
            mon.kill()
            mon.wait(5)
    rows = read_jsonl(out)
    assert all(r["alive"] for r in rows[:-1])
    assert rows[-1]["alive"] is False and rows[-1]["pid"] == server.pid and rows[-1]["rss"] is None
    assert "ESTABLISHED" not in rows[-1]["conns"]


@pytest.mark.timeout(30)
def test_sigterm_stops_cleanly(server: Server, tmp_path: Path) -> None:
    out = tmp_path / "monitor.jsonl"
    mon = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "monitor",
            "--pid",
            str(server.pid),
            "--interval",
            "0.2",
            "--out",
            str(out),
        ],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 10
        while not (out.exists() and len(read_jsonl(out)) >= 2):
            assert time.monotonic() < deadline and mon.poll() is None
            time.sleep(0.05)
        mon.send_signal(signal.SIGTERM)
        assert mon.wait(5) == 0
        assert mon.stderr.read() == b""
    finally:
        if mon.poll() is None:
            mon.kill()
            mon.wait(5)
    rows = read_jsonl(out)
    assert len(rows) >= 2 and all(r["alive"] for r in rows)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    "args",
    [
        ["--pid", "999999999"],
        ["--port", "1"],
        ["--name", "no-such-process-lqh-7f3a"],
        ["--pid", str(os.getpid()), "--interval", "0"],
        ["--pid", str(os.getpid()), "--generator-parent", "999999999"],
        ["--pid", str(os.getpid()), "--target-url", "http://127.0.0.1:9"],
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(args: list[str], tmp_path: Path) -> None:
    result = monitor(*args, "--out", str(tmp_path / "monitor.jsonl"), timeout=10)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lqharness: error: "), result.stderr
    assert "Traceback" not in result.stderr


def _sleepers(*role_args: tuple[str, ...]) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", SLEEPER, *args]) for args in role_args]


@pytest.mark.timeout(30)
def test_generator_sampling_finds_locust_descendants_by_role(server: Server, tmp_path: Path) -> None:
    sleepers = _sleepers(
        ("locust", "--worker", "--master-host", "127.0.0.1"),
        ("locust", "--master"),
        ("-f", "locustfiles/users.py"),
        ("not-a-generator",),
    )
    try:
        out = tmp_path / "monitor.jsonl"
        result = monitor(
            "--pid", str(server.pid), "--interval", "0.2", "--duration", "0.5", "--out", str(out),
            "--generator-parent", str(os.getpid()),
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        rows = read_jsonl(tmp_path / "generator.jsonl")
        roles = {r["pid"]: r["role"] for r in rows}
        assert roles == {sleepers[0].pid: "worker", sleepers[1].pid: "master", sleepers[2].pid: "local"}
        assert all(r["rss"] > 0 for r in rows)
        assert all(r["cpu_core_pct"] is not None for r in rows if r["t"] > min(x["t"] for x in rows))
    finally:
        for proc in sleepers:
            proc.kill()
            proc.wait(5)


@pytest.mark.timeout(30)
def test_generator_sampler_follows_processes_that_start_and_end() -> None:
    sampler = GeneratorSampler(os.getpid())
    assert sampler.sample() == []
    (worker,) = _sleepers(("locust", "--worker"))
    try:
        assert [(r["pid"], r["role"]) for r in sampler.sample()] == [(worker.pid, "worker")]
    finally:
        worker.kill()
        worker.wait(5)
    assert sampler.sample() == []


@pytest.mark.timeout(30)
def test_generator_sampler_includes_an_in_process_parent_only_when_asked() -> None:
    (runner,) = _sleepers(("run", "live"))
    try:
        assert GeneratorSampler(runner.pid).sample() == []
        rows = GeneratorSampler(runner.pid, include_parent=True).sample()
        assert [(r["pid"], r["role"]) for r in rows] == [(runner.pid, "local")]
    finally:
        runner.kill()
        runner.wait(5)


class HangingAdmin:
    """An admin whose every call blocks until released: a stalled target."""

    def __init__(self, release: threading.Event) -> None:
        self.release = release

    def stats(self) -> dict[str, str] | None:
        self.release.wait(30)
        return None

    def live_subscriptions(self) -> dict[str, int] | None:
        return None

    def close(self) -> None:
        pass


class CountingAdmin:
    """An admin answering at once, with stats that change at every call."""

    def __init__(self) -> None:
        self.calls = 0

    def stats(self) -> dict[str, str] | None:
        self.calls += 1
        return {"calls": str(self.calls)}

    def live_subscriptions(self) -> dict[str, int] | None:
        return {"sub-1": 3, "sub-2": 0}

    def close(self) -> None:
        pass


@pytest.mark.timeout(30)
def test_a_hanging_target_does_not_stall_sampling(server: Server, tmp_path: Path) -> None:
    release = threading.Event()
    poller = StatsPoller(lambda: HangingAdmin(release), interval=0.2, stale_after=0.6)
    out = JsonlWriter(tmp_path / "monitor.jsonl")
    poller.start()
    try:
        started = time.monotonic()
        reason = run_monitor(ProcessSampler(psutil.Process(server.pid)), out, 0.2, threading.Event(), 1.0, poller)
        elapsed = time.monotonic() - started
    finally:
        release.set()
        poller.stop()
        out.close()
    assert reason is StopReason.DURATION
    assert 0.9 < elapsed < 5.0  # its 1 s duration, not held up by the target (generous on a busy machine)
    rows = read_jsonl(tmp_path / "monitor.jsonl")
    assert len(rows) >= 5
    assert all(r["stats"] is None and r["live_count"] is None for r in rows)


@pytest.mark.timeout(30)
def test_target_statistics_land_in_the_samples(server: Server, tmp_path: Path) -> None:
    admin = CountingAdmin()
    poller = StatsPoller(lambda: admin, interval=0.1)
    out = JsonlWriter(tmp_path / "monitor.jsonl")
    poller.start()
    try:
        deadline = time.monotonic() + 10
        while poller.latest()[0] is None and time.monotonic() < deadline:  # the first poll has landed
            time.sleep(0.01)
        run_monitor(ProcessSampler(psutil.Process(server.pid)), out, 0.2, threading.Event(), 0.6, poller)
    finally:
        poller.stop()
        out.close()
    rows = read_jsonl(tmp_path / "monitor.jsonl")
    assert all(r["live_count"] == 2 for r in rows)
    calls = [int(r["stats"]["calls"]) for r in rows]
    assert calls == sorted(calls) and calls[-1] > calls[0]


@pytest.mark.timeout(30)
def test_launcher_starts_and_stops_the_sidecar(server: Server, tmp_path: Path) -> None:
    (worker,) = _sleepers(("locust", "--worker"))
    spec = TargetSpec(name="kalamdb", url="http://127.0.0.1:9", user="root", password="secret-pw")
    mon = start_monitor_process(server.pid, tmp_path, os.getpid(), spec, interval=0.2, stderr=subprocess.PIPE)
    try:
        assert "secret-pw" not in " ".join(psutil.Process(mon.pid).cmdline())
        deadline = time.monotonic() + 10
        while not (tmp_path / "generator.jsonl").exists() or len(read_jsonl(tmp_path / "monitor.jsonl")) < 3:
            assert time.monotonic() < deadline and mon.poll() is None
            time.sleep(0.05)
    finally:
        assert stop_monitor_process(mon) == 0
        worker.kill()
        worker.wait(5)
    rows = read_jsonl(tmp_path / "monitor.jsonl")
    assert all(r["pid"] == server.pid and r["alive"] for r in rows)
    assert {r["pid"] for r in read_jsonl(tmp_path / "generator.jsonl")} == {worker.pid}


class FakeKalamStats(http.server.BaseHTTPRequestHandler):
    """Just enough of KalamDB's HTTP API for statistics: login, ``system.stats``, ``system.live``."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - the http.server handler name
        body = orjson.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path == "/v1/api/auth/login":
            ok = body == {"user": "root", "password": "pw-from-env"}
            self._reply(200 if ok else 401, {"access_token": "tok"} if ok else {"error": "bad credentials"})
        elif self.headers.get("Authorization") != "Bearer tok":
            self._reply(401, {"error": {"code": "UNAUTHORIZED", "message": "no token"}})
        elif "system.stats" in body["sql"]:
            schema = [{"name": "metric_name", "index": 0}, {"name": "metric_value", "index": 1}]
            self._reply(200, {"results": [{"schema": schema, "rows": [["active_connections", "5"], ["pid", "1"]]}]})
        else:
            schema = [{"name": n, "index": i} for i, n in enumerate(("live_id", "subscription_id", "changes"))]
            rows = [[f"l{i}", f"s{i}", i] for i in range(3)]
            self._reply(200, {"results": [{"schema": schema, "rows": rows}]})

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        data = orjson.dumps(payload)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.timeout(30)
def test_cli_polls_target_statistics_through_the_target_driver(server: Server, tmp_path: Path) -> None:
    fake = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeKalamStats)
    threading.Thread(target=fake.serve_forever, daemon=True).start()
    try:
        out = tmp_path / "monitor.jsonl"
        result = subprocess.run(
            [
                sys.executable, "-m", "harness.cli", "monitor", "--pid", str(server.pid), "--interval", "0.2",
                "--duration", "1.2", "--out", str(out), "--target-url", f"http://127.0.0.1:{fake.server_port}",
            ],
            env={**os.environ, "LQH_TARGET_PASSWORD": "pw-from-env"},
            capture_output=True,
            text=True,
            timeout=15,
        )  # fmt: skip
    finally:
        fake.shutdown()
        fake.server_close()
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    rows = read_jsonl(out)
    polled = [r for r in rows if r["stats"] is not None]
    assert len(polled) >= 2, rows
    assert all(r["stats"] == {"active_connections": "5", "pid": "1"} and r["live_count"] == 3 for r in polled)
