"""One run of one scenario, end to end: target, monitor, Locust, run folder, judge.

Locust runs as its own processes (one local runner, or a master and N workers) with
the plan handed over as a file, so the runner process never needs gevent patching and
the monitor can tell the load generator's processes apart from the server's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path

import orjson

from harness.errors import HarnessError
from harness.orchestration.layout import advise
from harness.orchestration.layout import load as load_capacity
from harness.orchestration.limits import check_limits, serve_limits
from harness.orchestration.nemesis import NemesisRun
from harness.orchestration.record import RunRecord
from harness.orchestration.restart import PlannedRestart
from harness.orchestration.server import LocalServer, start_local_server
from harness.orchestration.watch import TargetWatch
from harness.plan import PLAN_ENV, Plan, TargetSpec
from harness.processes import terminate
from harness.ramp_steps import StepSlo
from harness.runfolder import (
    DELIVERY,
    LOCUST_CSV_PREFIX,
    LOCUST_LOG,
    LOCUST_OUT,
    MONITOR_LOG,
    PLAN_JSON,
    Incident,
    RunStatus,
)  # fmt: skip
from harness.scenarios.catalogue import Scenario, build_plan
from locustfiles import users_needed

UNRESPONSIVE_LIMIT_SECONDS = 30.0  # longer than any single timeout of the users, so a slow target is not cut
CHILD_GRACE_SECONDS = 15.0  # how long a Locust process may take to write its CSVs after SIGTERM


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run: which target, how many Locust workers, quick or full, where to write."""

    target: str = "ref"  # ref (start the reference server) or kalamdb (use --target-url)
    target_url: str | None = None
    target_dir: Path | None = None  # parse: use the server `lqharness target up parse --dir` recorded there
    user: str = "root"
    password: str | None = None
    workers: int = 0  # 0 = one in-process Locust runner; N = master + N worker processes
    quick: bool = False
    out_dir: Path = Path("runs")
    criteria: Path | None = None
    server_args: tuple[str, ...] = ()  # extra `lqharness serve` flags (faults, limits) for the ref target
    history: str | None = None  # run history URL or file; None: history.sqlite in out_dir
    unresponsive_limit: float = UNRESPONSIVE_LIMIT_SECONDS  # a target silent this long ends the run
    watch_interval: float = 1.0  # seconds between two looks at the target
    progress: Callable[[str], None] = print


class TargetFailed(HarnessError):
    """The target failed during the run (exited, stopped or unresponsive past the limit): ``status`` says which."""

    def __init__(self, message: str, status: RunStatus) -> None:
        super().__init__(message)
        self.status = status


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM in the block (main thread only), so cleaning up after one cannot be cut short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_outcome(failure: BaseException | None, server: LocalServer | None) -> tuple[RunStatus, str | None]:
    """The run's status and error text from how the run ended: ``failure`` (None if it did not) and the server.

    An embedded server that is gone means the target crashed, whatever the harness saw next; an
    interrupt (SIGINT, SIGTERM) is its own status, since the run did not end by itself.
    """
    crash = None if server is None or server.alive() else f"reference server exited with code {server.proc.returncode}"
    if isinstance(failure, KeyboardInterrupt):
        return RunStatus.INTERRUPTED, "interrupted" + (f" by {failure}" if str(failure) else "")
    if isinstance(failure, TargetFailed) and crash is None:
        return failure.status, str(failure)
    if failure is None:
        return (RunStatus.COMPLETED, None) if crash is None else (RunStatus.TARGET_CRASHED, crash)
    if crash is not None:
        return RunStatus.TARGET_CRASHED, f"{crash}; then: {failure}"
    return RunStatus.HARNESS_ERROR, str(failure)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _locustfile() -> str:
    return str(resources.files("locustfiles").joinpath("live.py"))


def _locust_cmd(plan: Plan, run_dir: Path, run_time: int, role: str, port: int, workers: int) -> list[str]:
    users = users_needed(plan)
    base = [sys.executable, "-m", "locust", "-f", _locustfile(), "--loglevel", "WARNING"]
    if role == "worker":
        return [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    cmd = [
        *base, "--headless", "-u", str(users), "-r", str(max(users, 1)), "--run-time", f"{run_time}s",
        "--stop-timeout", "10", "--csv", str(run_dir / LOCUST_CSV_PREFIX), "--csv-full-history", "--only-summary",
        "--logfile", str(run_dir / LOCUST_LOG),
    ]  # fmt: skip
    if role == "master":
        cmd += ["--master", "--expect-workers", str(workers), "--master-bind-host", "127.0.0.1",
                "--master-bind-port", str(port)]  # fmt: skip
    return cmd


def _worker_clocks(delivery: Path) -> dict[str, dict[str, float]]:
    """The workers' clock offsets the coordinator put in ``delivery.json`` (empty in-process or if unreadable)."""
    try:
        clocks = orjson.loads(delivery.read_bytes()).get("aggregation", {}).get("clocks")
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return {}
    return clocks if isinstance(clocks, dict) else {}


def _run_time_bound(plan: Plan) -> int:
    """Hard upper bound for the Locust run in seconds; the run normally ends itself much earlier."""
    return int(plan.extra.max_seconds)


class Runner:
    """Runs one scenario into one run folder and returns the judge's exit code."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.children: list[subprocess.Popen[bytes]] = []
        self.run_dirs: list[Path] = []  # every run folder this runner wrote, in order
        self._limits: dict[str, int] = {}  # the embedded server's subscription limits (harness.orchestration.limits)

    def run(self, scenario: Scenario) -> int:
        """Run ``scenario`` into a new run folder, stop every process it started, then judge it."""
        opts = self.options
        record = RunRecord.start(
            opts.out_dir,
            scenario,
            quick=opts.quick,
            target=opts.target,
            target_url=opts.target_url,
            workers=opts.workers,
        )
        self.run_dirs.append(record.path)
        opts.progress(f"[{scenario.name}] run folder {record.path}")
        interrupted: KeyboardInterrupt | None = None
        with contextlib.ExitStack() as shield, contextlib.ExitStack() as started:
            # on leaving `started`: Locust, monitor, server stopped; run.json saved
            started.callback(record.finish)
            server: LocalServer | None = None
            failure: HarnessError | KeyboardInterrupt | None = None
            try:
                t0 = time.time()
                server, spec = self.target(record)
                if server is not None:
                    started.callback(server.stop)
                self._drive(scenario, record, server, spec, t0, started)
            except KeyboardInterrupt as exc:
                shield.enter_context(_signals_held())  # a second Ctrl-C must not leave children behind
                failure = interrupted = exc
                record.incident(Incident.INTERRUPTED, time.time(), str(exc) or "SIGINT")
                opts.progress(f"[{scenario.name}] interrupted: stopping every process, then judging what the run has")
            except HarnessError as exc:
                failure = exc
            record.outcome(*run_outcome(failure, server))
            if failure is not None and interrupted is None:
                opts.progress(f"[{scenario.name}] error: {record.error}")
            started.close()
            record.merge_phases()  # a run cut short (the target failed) keeps the phases Locust logged
            code = self._judge(record)
        if interrupted is not None:
            raise interrupted
        return code

    def _drive(
        self,
        scenario: Scenario,
        record: RunRecord,
        server: LocalServer | None,
        spec: TargetSpec,
        t0: float,
        started: contextlib.ExitStack,
    ) -> None:
        """Set the target up, start the monitor, run Locust and the observation window."""
        opts = self.options
        plan = build_plan(scenario, quick=opts.quick, target=spec, run_id=record.run_id, run_dir=str(record.path))
        plan = self._ramp_slo(plan)
        protocol = self.ready_target(plan, record, server, spec)
        if protocol is not None and spec.name == "kalamdb" and "protocol" not in spec.options:
            # every Locust process (the master too, which never subscribes) then knows the generation's promises
            plan = replace(plan, target=replace(plan.target, options={**plan.target.options, "protocol": protocol}))
        if scenario.nemesis.faults:  # stopped after Locust (callbacks run last-registered first)
            nemesis = NemesisRun(scenario.nemesis, plan, record.path, opts.progress)
            plan = nemesis.start(plan)
            started.callback(nemesis.stop)
        plan_path = record.path / PLAN_JSON
        plan.write(plan_path)
        record.phase("setup", t0, time.time())
        if server is not None:
            self.start_monitor(record.path, server, spec, started)
        opts.progress(
            f"[{scenario.name}] {len(plan.listeners)} listener(s), {len(plan.writers)} writer stream(s), "
            f"target {spec.url}{' (embedded)' if server else ''}, protocol {protocol or 'unknown'}"
        )
        layout = advise(plan, opts.workers, os.cpu_count() or 1, load_capacity())
        for note in layout.notes:
            opts.progress(f"[{scenario.name}] {note}")
        record.record["workers"] = layout.workers
        record.record["layout_notes"] = list(layout.notes)
        record.save()
        started.callback(self._stop_children)
        watch = TargetWatch(
            spec, server, record.incident, interval=opts.watch_interval, limit=opts.unresponsive_limit
        )  # fmt: skip
        watch.start()
        started.callback(watch.stop)
        if scenario.server_restart is not None and server is not None:
            restart = PlannedRestart(
                scenario.server_restart,
                server,
                record,
                watch,
                lambda srv: self.start_monitor(record.path, srv, spec, started),
                lambda text: opts.progress(f"[{scenario.name}] {text}"),
            )
            restart.start()
            started.callback(restart.stop)
        self._run_locust(plan, plan_path, record, watch, layout.workers)
        observe = float(record.profile.get("observe_seconds", 0) or 0)
        if observe > 0:
            opts.progress(f"[{scenario.name}] load stopped; observing the server for {observe:.0f} s")
            t_obs = time.time()
            self.observe(observe, server)
            record.phase("observe", t_obs, time.time())

    def _ramp_slo(self, plan: Plan) -> Plan:
        """A ramp stops by the judge's SLO: the criteria file's (``--criteria``, else the defaults) goes in the plan."""
        ramp = plan.extra.ramp
        if ramp is None:
            return plan
        from reports.criteria import load_criteria

        slo = StepSlo.from_report(load_criteria(self.options.criteria)["report"])
        return dataclasses.replace(plan, extra=dataclasses.replace(plan.extra, ramp=dataclasses.replace(ramp, slo=slo)))

    def target(self, record: RunRecord) -> tuple[LocalServer | None, TargetSpec]:
        """Start the reference server into ``record``'s folder, or check ``--target-url``; return it and its spec."""
        opts = self.options
        if "server_restart" in record.profile and (opts.target_url or opts.target != "ref"):
            raise HarnessError(
                f"scenario {record.profile.get('name')} restarts the embedded reference server (server_restart): "
                "it runs only with --target ref, not against --target-url or another target"
            )
        if opts.target_url:
            if not opts.password:
                raise HarnessError("--target-url needs a password: --password-file FILE or $KALAMDB_PASSWORD")
            return None, TargetSpec("kalamdb", opts.target_url.rstrip("/"), opts.user, opts.password)
        if opts.target == "parse":
            from harness.orchestration.parse_process import recorded_spec, start_parse

            if opts.target_dir is not None:
                return None, recorded_spec(opts.target_dir)
            parse = start_parse(record.path, opts.progress)
            return parse, parse.spec()
        if opts.target != "ref":
            raise HarnessError(f"--target {opts.target} needs --target-url (only ref and parse are started here)")
        scenario_args = [str(a) for a in record.profile.get("server_args", [])]
        self._limits = serve_limits([*scenario_args, *opts.server_args])
        password = "Root-" + secrets.token_hex(8)
        server = start_local_server(record.path, [*scenario_args, *opts.server_args], root_password=password)
        return server, TargetSpec("kalamdb", server.url, "root", password)

    def ready_target(self, plan: Plan, record: RunRecord, server: LocalServer | None, spec: TargetSpec) -> str | None:
        """Check the plan against the server's limits, set the target up, record it; return its protocol."""
        check_limits(plan, self._limits)
        features, protocol = self._setup_target(plan)
        record.target_ready(
            spec.url, features, server.pid if server else None, protocol, server.database_pid if server else None
        )
        return protocol

    def _setup_target(self, plan: Plan) -> tuple[frozenset[str], str | None]:
        """Create the scenario's namespace, table and users; the target's features and protocol generation."""
        from harness.delivery.identity import messages_schema
        from harness.targets import create_target
        from harness.targets.base import TargetError

        try:
            target = create_target(plan.target)
            admin = target.admin()
            try:
                admin.setup(messages_schema(plan))
                if plan.contended:
                    admin.track_commits(messages_schema(plan))
            finally:
                admin.close()
        except TargetError as exc:
            raise HarnessError(f"target setup failed: {exc}") from exc
        return frozenset(target.features), target.protocol

    def start_monitor(
        self, run_dir: Path, server: LocalServer, spec: TargetSpec, started: contextlib.ExitStack
    ) -> None:
        """Start the monitor sidecar on the server; ``started`` stops it when the run ends."""
        from monitors.launch import start_monitor_process, stop_monitor_process

        with (run_dir / MONITOR_LOG).open("ab") as log:
            monitor = start_monitor_process(
                server.pid, run_dir, generator_parent=os.getpid(), target_spec=spec,
                interval=0.5 if self.options.quick else 1.0, database_pid=server.database_pid, stderr=log,
            )  # fmt: skip
        started.callback(stop_monitor_process, monitor)

    def _run_locust(self, plan: Plan, plan_path: Path, record: RunRecord, watch: TargetWatch, count: int) -> None:
        """Start Locust (in-process with ``count`` 0, else a master and ``count`` workers) and wait for it."""
        opts = self.options
        run_dir = record.path
        # Locust must run gevent-patched whatever the caller's environment says.
        env = {k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"}
        env.update({PLAN_ENV: str(plan_path), "PYTHONUNBUFFERED": "1", **plan.secret_env()})
        bound = _run_time_bound(plan)
        port = _free_port()
        role = "master" if count > 0 else "local"
        log = (run_dir / LOCUST_OUT).open("ab")
        t0 = time.time()
        main_proc = subprocess.Popen(
            _locust_cmd(plan, run_dir, bound, role, port, count),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.children.append(main_proc)
        workers = [
            subprocess.Popen(
                _locust_cmd(plan, run_dir, bound, "worker", port, count),
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            for _ in range(count)
        ]
        self.children.extend(workers)
        log.close()
        deadline = time.monotonic() + bound + plan.summary_timeout + 60
        last_note = time.monotonic()
        lost: set[int] = set()
        while main_proc.poll() is None:
            for worker in workers:
                if worker.pid not in lost and worker.poll() not in (None, 0):  # 0: told to quit by the master
                    lost.add(worker.pid)
                    detail = f"Locust worker pid {worker.pid} exited with code {worker.returncode} before the master"
                    record.incident(Incident.WORKER_LOST, time.time(), detail)
                    opts.progress(f"[{plan.scenario}] {detail}; the other workers go on")
            if watch.failed is not None:
                status = (
                    RunStatus.TARGET_CRASHED
                    if watch.failed.kind == Incident.TARGET_EXITED
                    else RunStatus.TARGET_UNRESPONSIVE
                )
                raise TargetFailed(watch.failed.detail, status)
            if time.monotonic() > deadline:
                raise HarnessError(f"Locust did not finish within {bound} s plus grace; stopped it")
            if time.monotonic() - last_note >= 10:
                opts.progress(f"[{plan.scenario}] running for {time.time() - t0:.0f} s ...")
                last_note = time.monotonic()
            time.sleep(0.2)
        record.phase("locust", t0, time.time())
        record.merge_phases()
        if not (run_dir / DELIVERY).exists():
            tail = (run_dir / LOCUST_OUT).read_text(errors="replace").strip().splitlines()[-3:]
            raise HarnessError(
                f"Locust exited with code {main_proc.returncode} without a delivery summary: {' | '.join(tail)}"
            )
        record.clocks(_worker_clocks(run_dir / DELIVERY))

    def observe(self, seconds: float, server: LocalServer | None) -> None:
        """Keep the monitor sampling the server for ``seconds`` after the load (or until it exits)."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and (server is None or server.alive()):
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    def _stop_children(self) -> None:
        for proc in self.children:
            terminate(proc, CHILD_GRACE_SECONDS)
        self.children.clear()

    def _judge(self, record: RunRecord) -> int:
        from reports.judge import judge_run

        return judge_run(record.path, self.options.criteria, history=self.options.history)
