"""One run of one scenario, end to end: target, monitor, Locust, run folder, judge.

Locust runs as its own processes (one local runner, or a master and N workers) with
the plan handed over as a file, so the runner process never needs gevent patching and
the monitor can tell the load generator's processes apart from the server's.
"""

from __future__ import annotations

import os
import platform
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import orjson

from harness.errors import HarnessError
from harness.orchestration.server import LocalServer, start_local_server
from harness.plan import PLAN_ENV, Plan, TargetSpec
from harness.scenarios.catalogue import Scenario, build_plan
from locustfiles import users_needed

EXIT_PASS, EXIT_FAIL, EXIT_INCONCLUSIVE = 0, 1, 2


@dataclass(frozen=True, slots=True)
class RunOptions:
    """How to run: which target, how many Locust workers, quick or full, where to write."""

    target: str = "ref"  # ref (start the reference server) or kalamdb (use --target-url)
    target_url: str | None = None
    user: str = "root"
    password: str | None = None
    workers: int = 0  # 0 = one in-process Locust runner; N = master + N worker processes
    quick: bool = False
    out_dir: Path = Path("runs")
    criteria: Path | None = None
    server_args: tuple[str, ...] = ()  # extra `lqharness serve` flags (faults, limits) for the ref target
    progress: Callable[[str], None] = print


class RunFolder:
    """The run folder and its ``run.json``, rewritten whole at each change so it is never half-known."""

    def __init__(self, path: Path, record: dict[str, Any]) -> None:
        self.path = path
        self.record = record
        path.mkdir(parents=True, exist_ok=False)
        self.save()

    def save(self) -> None:
        tmp = self.path / "run.json.tmp"
        tmp.write_bytes(orjson.dumps(self.record, option=orjson.OPT_INDENT_2))
        tmp.replace(self.path / "run.json")

    def phase(self, name: str, start: float, end: float, **extra: Any) -> None:
        self.record["phases"].append({"name": name, "start": start, "end": end, **extra})
        self.save()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _versions() -> dict[str, str]:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "unknown"

    return {
        "harness": version("livequery-harness"),
        "locust": version("locust"),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _locustfile() -> str:
    return str(resources.files("locustfiles").joinpath("live.py"))


def _locust_cmd(plan: Plan, run_dir: Path, run_time: int, role: str, port: int, workers: int) -> list[str]:
    users = users_needed(plan)
    base = [sys.executable, "-m", "locust", "-f", _locustfile(), "--loglevel", "WARNING"]
    if role == "worker":
        return [*base, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    cmd = [
        *base, "--headless", "-u", str(users), "-r", str(max(users, 1)), "--run-time", f"{run_time}s",
        "--stop-timeout", "10", "--csv", str(run_dir / "locust"), "--csv-full-history", "--only-summary",
        "--logfile", str(run_dir / "locust.log"),
    ]  # fmt: skip
    if role == "master":
        cmd += ["--master", "--expect-workers", str(workers), "--master-bind-host", "127.0.0.1",
                "--master-bind-port", str(port)]  # fmt: skip
    return cmd


def _run_time_bound(plan: Plan) -> int:
    """Hard upper bound for the Locust run in seconds; the run normally ends itself much earlier."""
    return int(plan.extra.get("max_seconds", 180 if plan.extra.get("quick") else 900))


class Runner:
    """Runs one scenario into one run folder and returns the judge's exit code."""

    def __init__(self, options: RunOptions) -> None:
        self.options = options
        self.children: list[subprocess.Popen[bytes]] = []
        self.run_dirs: list[Path] = []  # every run folder this runner wrote, in order

    def run(self, scenario: Scenario) -> int:
        opts = self.options
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
        folder = RunFolder(
            opts.out_dir / f"{run_id}-{scenario.name}",
            {
                "run_id": run_id,
                "scenario": scenario.name,
                "profile": scenario.profile(opts.quick),
                "target": {"name": opts.target, "url": opts.target_url, "features": [], "pid": None},
                "versions": _versions(),
                "workers": opts.workers,
                "started_at": time.time(),
                "ended_at": None,
                "status": "running",
                "error": None,
                "phases": [],
            },
        )
        self.run_dirs.append(folder.path)
        opts.progress(f"[{scenario.name}] run folder {folder.path}")
        server: LocalServer | None = None
        monitor: subprocess.Popen[bytes] | None = None
        try:
            t0 = time.time()
            server, spec = self._target(folder)
            plan = build_plan(scenario, quick=opts.quick, target=spec, run_id=run_id, run_dir=str(folder.path))
            plan_path = folder.path / "plan.json"
            plan.write(plan_path)
            features = self._setup_target(plan)
            folder.record["target"].update(
                {"url": spec.url, "features": sorted(features), "pid": server.pid if server else None}
            )
            folder.phase("setup", t0, time.time())
            if server is not None:
                monitor = self._start_monitor(folder.path, server, spec)
            opts.progress(
                f"[{scenario.name}] {len(plan.listeners)} listener(s), {len(plan.writers)} writer stream(s), "
                f"target {spec.url}{' (embedded)' if server else ''}"
            )
            self._run_locust(plan, plan_path, folder)
            observe = float(folder.record["profile"].get("observe_seconds", 0) or 0)
            if observe > 0:
                opts.progress(f"[{scenario.name}] load stopped; observing the server for {observe:.0f} s")
                t_obs = time.time()
                self._observe(observe, server)
                folder.phase("observe", t_obs, time.time())
            if server is not None and not server.alive():
                folder.record["status"] = "target_crashed"
                folder.record["error"] = f"reference server exited with code {server.proc.returncode}"
            else:
                folder.record["status"] = "completed"
        except HarnessError as exc:
            crashed = server is not None and not server.alive()
            folder.record["status"] = "target_crashed" if crashed else "harness_error"
            folder.record["error"] = (
                f"reference server exited with code {server.proc.returncode}; then: {exc}" if crashed else str(exc)
            )
            opts.progress(f"[{scenario.name}] error: {folder.record['error']}")
        except KeyboardInterrupt:
            folder.record["status"] = "harness_error"
            folder.record["error"] = "interrupted"
            raise
        finally:
            self._stop_children()
            if monitor is not None:
                from monitors.launch import stop_monitor_process

                stop_monitor_process(monitor)
            if server is not None:
                server.stop()
            folder.record["ended_at"] = time.time()
            folder.save()
        return self._judge(folder)

    def _target(self, folder: RunFolder) -> tuple[LocalServer | None, TargetSpec]:
        opts = self.options
        if opts.target_url:
            if not opts.password:
                raise HarnessError("--target-url needs a password: --password or KALAMDB_PASSWORD")
            return None, TargetSpec("kalamdb", opts.target_url.rstrip("/"), opts.user, opts.password)
        if opts.target != "ref":
            raise HarnessError(f"--target {opts.target} needs --target-url (only 'ref' is started by the harness)")
        scenario_args = [str(a) for a in folder.record["profile"].get("server_args", [])]
        server = start_local_server(folder.path, [*scenario_args, *opts.server_args])
        return server, TargetSpec("kalamdb", server.url, "root", server.root_password)

    def _setup_target(self, plan: Plan) -> frozenset[str]:
        from harness.delivery.identity import messages_schema
        from harness.targets import create_target
        from harness.targets.base import TargetError

        try:
            target = create_target(plan.target)
            admin = target.admin()
            try:
                admin.setup(messages_schema(plan))
            finally:
                admin.close()
        except TargetError as exc:
            raise HarnessError(f"target setup failed: {exc}") from exc
        return frozenset(target.features)

    def _start_monitor(self, run_dir: Path, server: LocalServer, spec: TargetSpec) -> subprocess.Popen[bytes]:
        from monitors.launch import start_monitor_process

        log = (run_dir / "monitor.log").open("ab")
        try:
            return start_monitor_process(
                server.pid, run_dir, generator_parent=os.getpid(), target_spec=spec,
                interval=0.5 if self.options.quick else 1.0, stderr=log,
            )  # fmt: skip
        finally:
            log.close()

    def _run_locust(self, plan: Plan, plan_path: Path, folder: RunFolder) -> None:
        opts = self.options
        run_dir = folder.path
        # Locust must run gevent-patched whatever the caller's environment says.
        env = {k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"}
        env.update({PLAN_ENV: str(plan_path), "PYTHONUNBUFFERED": "1"})
        bound = _run_time_bound(plan)
        port = _free_port()
        role = "master" if opts.workers > 0 else "local"
        log = (run_dir / "locust.out").open("ab")
        t0 = time.time()
        main_proc = subprocess.Popen(
            _locust_cmd(plan, run_dir, bound, role, port, opts.workers),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.children.append(main_proc)
        for _ in range(opts.workers):
            self.children.append(
                subprocess.Popen(
                    _locust_cmd(plan, run_dir, bound, "worker", port, opts.workers),
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )  # fmt: skip
            )
        log.close()
        deadline = time.monotonic() + bound + plan.summary_timeout + 60
        last_note = time.monotonic()
        while main_proc.poll() is None:
            if time.monotonic() > deadline:
                raise HarnessError(f"Locust did not finish within {bound} s plus grace; stopped it")
            if time.monotonic() - last_note >= 10:
                opts.progress(f"[{plan.scenario}] running for {time.time() - t0:.0f} s ...")
                last_note = time.monotonic()
            time.sleep(0.2)
        folder.phase("locust", t0, time.time())
        self._merge_phases(folder)
        if not (run_dir / "delivery.json").exists():
            tail = (run_dir / "locust.out").read_text(errors="replace").strip().splitlines()[-3:]
            raise HarnessError(
                f"Locust exited with code {main_proc.returncode} without a delivery summary: {' | '.join(tail)}"
            )

    @staticmethod
    def _merge_phases(folder: RunFolder) -> None:
        """Fold the phases the Locust coordinator appended to ``phases.jsonl`` into run.json."""
        path = folder.path / "phases.jsonl"
        if not path.exists():
            return
        for line in path.read_bytes().splitlines():
            try:
                phase = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a line cut short by a dying process
            if isinstance(phase, dict) and {"name", "start", "end"} <= phase.keys():
                folder.record["phases"].append(phase)
        folder.record["phases"].sort(key=lambda p: p["start"])
        folder.save()

    def _observe(self, seconds: float, server: LocalServer | None) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and (server is None or server.alive()):
            time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))

    def _stop_children(self) -> None:
        for proc in self.children:
            _terminate(proc, 15)
        self.children.clear()

    def _judge(self, folder: RunFolder) -> int:
        from reports.judge import judge_run

        return judge_run(folder.path, self.options.criteria)


def _terminate(proc: subprocess.Popen[bytes], timeout: float) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def combine(codes: list[int]) -> int:
    """A group's exit code: fail if any failed, else inconclusive if any was, else pass."""
    if EXIT_FAIL in codes:
        return EXIT_FAIL
    if any(c != EXIT_PASS for c in codes):
        return EXIT_INCONCLUSIVE
    return EXIT_PASS
