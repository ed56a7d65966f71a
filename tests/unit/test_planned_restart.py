"""A server restart the scenario plans (``server_restart``): declared, recorded, and no crash to the judge."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from harness.cli import main as cli_main
from harness.commands.run import _embedded_only
from harness.errors import HarnessError
from harness.orchestration.record import RunRecord
from harness.orchestration.runner import Runner, RunOptions
from harness.scenarios.catalogue import catalogue, parse_catalogue, resolve
from reports.judge import RULES, judge_run
from tests.support.synthetic import T0, Synthetic, write_run

RESTART = """
[scenario."r"]
title = "restart"
server_restart = { at = 1.5 }
writers = [{ conversation = 1, program = [{ op = "insert", count = 4 }] }]
listeners = [{}]
"""


def test_the_catalogue_reads_server_restart_and_records_it_in_the_profile() -> None:
    (scenario,) = parse_catalogue(RESTART, "t.toml", RULES).values()
    assert scenario.server_restart == 1.5
    assert scenario.profile(quick=True)["server_restart"] == {"at": 1.5}
    for bad, words in (("{ at = -1 }", "at must be a number"), ("{ when = 1 }", "unknown key"), ("{}", "needs at")):
        with pytest.raises(HarnessError, match=words):
            parse_catalogue(RESTART.replace("{ at = 1.5 }", bad), "t.toml", RULES)


def test_a_restarting_scenario_is_refused_against_a_target_url(tmp_path: Path) -> None:
    scenario = catalogue(RULES)["live.restart-resume"]
    options = RunOptions(target="kalamdb", target_url="http://127.0.0.1:9", password="x", out_dir=tmp_path)
    record = RunRecord.start(tmp_path, scenario, quick=True, target="kalamdb", target_url=options.target_url, workers=0)
    with pytest.raises(HarnessError, match="restarts the embedded reference server"):
        Runner(options).target(record)


def _sc060(run_dir: Path) -> dict:
    judge_run(run_dir, None, quiet=True, report=False)
    doc = orjson.loads((run_dir / "verdict.json").read_bytes())
    return {c["id"]: c for c in doc["scenarios"][0]["criteria"]}


@pytest.mark.parametrize(("declared", "verdict"), [(True, "pass"), (False, "fail")])
def test_the_stopped_process_of_a_planned_restart_is_no_crash(tmp_path: Path, declared: bool, verdict: str) -> None:
    """The monitor saw the old pid gone; only a restart recorded as planned excuses it."""
    run_dir = write_run(tmp_path, Synthetic(criteria=["SC-060"]))
    with (run_dir / "monitor.jsonl").open("a") as out:
        out.write(json.dumps({"t": T0 + 5.0, "pid": 4241, "alive": False, "rss": None, "uss": None}) + "\n")
    run = json.loads((run_dir / "run.json").read_text())
    if declared:
        run["server_restarts"] = [{"at": 1.0, "down": T0 + 4.9, "up": T0 + 6.0, "pid_before": 4241, "pid_after": 4242}]
        run["incidents"] = [{"kind": "server_restart", "t": T0 + 4.9, "detail": "planned by the scenario at 1 s"}]
    (run_dir / "run.json").write_text(json.dumps(run))
    found = _sc060(run_dir)
    assert found["SC-060"]["verdict"] == verdict
    if declared:
        assert found["RUN"]["verdict"] == "pass" and "server_restart" in found["RUN"]["evidence"]


def test_named_alone_against_a_target_url_it_is_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KALAMDB_PASSWORD", "x")
    assert cli_main(["run", "live.restart-resume", "--target-url", "http://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "restarts the embedded reference server" in err
    assert not (tmp_path / "runs").exists()


def test_in_a_group_against_another_target_it_is_skipped_with_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    group = resolve(["live"], RULES)
    kept = _embedded_only(group, "kalamdb")
    assert [s.name for s in group if s not in kept] == ["live.restart-resume"]
    assert capsys.readouterr().out.strip().splitlines() == [
        "skipped: live.restart-resume (restarts the embedded reference server (server_restart), "
        "which --target ref alone can do)"
    ]
    assert _embedded_only(group, "ref") == group
