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
from urllib.parse import urlsplit

import orjson

from harness.errors import HarnessError
from harness.processes import terminate
from harness.runfolder import SERVER

ROOT_PASSWORD_ENV = "KALAMDB_ROOT_PASSWORD"  # read by `lqharness serve`


@dataclass
class LocalServer:
    """A running ``lqharness serve`` child: its URL, pid, root password and log file.

    ``restart`` replaces ``proc`` by a new server on the same port, data and arguments, so whoever
    holds this object (the run's watch, its end of run) follows the new process.
    """

    proc: subprocess.Popen[bytes]
    url: str
    root_password: str | None
    log_path: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict, repr=False)
    ready_path: Path | None = None

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

    def restart(self, timeout: float = 20.0) -> float:
        """Stop the server (SIGTERM) and start it again on its port and data; returns when it was up again.

        The replay log and every connection are gone afterwards, as after any restart; the data is kept.
        """
        if self.ready_path is None:
            raise HarnessError("this reference server cannot be restarted: no ready file")
        port = urlsplit(self.url).port
        self.stop()
        args = [*self.args, "--port", str(port)]  # the last --port wins: the one it had
        self.proc = _launch(args, self.env, self.log_path, self.ready_path, timeout)[0]
        return time.time()

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
    env["PYTHONUNBUFFERED"] = "1"
    proc, url = _launch(args, env, log_path, ready, timeout)
    return LocalServer(
        proc=proc, url=url, root_password=password, log_path=log_path, args=args, env=env, ready_path=ready
    )


def _launch(
    args: list[str], env: dict[str, str], log_path: Path, ready: Path, timeout: float
) -> tuple[subprocess.Popen[bytes], str]:
    """Start the server process and wait for its ready file; returns the process and the URL it serves."""
    ready.unlink(missing_ok=True)
    log = log_path.open("ab")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise HarnessError(f"reference server exited with code {proc.returncode}: {tail[0]}")
        if ready.exists():
            try:
                return proc, str(orjson.loads(ready.read_bytes())["url"])
            except (orjson.JSONDecodeError, KeyError):
                pass  # half-written; read again
        time.sleep(0.05)
    terminate(proc, 0)
    raise HarnessError(f"reference server did not become ready within {timeout:.0f} s (log: {log_path})")
