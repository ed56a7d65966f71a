"""Start and stop ``lqharness monitor`` as a sidecar subprocess: the runner's entry point.

A separate process keeps sampling independent of the runner's own load (gevent, Locust)
and keeps the samples on disk even if the runner dies.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import IO

from harness.plan import TARGET_PASSWORD_ENV, TargetSpec
from harness.processes import terminate
from harness.runfolder import DATABASE, GENERATOR, MONITOR


def start_monitor_process(
    server_pid: int,
    out_dir: Path,
    generator_parent: int | None = None,
    target_spec: TargetSpec | None = None,
    interval: float = 1.0,
    *,
    uss: bool = False,
    duration: float | None = None,
    generator_in_process: bool = False,
    database_pid: int | None = None,
    stderr: IO[bytes] | int | None = None,
) -> subprocess.Popen[bytes]:
    """Launch the monitor on ``server_pid``, writing ``out_dir/monitor.jsonl``.

    With ``generator_parent`` it also writes ``out_dir/generator.jsonl``: the processes
    under that pid whose command line mentions ``locust`` (roles from ``--master`` /
    ``--worker``), and with ``generator_in_process`` the parent itself too, as ``local``.
    With ``target_spec`` it polls the target's statistics (the password goes through the
    environment, not the command line). With ``database_pid`` it also writes ``out_dir/database.jsonl``:
    that process and its descendants summed (the target's PostgreSQL). Stop it with ``stop_monitor_process``; it exits 0
    by itself when the server process dies, after writing a last ``alive: false`` row.
    A bad pid makes it exit 2 at once.
    """
    out_dir = Path(out_dir)
    cmd = [
        sys.executable, "-m", "harness.cli", "monitor",
        "--pid", str(server_pid),
        "--interval", str(interval),
        "--out", str(out_dir / MONITOR),
    ]  # fmt: skip
    env = dict(os.environ)
    if uss:
        cmd.append("--uss")
    if duration is not None:
        cmd += ["--duration", str(duration)]
    if generator_parent is not None:
        cmd += [
            "--generator-parent",
            str(generator_parent),
            "--generator-out",
            str(out_dir / GENERATOR),
        ]
        if generator_in_process:
            cmd.append("--generator-include-parent")
    if database_pid is not None:
        cmd += ["--database-pid", str(database_pid), "--database-out", str(out_dir / DATABASE)]
    if target_spec is not None:
        cmd += [
            "--target-url",
            target_spec.url,
            "--target-name",
            target_spec.name,
            "--target-user",
            target_spec.user,
        ]
        env[TARGET_PASSWORD_ENV] = target_spec.password
    return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stderr=stderr)


def stop_monitor_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> int:
    """SIGTERM the monitor and wait for its final flush; kill it if it does not end in ``timeout``."""
    return terminate(proc, timeout)
