"""Run a small plan through ``locustfiles/live.py``, in-process or as master and workers, and read the run folder.

``flow_plan`` builds a plan against a running reference server; ``run_locust`` sets its table up,
starts Locust and returns the run folder's ``delivery.json``, ``writes.json`` and ``target.json``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson

from harness.delivery.identity import messages_schema
from harness.plan import Extras, ListenerSpec, Plan, TargetSpec, WriterSpec
from harness.targets import create_target
from harness.targets.base import TableKind
from locustfiles import users_needed
from tests.support.refserver import ROOT_PASSWORD

ROOT = Path(__file__).resolve().parents[2]
LOCUSTFILE = str(ROOT / "locustfiles" / "live.py")
ANOMALIES = ("lost", "duplicates", "out_of_order", "phantom", "old_value_errors", "delete_flag_errors")


def flow_plan(
    url: str,
    run_dir: Path,
    table: str,
    writers: tuple[WriterSpec, ...],
    listeners: tuple[ListenerSpec, ...],
    groups: tuple[tuple[int, ...], ...],
) -> Plan:
    """A plan against ``url`` whose run folder is ``run_dir``: 64-byte payloads, a 1 s drain, a 60 s bound."""
    return Plan(
        run_id=table, scenario="flow", target=TargetSpec("kalamdb", url, "root", ROOT_PASSWORD, {"timeout": 5}),
        namespace="lqh", table=table, table_type=TableKind.USER, app_user="app", app_password="App-Pass-123",
        payload_bytes=64, writers=writers, listeners=listeners, writer_groups=groups, drain_seconds=1.0,
        ready_timeout=20.0, summary_timeout=20.0, extra=Extras(run_dir=str(run_dir), max_seconds=60),
    )  # fmt: skip


def _free_port() -> int:
    """A TCP port free on 127.0.0.1 now, for the Locust master to bind."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_locust(plan: Plan, workers: int, setup: bool = True) -> dict[str, Any]:
    """Set the table up, run Locust in-process (``workers=0``) or distributed, return the run folder's JSON files."""
    run_dir = Path(plan.extra.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    plan.write(run_dir / "plan.json")
    if setup:
        admin = create_target(plan.target).admin()
        try:
            admin.setup(messages_schema(plan))
        finally:
            admin.close()
    env = {k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"}  # Locust needs gevent's patching
    env.update({"LQH_PLAN": str(run_dir / "plan.json"), **plan.secret_env()})  # the plan file holds no password
    users = users_needed(plan)
    base = [sys.executable, "-m", "locust", "-f", LOCUSTFILE, "--loglevel", "WARNING"]
    main = [*base, "--headless", "-u", str(users), "-r", str(users), "--run-time", "60s", "--stop-timeout", "10",
            "--csv", str(run_dir / "locust"), "--only-summary"]  # fmt: skip
    port = _free_port()
    if workers:
        main += ["--master", "--expect-workers", str(workers), "--master-bind-host", "127.0.0.1",
                 "--master-bind-port", str(port)]  # fmt: skip
    log = (run_dir / "locust.out").open("wb")
    procs = [subprocess.Popen(main, env=env, stdout=log, stderr=subprocess.STDOUT)]
    for _ in range(workers):
        cmd = [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
        procs.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT))
    try:
        for proc in procs:
            proc.wait(90)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
        log.close()
    out = (run_dir / "locust.out").read_text(errors="replace")
    assert (run_dir / "delivery.json").exists(), out[-2000:]
    return {name: orjson.loads((run_dir / f"{name}.json").read_bytes()) for name in ("delivery", "writes", "target")}
