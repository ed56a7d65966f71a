"""run.json's writer and the status a run ends with: the run-folder contract as the runner writes it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from harness.errors import HarnessError
from harness.orchestration.record import RunRecord
from harness.orchestration.runner import run_outcome
from harness.orchestration.server import LocalServer
from harness.processes import terminate
from harness.runfolder import PHASES, RUN_JSON, RunStatus
from harness.scenarios.catalogue import resolve
from reports.judge import RULES


def server(tmp_path: Path, code: int | None) -> Iterator[LocalServer]:
    """A LocalServer around a child that exited with ``code``, or that is still running (None)."""
    script = "import time; time.sleep(60)" if code is None else f"raise SystemExit({code})"
    proc = subprocess.Popen([sys.executable, "-c", script])
    if code is not None:
        proc.wait(10)
    try:
        yield LocalServer(proc=proc, url="http://127.0.0.1:9", root_password=None, log_path=tmp_path / "x.log")
    finally:
        terminate(proc, 1)


@pytest.fixture
def alive(tmp_path: Path) -> Iterator[LocalServer]:
    yield from server(tmp_path, None)


@pytest.fixture
def crashed(tmp_path: Path) -> Iterator[LocalServer]:
    yield from server(tmp_path, 3)


def test_a_run_that_ended_by_itself_completed_unless_its_server_is_gone(
    alive: LocalServer, crashed: LocalServer
) -> None:
    assert run_outcome(None, None) == (RunStatus.COMPLETED, None)
    assert run_outcome(None, alive) == (RunStatus.COMPLETED, None)
    assert run_outcome(None, crashed) == (RunStatus.TARGET_CRASHED, "reference server exited with code 3")


def test_a_failure_is_a_harness_error_unless_the_server_crashed_first(alive: LocalServer, crashed: LocalServer) -> None:
    assert run_outcome(HarnessError("no"), alive) == (RunStatus.HARNESS_ERROR, "no")
    assert run_outcome(HarnessError("no"), crashed) == (
        RunStatus.TARGET_CRASHED,
        "reference server exited with code 3; then: no",
    )
    assert run_outcome(KeyboardInterrupt(), crashed) == (RunStatus.INTERRUPTED, "interrupted")
    assert run_outcome(KeyboardInterrupt("SIGTERM"), alive) == (RunStatus.INTERRUPTED, "interrupted by SIGTERM")


def test_run_json_is_written_at_start_and_folds_in_the_coordinators_phases(tmp_path: Path) -> None:
    scenario = resolve(["live.inserts"], RULES)[0]
    record = RunRecord.start(tmp_path, scenario, quick=True, target="ref", target_url=None, workers=0)
    saved = orjson.loads((record.path / RUN_JSON).read_bytes())
    assert saved["status"] == "running" and saved["scenario"] == "live.inserts" and saved["ended_at"] is None
    record.phase("setup", 1.0, 2.0)
    (record.path / PHASES).write_bytes(b'{"name": "load", "start": 3, "end": 4}\n{"name": "drain", "sta')
    record.merge_phases()
    record.outcome(RunStatus.COMPLETED, None)
    record.finish()
    saved = orjson.loads((record.path / RUN_JSON).read_bytes())
    assert [p["name"] for p in saved["phases"]] == ["setup", "load"]
    assert saved["status"] == "completed" and saved["ended_at"] is not None


def test_folding_the_phases_again_adds_only_the_new_ones(tmp_path: Path) -> None:
    # the runner folds phases.jsonl once Locust ends, and again after a run cut short (the target crashed)
    record = RunRecord.start(
        tmp_path, resolve(["live.inserts"], RULES)[0], quick=True, target="ref", target_url=None, workers=0
    )
    (record.path / PHASES).write_bytes(b'{"name": "step-1", "start": 3, "end": 4}\n')
    record.merge_phases()
    with (record.path / PHASES).open("ab") as f:
        f.write(b'{"name": "step-2", "start": 4, "end": 5}\n')
    record.merge_phases()
    saved = orjson.loads((record.path / RUN_JSON).read_bytes())
    assert [p["name"] for p in saved["phases"]] == ["step-1", "step-2"]


def test_an_unusable_out_dir_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    scenario = resolve(["live.inserts"], RULES)[0]
    with pytest.raises(HarnessError, match="cannot create the run folder"):
        RunRecord.start(tmp_path / "file", scenario, quick=True, target="ref", target_url=None, workers=0)
