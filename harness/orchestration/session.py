"""A run started by plain ``locust -f locustfiles/live.py``: what ``lqharness run`` does around Locust,
done from inside the Locust master (or the single local process).

The master opens a :class:`Session` when it knows the scenario (at start-up with ``--scenario``, or
when the web UI's form starts a run): a run folder, the target (the reference server by default),
the table, the monitor, the plan. When the coordinator has written the delivery files, the session
folds the phases and clocks into ``run.json``, keeps the monitor sampling through the scenario's
observe window, stops what it started and runs the judge; its exit code becomes Locust's. The
locustfiles reach this module only through ``locustfiles.entry``, with a lazy import, since it
pulls in the judge.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness import exitcodes
from harness.errors import HarnessError
from harness.orchestration.record import RunRecord
from harness.orchestration.runner import Runner, RunOptions, run_outcome
from harness.orchestration.server import LocalServer
from harness.plan import Plan, TargetSpec
from harness.runfolder import PLAN_JSON, RunStatus
from harness.scenarios.catalogue import Scenario, build_plan, resolve

log = logging.getLogger("lqharness")


def scenario_names() -> list[str]:
    """Every scenario of the catalogue, in catalogue order (the web UI's choices for ``--scenario``)."""
    from harness.scenarios.catalogue import catalogue
    from reports.judge import RULES

    return list(catalogue(RULES))


def find_scenario(name: str) -> Scenario:
    """The one scenario called ``name`` (a group name is refused: one Locust run is one scenario)."""
    from reports.judge import RULES

    found = [s for s in resolve([name], RULES) if s.name == name]
    if not found:
        raise HarnessError(f"--scenario takes one scenario, not the group {name!r} (see `lqharness list`)")
    return found[0]


@dataclass(frozen=True, slots=True)
class SessionOptions:
    """The harness's options of a plain Locust run (``locustfiles.options`` reads them off Locust's parser)."""

    scenario: str
    run: RunOptions
    workers: int  # 0: one local Locust process; N: the master expects N workers


class Session:
    """One run folder driven by the Locust master: opened with the plan, concluded with the judge's exit code."""

    def __init__(self, options: SessionOptions) -> None:
        self.options = options
        self.scenario = find_scenario(options.scenario)
        self._runner = Runner(options.run)
        self._started = contextlib.ExitStack()
        self._server: LocalServer | None = None
        self._record: RunRecord | None = None
        self._clocks: dict[str, dict[str, Any]] = {}
        self.exit_code: int | None = None

    @property
    def run_dir(self) -> Path | None:
        return self._record.path if self._record is not None else None

    def preview(self) -> Plan:
        """The scenario's plan without a target or run folder: what Locust will run, to check its user count."""
        placeholder = TargetSpec("kalamdb", "", "", "")
        return build_plan(self.scenario, quick=self.options.run.quick, target=placeholder, run_id="preview", run_dir="")

    def open(self) -> Plan:
        """Create the run folder, start (or reach) the target, set its table up, start the monitor; return the plan."""
        opts = self.options.run
        record = RunRecord.start(
            opts.out_dir, self.scenario, quick=opts.quick, target=opts.target, target_url=opts.target_url,
            workers=self.options.workers,
        )  # fmt: skip
        self._record = record
        self._started.callback(record.finish)
        t0 = time.time()
        try:
            self._server, spec = self._runner.target(record)
            if self._server is not None:
                self._started.callback(self._server.stop)
            plan = build_plan(
                self.scenario, quick=opts.quick, target=spec, run_id=record.run_id, run_dir=str(record.path)
            )
            plan.write(record.path / PLAN_JSON)
            self._runner.ready_target(plan, record, self._server, spec)
            record.phase("setup", t0, time.time())
            if self._server is not None:
                self._runner.start_monitor(record.path, self._server, spec, self._started)
        except HarnessError as exc:
            record.outcome(*run_outcome(exc, self._server))
            self._started.close()
            raise
        opts.progress(f"[{self.scenario.name}] run folder {record.path}, target {spec.url}")
        return plan

    def clock(self, node_id: str, offset_s: float, rtt_s: float, samples: int) -> None:
        """Record a worker's clock offset to the master (saved in ``run.json`` ``clocks`` at the end)."""
        self._clocks[node_id] = {"offset_s": offset_s, "rtt_s": rtt_s, "samples": samples}

    def conclude(self, error: str | None = None) -> int:
        """Fold phases and clocks into ``run.json``, stop the target and monitor, judge; return the exit code (once)."""
        if self.exit_code is not None:
            return self.exit_code
        record = self._record
        if record is None:
            self.exit_code = exitcodes.HARNESS_ERROR
            return self.exit_code
        record.merge_phases()
        record.clocks(self._clocks)
        observe = float(record.profile.get("observe_seconds", 0) or 0)
        if observe > 0 and not error:
            self.options.run.progress(f"[{self.scenario.name}] load stopped; observing the server for {observe:.0f} s")
            t_obs = time.time()
            self._runner.observe(observe, self._server)
            record.phase("observe", t_obs, time.time())
        failure = HarnessError(error) if error else None
        status, why = run_outcome(failure, self._server)
        record.outcome(status, why)
        self._started.close()
        from reports.judge import judge_run

        self.exit_code = judge_run(record.path, self.options.run.criteria, history=self.options.run.history)
        if status is not RunStatus.COMPLETED:
            log.warning("run ended as %s: %s", status, why)
        return self.exit_code
