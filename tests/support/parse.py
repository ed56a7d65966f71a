"""What the Parse tests share: the install's time bound, the prerequisite check, and one server for all of them
(``lqharness target up parse`` before the first, ``lqharness target down`` after the last, with its checks)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.orchestration import parse_process

INSTALL_SECONDS = 600  # a cold install from the registry; a warm one takes no time
TARGET_CLI = [sys.executable, "-m", "harness.cli", "target"]


def require_parse() -> None:
    """Skip (fail under CI=true) when node, npm or PostgreSQL is missing, with the one-line reason."""
    try:
        for tool, package in (("node", "nodejs"), ("npm", "npm")):
            if shutil.which(tool) is None:
                raise HarnessError(f"{tool} not found: install the Debian package {package}")
        parse_process.pg_bindir()
    except HarnessError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Parse prerequisites missing under CI: {exc}")
        pytest.skip(str(exc))


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False


def parse_target_up(folder: Path) -> Iterator[Path]:
    """``lqharness target up parse --dir folder``, yield ``folder``, then ``target down``: it must stop Node and
    PostgreSQL by their recorded pids, remove the cluster, keep its log, and a second ``down`` must say so."""
    require_parse()
    up = subprocess.run([*TARGET_CLI, "up", "parse", "--dir", str(folder)], capture_output=True, text=True,
                        timeout=INSTALL_SECONDS + 60)  # fmt: skip
    assert up.returncode == 0, up.stderr
    state = json.loads((folder / parse_process.STATE_FILE).read_text())
    try:
        yield folder
    finally:
        down = subprocess.run([*TARGET_CLI, "down", "--dir", str(folder)], capture_output=True, text=True, timeout=60)
    assert down.returncode == 0, down.stderr
    deadline = time.monotonic() + 10
    while (alive(state["node_pid"]) or alive(state["postgres_pid"])) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(state["node_pid"]) and not alive(state["postgres_pid"])
    assert not Path(state["postgres_dir"]).exists() and (folder / "postgres.log").is_file()
    gone = subprocess.run([*TARGET_CLI, "down", "--dir", str(folder)], capture_output=True, text=True, timeout=60)
    assert gone.returncode == 2 and "no target is up" in gone.stderr
