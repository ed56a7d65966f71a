"""Plain ``locust -f locustfiles/live.py``: the run is opened by the Locust master, not by ``lqharness run``.

Where the run is coordinated (the master, or the single local process) a
``harness.orchestration.session.Session`` is opened as soon as the scenario is known: at start-up
with ``--scenario`` (headless, ``--autostart``), or when the web UI's form starts the run. It
yields the plan; the user classes get their counts from it, the coordination is installed, and
the plan is sent to every worker (now, and to any worker that connects later). When the
coordinator has written the delivery files the session judges the run, and the verdict's exit
code becomes Locust's (``environment.process_exit_code``).

A worker needs only the project and the master's address: it installs its side when the
plan arrives, and then estimates its clock offset to the master (``locustfiles.clock``).
"""

from __future__ import annotations

import logging
import os
import sys
from typing import TYPE_CHECKING, Any

import gevent
import orjson
from flask import jsonify, request
from locust import stats
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from harness import exitcodes
from harness.delivery.identity import messages_schema
from harness.errors import HarnessError
from harness.plan import Plan, plan_with_passwords
from harness.runfolder import LOCUST_CSV_PREFIX, VERDICT
from harness.targets import create_target
from locustfiles import coordination, messages, options, population, webtab
from locustfiles.context import RunContext
from locustfiles.coordinator import Coordinator
from locustfiles.messages import PlanWanted, RunPlan

if TYPE_CHECKING:
    from harness.orchestration.session import Session

log = logging.getLogger("lqharness")

# Locust user class name → the population.user_counts kind it runs
KINDS = {"ListenerUser": "listeners", "WriterUser": "writers", "QueryUser": "queriers", "ChurnUser": "churn",
         "FlushUser": "flush"}  # fmt: skip
JOINING = ("ListenerUser", "WriterUser")  # the kinds a user count above the plan's adds more of


def _plan_message(plan: Plan) -> RunPlan:
    """The plan for a worker: its file form, and its passwords beside it over Locust's channel."""
    return RunPlan(orjson.loads(plan.to_json()), plan.secret_env())


def fail(message: str) -> None:
    """End Locust at start-up with one line, as its own option errors do."""
    sys.stderr.write(f"locust: error: {message}\n")
    sys.exit(exitcodes.HARNESS_ERROR)


class PlainRun:
    """This process's side of a plain Locust run: the session and coordinator (master), or the plan's arrival."""

    def __init__(self, environment: Environment, user_classes: dict[str, type[Any]]) -> None:
        self.environment = environment
        self.user_classes = user_classes
        self.session: Session | None = None
        self.plan: Plan | None = None
        self.coordinator: Coordinator | None = None
        self.verdict: dict[str, Any] | None = None
        self._csv: gevent.Greenlet | None = None
        self._csv_writer: stats.StatsCSVFileWriter | None = None

    @property
    def runner(self) -> Any:
        return self.environment.runner

    @property
    def parsed(self) -> Any:
        """Locust's parsed options (always set when Locust runs from its command line)."""
        if self.environment.parsed_options is None:
            raise HarnessError("a plain Locust run needs Locust's command line options")
        return self.environment.parsed_options

    # -- the coordinating side ------------------------------------------------------------------

    def install(self) -> None:
        """Wire this process's side at Locust's init event."""
        if isinstance(self.runner, WorkerRunner):
            messages.on(self.runner, RunPlan, self._on_plan)
            messages.send(self.runner, PlanWanted())
            return
        parsed = self.parsed
        web_ui: Any = self.environment.web_ui
        if isinstance(self.runner, MasterRunner):
            self.environment.events.worker_connect.add_listener(self._on_worker_connect)
            messages.on(self.runner, PlanWanted, self._on_plan_wanted)
        self.environment.events.quitting.add_listener(self._on_quitting)
        if web_ui is not None:
            webtab.install(web_ui, lambda: webtab.delivery_view(self.coordinator, self.verdict))
            web_ui.app.before_request(self._before_swarm)
        if parsed.headless or parsed.autostart:
            try:
                self.open(parsed.scenario, parsed.num_users)
            except HarnessError as exc:
                fail(str(exc))
            if parsed.num_users is None:
                parsed.num_users = population.users_needed(self._plan())
                parsed.spawn_rate = parsed.spawn_rate or parsed.num_users

    def _plan(self) -> Plan:
        if self.plan is None:
            raise HarnessError("no run plan yet")
        return self.plan

    def open(self, scenario: str | None, users: int | None) -> None:
        """Open the session of ``scenario`` for ``users`` Locust users (None: as many as it needs)."""
        from harness.orchestration.session import Session

        if self.session is not None:
            raise HarnessError("this Locust process already ran its scenario: start Locust again for another run")
        parsed = self.parsed
        parsed.scenario = scenario
        workers = 0
        if isinstance(self.runner, MasterRunner):  # headless: the workers it waits for; web UI: those connected
            workers = parsed.expect_workers if parsed.headless else self.runner.worker_count
        session = Session(options.session_options(parsed, workers))
        counts = population.user_counts(session.preview())
        needed = sum(counts.values())
        if users is not None and users < needed:
            raise HarnessError(f"scenario {scenario} runs {needed} users (-u {needed}); {users} are too few")
        if users is not None and users > needed and not any(counts[KINDS[name]] for name in JOINING):
            raise HarnessError(f"scenario {scenario} runs exactly {needed} users (-u {needed}), not {users}")
        plan = session.open()
        self.session, self.plan = session, plan
        self._start_csv(session)
        chosen = []
        for name, cls in self.user_classes.items():
            count = counts[KINDS[name]]
            if count == 0:
                continue
            if name in JOINING:
                # weighted by the plan's counts: at the plan's user count Locust spawns exactly them, and the
                # users beyond join as more listeners and writers in that proportion (locustfiles.joiners)
                cls.fixed_count, cls.weight = 0, count
            else:
                cls.fixed_count = count
            chosen.append(cls)
        self.environment.user_classes = chosen
        context = RunContext(plan, messages_schema(plan), create_target(plan.target))
        self.coordinator = coordination.install(self.environment, context, self._finished)
        if isinstance(self.runner, MasterRunner):
            messages.send(self.runner, _plan_message(plan))

    def _start_csv(self, session: Session) -> None:
        """Write Locust's statistics CSVs (with full history) into the run folder, as ``lqharness run`` has
        Locust do with ``--csv``: the judge and the report read them. A user's own ``--csv`` still works."""
        if session.run_dir is None:
            return
        prefix = str(session.run_dir / LOCUST_CSV_PREFIX)
        writer = stats.StatsCSVFileWriter(self.environment, stats.PERCENTILES_TO_REPORT, prefix, full_history=True)
        self._csv_writer, self._csv = writer, gevent.spawn(writer.stats_writer)

    def _stop_csv(self) -> None:
        if self._csv is not None and self._csv_writer is not None:
            self._csv.kill()
            self._csv_writer.close_files()
            self._csv = None

    def _before_swarm(self) -> Any:
        """Open the session when the web UI's form starts a run (its scenario field picks the scenario)."""
        if request.path != "/swarm" or request.method != "POST":
            return None
        if self.session is not None:
            if self.session.exit_code is None:
                return None  # the run goes on: a new user count
            message = f"this Locust process ran its scenario ({self.session.run_dir}): start Locust again for another"
            return jsonify({"success": False, "message": message, "host": self.environment.host})
        users = request.form.get("user_count", type=int)
        try:
            self.open(request.form.get("scenario") or self.parsed.scenario, users)
        except HarnessError as exc:
            return jsonify({"success": False, "message": str(exc), "host": self.environment.host})
        return None

    def _on_worker_connect(self, client_id: str, **_: Any) -> None:
        if self.plan is not None:
            messages.send(
                self.runner, RunPlan(orjson.loads(self.plan.to_json()), self.plan.secret_env()), client_id=client_id
            )

    def _on_plan_wanted(self, _msg: PlanWanted, node_id: str) -> None:
        if self.plan is not None:
            messages.send(self.runner, _plan_message(self.plan), client_id=node_id)

    def _finished(self, delivery: dict[str, Any]) -> None:
        """The coordinator wrote the delivery files: judge the run, and let its verdict be Locust's exit code."""
        self._conclude(None)

    def _conclude(self, error: str | None) -> None:
        if self.session is None or self.session.exit_code is not None:
            return
        self._stop_csv()
        if self.coordinator is not None:
            for node_id, offset in self.coordinator.clocks.items():
                self.session.clock(node_id, **offset)
        code = self.session.conclude(error)
        self.environment.process_exit_code = code
        run_dir = self.session.run_dir
        verdict = orjson.loads((run_dir / VERDICT).read_bytes()) if run_dir and (run_dir / VERDICT).exists() else {}
        self.verdict = {"verdict": verdict.get("verdict"), "exit_code": code, "run_dir": str(run_dir)}

    def _on_quitting(self, **_: Any) -> None:
        if self.coordinator is not None:
            self.coordinator.finish("Locust quit before the run ended (time bound or interrupt)")
        self._conclude("Locust quit before the run ended")

    # -- a worker -------------------------------------------------------------------------------

    def _on_plan(self, msg: RunPlan, node_id: str) -> None:
        if self.plan is not None:
            return
        passwords = {name: os.environ.get(name) or value for name, value in msg.secrets.items()}
        try:
            plan = plan_with_passwords(msg.plan, passwords)
        except (TypeError, KeyError, ValueError) as exc:
            log.error("cannot read the master's plan (is this worker's harness the master's version?): %s", exc)
            return
        self.plan = plan
        coordination.install(self.environment, RunContext(plan, messages_schema(plan), create_target(plan.target)))
