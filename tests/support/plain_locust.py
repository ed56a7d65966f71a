"""Run ``locustfiles/live.py`` as a Locust user would, with no ``$LQH_PLAN``: the harness's options on Locust's
command line, and the run folder, verdict and exit code it leaves."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = str(ROOT / "locustfiles" / "live.py")
DELIVERY_TOTALS = ("expected", "delivered", "lost", "duplicates", "out_of_order", "phantom", "received")


def locust_env() -> dict[str, str]:
    """The environment of a plain Locust process: this checkout first on the path, gevent patching on."""
    env = {k: v for k, v in os.environ.items() if k not in ("LOCUST_SKIP_MONKEY_PATCH", "LQH_PLAN")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def locust_cmd(*args: str) -> list[str]:
    """``locust -f locustfiles/live.py ARGS`` with this interpreter."""
    return [sys.executable, "-m", "locust", "-f", LOCUSTFILE, *args]


def run_together(
    cmds: list[list[str]], env: dict[str, str], log: Path, timeout: float, cwd: Path | None = None
) -> list[int]:
    """Start every command with one shared log, wait for each within ``timeout`` s, kill any still running
    (a timeout raises after that); returns the exit codes in order."""
    with log.open("wb") as out:
        procs = [subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT) for cmd in cmds]
        try:
            return [proc.wait(timeout) for proc in procs]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(5)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def only_run(runs: Path) -> Path:
    """The one run folder under ``runs``."""
    folders = [p for p in runs.iterdir() if p.is_dir()]
    assert len(folders) == 1, folders
    return folders[0]


def read_json(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def delivery_totals(run_dir: Path) -> dict[str, Any]:
    """The checker's delivery totals of a run folder, the counters that must not depend on the topology."""
    totals = read_json(run_dir / "delivery.json")["totals"]
    return {k: totals.get(k) for k in DELIVERY_TOTALS}


def run(args: list[str], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run plain Locust with ``args`` in ``cwd`` to its end."""
    return subprocess.run(locust_cmd(*args), cwd=cwd, env=locust_env(), capture_output=True, text=True, timeout=timeout)
