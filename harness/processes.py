"""Stopping a child process: the one way the runner, the server launcher, the benchmark and the monitor do it.

SIGTERM first, so the child can flush what it writes (the monitor's last sample, Locust's CSVs,
the server's SQLite), then SIGKILL once its grace time is over, so no run can hang on a child.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any

KILL_WAIT_SECONDS = 5.0  # how long to wait for a child to be reaped after SIGKILL


def terminate(proc: subprocess.Popen[Any], grace: float) -> int:
    """SIGTERM ``proc``, wait up to ``grace`` seconds, then SIGKILL it; returns its exit code.

    A child that already ended is only reaped; a stopped one (SIGSTOP) is continued after the SIGTERM,
    so it can act on it at once instead of waiting out its grace time.
    """
    if proc.poll() is None:
        proc.terminate()
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        try:
            return proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(KILL_WAIT_SECONDS)
