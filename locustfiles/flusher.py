"""The flush user (``extra.flush_every_seconds``): periodic storage flushes during the load,
each job followed to its end.

Every ``flush_every_seconds`` from the writers' start until the load is over it asks the
target to flush the run's table (KalamDB: ``STORAGE FLUSH TABLE``), one Locust ``FLUSH``
request named ``flush`` per call. It polls the jobs it started; a job seen ending fires a
``FLUSH`` request named ``job`` timed from its start to that poll (a failure unless it
completed). After the load it polls the jobs still open for up to ``job_timeout_seconds``
and reports every job's last status to the coordinator (``target.json["jobs"]``).
"""

from __future__ import annotations

import math
import time
from typing import Any

import gevent

from harness.targets.base import Admin, Schema, TargetError
from locustfiles.context import RunContext
from locustfiles.link import UserLink
from locustfiles.messages import FlushFinal
from locustfiles.users import OneShotUser

TERMINAL = frozenset({"completed", "failed", "cancelled", "skipped"})
POLL_SECONDS = 0.5


class FlushFailed(Exception):
    """A flush the target refused, or a job that ended other than completed (a FLUSH failure in Locust)."""


class Flusher:
    """The jobs one flush user started: their last status and when each started."""

    def __init__(self, admin: Admin, schema: Schema, fire: Any) -> None:
        self.admin = admin
        self.schema = schema
        self.fire = fire  # fire(name, started_perf, error or None)
        self.jobs: dict[str, str] = {}  # job id -> last status seen
        self.open: dict[str, float] = {}  # job id -> perf_counter at start, until it ends
        self.skipped = 0
        self.errors: list[str] = []

    def flush(self) -> None:
        started = time.perf_counter()
        try:
            job_id = self.admin.flush(self.schema)
        except TargetError as exc:
            self.errors.append(f"flush refused: {exc}")
            self.fire("flush", started, str(exc))
            return
        self.fire("flush", started, None)
        if job_id is None:
            self.skipped += 1
        else:
            self.jobs[job_id] = "started"
            self.open[job_id] = started

    def poll(self) -> None:
        """Read the status of every open job once; fire ``job`` for each one that ended."""
        for job_id, started in list(self.open.items()):
            try:
                status = self.admin.job_status(job_id)
            except TargetError as exc:
                self.errors.append(f"job {job_id} status: {exc}")
                continue
            self.jobs[job_id] = status or "unknown"
            if status is not None and status.lower() in TERMINAL:
                del self.open[job_id]
                ok = status.lower() == "completed"
                self.fire("job", started, None if ok else f"job {job_id} ended {status}")

    def report(self) -> FlushFinal:
        """The final message: every job's last status, skipped flushes, the first distinct errors."""
        error = "; ".join(list(dict.fromkeys(self.errors))[:5]) or None
        return FlushFinal(dict(self.jobs), self.skipped, error)


class FlushUser(OneShotUser):
    """Flushes the table periodically while the load runs, then waits for its jobs and reports them."""

    def run_once(self, ctx: RunContext, link: UserLink) -> None:
        settings = ctx.plan.extra.flush
        if settings is None or link.claim("flush", timeout=ctx.plan.ready_timeout) is None:
            return
        report = FlushFinal()
        admin = None
        try:
            go = link.wait_go(ctx.go_timeout)
            if go is None:
                report = FlushFinal(error="flush: no go from the coordinator in time")
            elif go:
                admin = ctx.target.admin()
                flusher = Flusher(admin, ctx.schema, self._fire)
                deadline = time.monotonic() + ctx.max_seconds
                self._during_load(flusher, settings.every_seconds, deadline, link)
                job_deadline = min(deadline, time.monotonic() + settings.job_timeout_seconds)
                for _ in range(math.ceil(settings.job_timeout_seconds / POLL_SECONDS) + 1):
                    flusher.poll()
                    if not flusher.open or time.monotonic() >= job_deadline:
                        break
                    gevent.sleep(POLL_SECONDS)
                report = flusher.report()
        except TargetError as exc:
            report = FlushFinal(error=f"flush: {exc}")
        finally:
            if admin is not None:
                admin.close()
            link.send(report)

    @staticmethod
    def _during_load(flusher: Flusher, every: float, deadline: float, link: UserLink) -> None:
        next_flush = time.monotonic() + every
        for _ in range(2 * math.ceil((deadline - time.monotonic()) / min(every, POLL_SECONDS)) + 2):
            if link.winding_down() or time.monotonic() >= deadline:
                return
            if time.monotonic() >= next_flush:
                flusher.flush()
                next_flush = max(next_flush + every, time.monotonic())
            flusher.poll()
            link.load_done.wait(timeout=max(0.0, min(POLL_SECONDS, next_flush - time.monotonic())))

    def _fire(self, name: str, started: float, error: str | None) -> None:
        self.fire("FLUSH", name, (time.perf_counter() - started) * 1000.0, FlushFailed(error) if error else None)
