"""Run a small plan through ``locustfiles/live.py``, in-process or as master and workers, and read the run folder.

``flow_plan`` builds a plan against a running reference server; ``run_locust`` sets its table up,
starts Locust and returns the run folder's ``delivery.json``, ``writes.json`` and ``target.json``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from harness.delivery.anomalies import LEGACY_PHANTOM, Anomaly
from harness.delivery.identity import messages_schema
from harness.orchestration.runner import _free_port, _locust_cmd
from harness.plan import PLAN_ENV, Extras, ListenerSpec, Plan, TargetSpec, WriterSpec
from harness.targets import create_target
from harness.targets.base import TableKind
from tests.support.plain_locust import run_together
from tests.support.refserver import ROOT_PASSWORD

# every anomaly counter of delivery.json (late arrivals are no anomaly), and the phantom family's sum
ANOMALIES = (*(str(a) for a in Anomaly if a is not Anomaly.LATE), LEGACY_PHANTOM)


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
    env.update({PLAN_ENV: str(run_dir / "plan.json"), **plan.secret_env()})  # the plan file holds no password
    # The command lines of `lqharness run` itself (audit L11), bounded at the plan's max_seconds.
    port = _free_port()
    bound = int(plan.extra.max_seconds)
    main = _locust_cmd(plan, run_dir, bound, "master" if workers else "local", port, workers)
    worker = _locust_cmd(plan, run_dir, bound, "worker", port, workers)
    run_together([main, *[worker] * workers], env, run_dir / "locust.out", 90)
    logs = [run_dir / name for name in ("locust.out", "locust.log") if (run_dir / name).exists()]
    out = "".join(path.read_text(errors="replace") for path in logs)
    assert (run_dir / "delivery.json").exists(), out[-2000:]
    return {name: orjson.loads((run_dir / f"{name}.json").read_bytes()) for name in ("delivery", "writes", "target")}
