"""The writer of a run folder's ``run.json``: what ran, against what, how far it got and its phases.

``run.json`` is rewritten whole and atomically at each change, so a reader (the judge, or a person
watching a run) never finds it half-known. The names and status values come from the run-folder
contract, ``harness.runfolder``; the judge reads the folder with ``reports.runfolder``.
"""

from __future__ import annotations

import platform
import secrets
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson

from harness.errors import HarnessError
from harness.runfolder import PHASES, RUN_JSON, Incident, RunStatus, write_json_atomic
from harness.scenarios.catalogue import Scenario
from reports.machine import machine_facts


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


class RunRecord:
    """One run folder and its ``run.json`` record, saved after every change."""

    def __init__(self, path: Path, record: dict[str, Any]) -> None:
        self.path = path
        self.record = record
        self._lock = threading.Lock()  # the target watch records incidents from its own thread
        try:
            path.mkdir(parents=True, exist_ok=False)
        except OSError as exc:
            raise HarnessError(f"cannot create the run folder {path}: {exc.strerror or exc}") from exc
        self.save()

    @classmethod
    def start(
        cls, out_dir: Path, scenario: Scenario, *, quick: bool, target: str, target_url: str | None, workers: int
    ) -> RunRecord:
        """Create ``out_dir/<run id>-<scenario>/`` with a ``running`` record of the scenario, target and versions."""
        run_id = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(2)
        return cls(
            out_dir / f"{run_id}-{scenario.name}",
            {
                "run_id": run_id,
                "scenario": scenario.name,
                "profile": scenario.profile(quick),
                "target": {"name": target, "url": target_url, "features": [], "pid": None},
                "versions": _versions(),
                "machine": machine_facts(),
                "workers": workers,
                "started_at": time.time(),
                "ended_at": None,
                "status": RunStatus.RUNNING,
                "error": None,
                "phases": [],
                "incidents": [],
            },
        )

    @property
    def run_id(self) -> str:
        return str(self.record["run_id"])

    @property
    def profile(self) -> dict[str, Any]:
        """The scenario parameters this run uses (quick or full)."""
        profile: dict[str, Any] = self.record["profile"]
        return profile

    @property
    def error(self) -> str | None:
        return self.record["error"]

    def save(self) -> None:
        try:
            with self._lock:
                write_json_atomic(self.path / RUN_JSON, self.record)
        except OSError as exc:
            raise HarnessError(f"cannot write {self.path / RUN_JSON}: {exc.strerror or exc}") from exc

    def target_ready(
        self,
        url: str,
        features: frozenset[str],
        pid: int | None,
        protocol: str | None = None,
        database_pid: int | None = None,
    ) -> None:
        """Record where the target listens, its protocol generation, what it promises and (when local) its pid
        and its database's (Parse's PostgreSQL postmaster)."""
        self.record["target"].update(
            {"url": url, "protocol": protocol, "features": sorted(features), "pid": pid, "database_pid": database_pid}
        )
        self.save()

    def phase(self, name: str, start: float, end: float, **extra: Any) -> None:
        self.record["phases"].append({"name": name, "start": start, "end": end, **extra})
        self.save()

    def merge_phases(self) -> None:
        """Fold the phases the Locust coordinator appended to ``phases.jsonl`` into the record, in time order.

        Called again after a run cut short (the target crashed mid-load) it adds only the phases not in the
        record yet, so the steps a ramp finished before the crash are judged.
        """
        path = self.path / PHASES
        if not path.exists():
            return
        known = {(p.get("name"), p.get("start")) for p in self.record["phases"]}
        for line in path.read_bytes().splitlines():
            try:
                phase = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a line cut short by a dying process
            if isinstance(phase, dict) and {"name", "start", "end"} <= phase.keys():
                if (phase["name"], phase["start"]) not in known:
                    self.record["phases"].append(phase)
        self.record["phases"].sort(key=lambda p: p["start"])
        self.save()

    def clocks(self, clocks: dict[str, dict[str, Any]]) -> None:
        """Record each Locust worker's clock offset to the master (``{offset_s, rtt_s, samples}`` by node id)."""
        self.record["clocks"] = dict(sorted(clocks.items()))

    def incident(self, kind: Incident, t: float, detail: str) -> None:
        """Record something that happened to the target or the harness during the run, with its time."""
        with self._lock:
            self.record.setdefault("incidents", []).append({"kind": kind, "t": t, "detail": detail})
        self.save()

    def server_restart(self, down: float, up: float | None, pid_before: int, pid_after: int | None, at: float) -> None:
        """Record a restart the scenario planned: a ``server_restarts`` entry (times, pids) and an incident."""
        entry = {"at": at, "down": down, "up": up, "pid_before": pid_before, "pid_after": pid_after}
        with self._lock:
            self.record.setdefault("server_restarts", []).append(entry)
        took = f"up again after {up - down:.1f} s as pid {pid_after}" if up is not None else "did not come back"
        self.incident(Incident.SERVER_RESTART, down, f"planned by the scenario at {at:g} s: pid {pid_before} {took}")

    def outcome(self, status: RunStatus, error: str | None) -> None:
        """Record how the run ended (saved by ``finish``)."""
        self.record["status"] = status
        self.record["error"] = error

    def finish(self) -> None:
        """Stamp the end time and save: the last write of ``run.json``."""
        self.record["ended_at"] = time.time()
        self.save()
