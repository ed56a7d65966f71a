"""Incidents during a run: the target watch's states, and the RUN criterion that names them with their time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from harness.orchestration.watch import TargetWatch
from harness.plan import TargetSpec
from harness.runfolder import Incident, RunStatus
from harness.targets.base import TargetError
from reports.rules_server import run_completed
from reports.runfolder import load_run_folder
from tests.support.synthetic import T0, Synthetic, write_run

SPEC = TargetSpec("kalamdb", "http://127.0.0.1:9", "root", "pw")


class FakeAdmin:
    """An admin whose ``stats`` answers from a script: a dict, or an exception to raise."""

    def __init__(self, script: list[Any]) -> None:
        self.script = script

    def stats(self) -> dict[str, str]:
        answer = self.script.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return dict(answer)

    def close(self) -> None:
        pass


def _watch(monkeypatch: pytest.MonkeyPatch, script: list[Any], limit: float = 30.0) -> tuple[TargetWatch, list]:
    admin = FakeAdmin(script)
    monkeypatch.setattr("harness.targets.create_target", lambda spec: type("T", (), {"admin": lambda self: admin})())
    seen: list[tuple[Incident, str]] = []
    watch = TargetWatch(SPEC, None, lambda kind, _t, detail: seen.append((kind, detail)), limit=limit)
    return watch, seen


def test_a_silent_target_is_unresponsive_once_then_responsive(monkeypatch: pytest.MonkeyPatch) -> None:
    down = TargetError("cannot reach the server")
    watch, seen = _watch(monkeypatch, [{"server_uptime_seconds": "5"}, down, down, {"server_uptime_seconds": "9"}])
    for _ in range(4):
        watch.check()
    assert [k for k, _ in seen] == [Incident.TARGET_UNRESPONSIVE, Incident.TARGET_RESPONSIVE]
    assert seen[0][1] == "cannot reach the server" and watch.failed is None


def test_a_target_silent_past_the_limit_fails_the_watch(monkeypatch: pytest.MonkeyPatch) -> None:
    down = TargetError("timed out")
    watch, _ = _watch(monkeypatch, [down, down], limit=0.0)
    watch.check()
    assert watch.failed is None
    watch.check()
    assert watch.failed is not None and watch.failed.kind is Incident.TARGET_UNRESPONSIVE
    assert "limit 0 s" in watch.failed.detail and "timed out" in watch.failed.detail


def test_uptime_falling_is_a_restart(monkeypatch: pytest.MonkeyPatch) -> None:
    watch, seen = _watch(monkeypatch, [{"server_uptime_seconds": "100"}, {"server_uptime_seconds": "2"}, {}])
    for _ in range(3):
        watch.check()
    assert [k for k, _ in seen] == [Incident.TARGET_RESTARTED] and "100 s to 2 s" in seen[0][1]


def _folder(tmp_path: Path, status: str, incidents: list[tuple[str, float, str]], error: str | None = None) -> Any:
    path = write_run(tmp_path, Synthetic(status=status, error=error))
    run = orjson.loads((path / "run.json").read_bytes())
    run["incidents"] = [{"kind": k, "t": T0 + t, "detail": d} for k, t, d in incidents]
    (path / "run.json").write_bytes(orjson.dumps(run))
    return load_run_folder(path)


@pytest.mark.parametrize(
    ("status", "incidents", "verdict", "words"),
    [
        (RunStatus.COMPLETED, [], None, ""),
        (RunStatus.COMPLETED, [("target_unresponsive", 12.5, "timed out"), ("target_responsive", 14, "ok")], "pass",
         "+12.5 s target_unresponsive: timed out"),
        (RunStatus.COMPLETED, [("target_restarted", 30, "uptime fell")], "fail", "+30.0 s target_restarted"),
        (RunStatus.COMPLETED, [("worker_lost", 20, "Locust worker pid 7 exited")], "inconclusive", "worker pid 7"),
        (RunStatus.TARGET_UNRESPONSIVE, [("target_stopped", 8, "process 1 stopped")], "fail", "+8.0 s target_stopped"),
        (RunStatus.INTERRUPTED, [("interrupted", 9, "SIGTERM")], "inconclusive", "+9.0 s interrupted: SIGTERM"),
    ],
)  # fmt: skip
def test_run_criterion_names_each_incident_and_its_time(
    tmp_path: Path, status: str, incidents: list, verdict: str | None, words: str
) -> None:
    finding = run_completed(_folder(tmp_path, status, incidents, error="stopped"))
    if verdict is None:
        assert finding is None
        return
    assert finding is not None and finding.verdict == verdict and words in str(finding.evidence)
