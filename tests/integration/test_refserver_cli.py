"""``lqharness serve`` on the command line: help, bad flags and an occupied port end with one line, no traceback."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(60)


def serve(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", "serve", *args], capture_output=True, text=True, timeout=30
    )


def test_help_documents_every_flag():
    proc = serve("--help")
    assert proc.returncode == 0
    for flag in (
        "--host",
        "--port",
        "--data-dir",
        "--root-password",
        "--jwt-secret",
        "--node-id",
        "--queue-size",
        "--queue-overflow",
        "--block-timeout",
        "--heartbeat-timeout",
        "--auth-timeout",
        "--max-ws-message-size",
        "--log-level",
        "--fault",
        "--ready-file",
        "--memory-limit-mb",
        "1013",
    ):
        assert flag in proc.stdout, flag


@pytest.mark.parametrize(
    "args, message",
    [
        (("--port", "70000"), "--port must be in 0..65535"),
        (("--node-id", "5000"), "--node-id must be in 0..1023"),
        (("--queue-size", "0"), "--queue-size must be at least 1"),
        (("--heartbeat-timeout", "0"), "--heartbeat-timeout must be positive"),
        (("--root-password", "short"), "root password rejected"),
    ],
)
def test_bad_values_are_one_line_errors(args, message):
    proc = serve(*args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and message in proc.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (("--queue-overflow", "maybe"), "invalid choice"),
        (("--bogus",), "unrecognized arguments: --bogus"),
        (("--port", "eighty"), "invalid int value"),
    ],
)
def test_bad_flags_are_one_line_usage_errors(args, message):
    proc = serve(*args)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()] and message in proc.stderr
    assert proc.stderr.startswith("lqharness") and " error: " in proc.stderr


def test_occupied_port_is_a_one_line_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = serve("--port", str(port), "--root-password", "Root-Pass-123")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == f"lqharness: error: cannot listen on 127.0.0.1:{port}: Address already in use"


def test_memory_limit_is_reported_in_system_stats(tmp_path):
    from tests.support.refserver import ROOT_PASSWORD, Http, start_refserver

    with start_refserver(tmp_path, "--memory-limit-mb", "64") as srv:
        http = Http(srv.url)
        token = http.login("root", ROOT_PASSWORD)
        (result,) = http.ok(token, "SELECT * FROM system.stats")
        stats = dict(result["rows"])
    assert stats["memory_limit_bytes"] == str(64 << 20)
    assert int(stats["memory_rss_bytes"]) < 64 << 20


def test_too_small_memory_limit_is_a_one_line_error():
    proc = serve("--memory-limit-mb", "8")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == "lqharness: error: --memory-limit-mb must be at least 32, not 8"
