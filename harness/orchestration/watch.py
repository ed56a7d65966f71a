"""Watching the target while the load runs: exited, stopped, unresponsive, restarted, each with its time.

A target can fail in ways the load generator cannot tell apart: a crashed server, a stopped one
(SIGSTOP), one that hangs, or one that restarts on the same port and data. The watch probes the
target once a ``interval`` through the target interface (``Admin.stats``, with a short timeout) and,
for the embedded server, looks at its process. Each change of state becomes an incident in
``run.json``; a target that stays unresponsive past ``limit`` seconds ends the run, so it ends in a
verdict within a bounded wall time instead of waiting for every timeout of every user.

A restart the scenario plans (``server_restart``) happens inside ``held()``: the watch does not look
meanwhile, and forgets the old uptime after, so the planned restart is no incident of its own.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import psutil

from harness.orchestration.server import LocalServer
from harness.plan import TargetSpec
from harness.runfolder import Incident

UPTIME_STAT = "server_uptime_seconds"  # a statistic whose decrease means the target restarted
PROBE_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why the watch ends the run: the incident kind and its one-line description."""

    kind: Incident
    detail: str


class TargetWatch:
    """A daemon thread probing the target; ``report`` gets each incident, ``failed`` is set when the run must end."""

    def __init__(
        self,
        spec: TargetSpec,
        server: LocalServer | None,
        report: Callable[[Incident, float, str], None],
        *,
        interval: float = 1.0,
        limit: float = 30.0,
    ) -> None:
        self.spec = dataclasses.replace(spec, options={**spec.options, "timeout": PROBE_TIMEOUT_SECONDS})
        self.server = server
        self.report = report
        self.interval = interval
        self.limit = limit
        self.failed: Verdict | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="target-watch", daemon=True)
        self._down_since: float | None = None
        self._stopped_since: float | None = None
        self._uptime: float | None = None
        self._looking = threading.Lock()

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """No look at the target inside the block (a planned restart); afterwards its uptime starts anew."""
        with self._looking:
            yield
            self._uptime = None
            self._down_since = None
            self._stopped_since = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.interval + PROBE_TIMEOUT_SECONDS * 3)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval) and self.failed is None:
            self.check()

    def check(self) -> None:
        """One look at the target: its process (when embedded), then one statistics probe."""
        with self._looking:
            self._check()

    def _check(self) -> None:
        now = time.time()
        if self.server is not None and not self._process_ok(now):
            return
        error = self._probe()
        if error is None:
            if self._down_since is not None:
                self.report(Incident.TARGET_RESPONSIVE, now, f"answers again after {now - self._down_since:.1f} s")
                self._down_since = None
            return
        if self._down_since is None:
            self._down_since = now
            self.report(Incident.TARGET_UNRESPONSIVE, now, error)
        elif now - self._down_since > self.limit:
            detail = f"no answer for {now - self._down_since:.0f} s (limit {self.limit:g} s): {error}"
            self.failed = Verdict(Incident.TARGET_UNRESPONSIVE, detail)

    def _process_ok(self, now: float) -> bool:
        """False when the embedded server exited or is stopped (reported once; past ``limit``: failed)."""
        assert self.server is not None
        code = self.server.proc.poll()
        if code is not None:
            self.failed = Verdict(Incident.TARGET_EXITED, f"reference server exited with code {code}")
            self.report(Incident.TARGET_EXITED, now, self.failed.detail)
            return False
        try:
            stopped = psutil.Process(self.server.pid).status() == psutil.STATUS_STOPPED
        except psutil.Error:
            return True  # gone between the two looks: the next look sees the exit
        if not stopped:
            self._stopped_since = None
            return True
        if self._stopped_since is None:
            self._stopped_since = now
            self.report(Incident.TARGET_STOPPED, now, f"process {self.server.pid} is stopped (SIGSTOP)")
        elif now - self._stopped_since > self.limit:
            detail = f"process {self.server.pid} stopped for {now - self._stopped_since:.0f} s (limit {self.limit:g} s)"
            self.failed = Verdict(Incident.TARGET_STOPPED, detail)
        return False

    def _probe(self) -> str | None:
        """None when the target answered its statistics; else why not. Notes a restart from its uptime."""
        from harness.targets import create_target
        from harness.targets.base import TargetError

        try:
            admin = create_target(self.spec).admin()
            try:
                stats = admin.stats() or {}
            finally:
                admin.close()
        except TargetError as exc:
            return str(exc)
        try:
            uptime = float(stats[UPTIME_STAT])
        except (KeyError, ValueError):
            return None
        if self._uptime is not None and uptime + self.interval < self._uptime:
            self.report(
                Incident.TARGET_RESTARTED, time.time(), f"uptime fell from {self._uptime:.0f} s to {uptime:.0f} s"
            )
        self._uptime = uptime
        return None
