"""Start the embedded reference server as a child process and wait until it listens.

Used by ``lqharness run`` (the default ``ref`` target), ``lqharness bench`` and the integration tests,
so each exercises the server exactly as a user's ``lqharness serve`` would run.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from harness.errors import HarnessError
from harness.processes import terminate
from harness.runfolder import SERVER

ROOT_PASSWORD_ENV = "KALAMDB_ROOT_PASSWORD"  # read by `lqharness serve`


@dataclass
class LocalServer:
    """A running ``lqharness serve`` child: its URL, pid, root password and log file."""

    proc: subprocess.Popen[bytes]
    url: str
    root_password: str | None
    log_path: Path
    args: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def database_pid(self) -> int | None:
        """The root process of a database the server runs on, which the monitor samples as a second series."""
        return None

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + "/v1/ws"

    def log(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout``; returns the exit code."""
        return terminate(self.proc, timeout)

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_local_server(
    work_dir: Path,
    extra_args: list[str] | tuple[str, ...] = (),
    *,
    root_password: str | None = None,
    first_run: bool = False,
    name: str = SERVER,
    timeout: float = 20.0,
) -> LocalServer:
    """Start ``lqharness serve --port 0`` writing ``<name>.log`` and ``<name>-data/`` under ``work_dir``.

    Root gets ``root_password`` (a random one when None) unless ``first_run``, which
    leaves root without a password so the setup flow is needed. Waits for the ready file.
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    password = None if first_run else root_password or "Root-" + secrets.token_hex(8)
    ready = work_dir / f"{name}.ready.json"
    ready.unlink(missing_ok=True)
    log_path = work_dir / f"{name}.log"
    args = [
        sys.executable, "-m", "harness.cli", "serve",
        "--host", "127.0.0.1", "--port", "0",
        "--data-dir", str(work_dir / f"{name}-data"),
        "--ready-file", str(ready),
        *extra_args,
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != ROOT_PASSWORD_ENV}
    if password:
        env[ROOT_PASSWORD_ENV] = password  # by environment: a command line is visible to every user (ps)
    log = log_path.open("ab")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**env, "PYTHONUNBUFFERED": "1"})
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise HarnessError(f"reference server exited with code {proc.returncode}: {tail[0]}")
        if ready.exists():
            try:
                info = orjson.loads(ready.read_bytes())
                return LocalServer(proc=proc, url=info["url"], root_password=password, log_path=log_path, args=args)
            except (orjson.JSONDecodeError, KeyError):
                pass  # half-written; read again
        time.sleep(0.05)
    terminate(proc, 0)
    raise HarnessError(f"reference server did not become ready within {timeout:.0f} s (log: {log_path})")
