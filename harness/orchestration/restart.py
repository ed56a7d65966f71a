"""A server restart the scenario plans (``server_restart = { at = S }``): part of the scenario, not a crash.

``S`` seconds after every listener is ready (when the writers start, the clock nemesis faults use),
the runner stops the embedded reference server and starts it again on the same port and data; the
monitor follows the new process. Each restart is a ``server_restarts`` entry in ``run.json`` (when it
went down and came up, the pids) and a ``server_restart`` incident, so the judge tells it from a
crash (SC-060, RUN). Only the embedded server can be restarted: against ``--target-url`` the runner
refuses such a scenario before it starts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from harness.errors import HarnessError
from harness.orchestration.nemesis import subscribed_at
from harness.orchestration.record import RunRecord
from harness.orchestration.server import LocalServer
from harness.orchestration.watch import TargetWatch

POLL_SECONDS = 0.1


class PlannedRestart:
    """A thread restarting ``server`` once, ``at`` seconds after the subscribe phase ended."""

    def __init__(
        self,
        at: float,
        server: LocalServer,
        record: RunRecord,
        watch: TargetWatch,
        on_restart: Callable[[LocalServer], None],
        progress: Callable[[str], None],
    ) -> None:
        self.at = at
        self.server = server
        self.record = record
        self.watch = watch
        self.on_restart = on_restart
        self.progress = progress
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._play, name="server-restart", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30.0)

    def _play(self) -> None:
        run_dir = Path(self.record.path)
        while (origin := subscribed_at(run_dir)) is None:
            if self._stop.wait(POLL_SECONDS):
                return
        if self._stop.wait(max(0.0, origin + self.at - time.time())):
            return
        pid = self.server.pid
        with self.watch.held():
            down = time.time()
            try:
                up: float | None = self.server.restart()
            except HarnessError as exc:
                up = None
                self.progress(f"server restart: {exc}")
            self.record.server_restart(down, up, pid, self.server.pid if up is not None else None, self.at)
        if up is not None:
            self.progress(f"server restarted (planned at {self.at:g} s): pid {pid} -> {self.server.pid}")
            self.on_restart(self.server)
