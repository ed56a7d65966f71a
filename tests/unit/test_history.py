"""The run history store and its commands: SQLite beside the runs, Alembic's schema equal to the models,
runs recorded once by run id (judging again changes nothing), and a REGRESSION judged after the run."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import orjson
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from harness.cli import main as cli_main
from harness.errors import HarnessError
from reports.history import VERSION_TABLE, Base, HistoryStore, open_history, store_url
from reports.judge import judge_run
from reports.tracked import HistoryRun, RunFacts
from tests.support.history import regression, synthetic_run

MACHINE = {"cpu_model": "Test CPU", "cores": 4, "memory_mib": 8192, "kernel": "6.1.0"}


def a_run(n: int, verdict: str = "pass", **metrics: float) -> HistoryRun:
    facts = RunFacts(f"run-{n}", "live.x", "quick", "ref", "1.0", "0.1.0", MACHINE, 1000.0 + n, f"runs/run-{n}")
    return HistoryRun(facts, verdict, {"SC-051": verdict}, dict(metrics) or {"delivery_p99_ms": 10.0 + n}, 5.0)


def test_store_records_a_run_once_and_reads_it_back(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.sqlite") as store:
        assert store.record(a_run(1, delivery_p99_ms=11.5, writes_per_s=900.0))
        assert not store.record(a_run(1, delivery_p99_ms=99.0))  # the same run id again: the first stands
        store.record(a_run(2, verdict="fail"))
    with HistoryStore(tmp_path / "h.sqlite") as store:
        runs = store.runs("live.x")
        assert [r.facts.run_id for r in runs] == ["run-1", "run-2"]
        assert runs[0].metrics == {"delivery_p99_ms": 11.5, "writes_per_s": 900.0}
        assert runs[0].facts.machine == MACHINE and runs[1].verdict == "fail" and runs[1].verdicts == {"SC-051": "fail"}
        assert store.runs("other") == [] and store.get("nope") is None
        assert store.pin("run-1").facts.run_id == "run-1"
        assert store.pinned("live.x", "quick", runs[0].facts.fingerprint) == runs[0]
        assert [p.run_id for p in store.pins()] == ["run-1"]
        store.pin("run-2")  # replaces the pin of the same scenario, profile and machine
        assert [p.run_id for p in store.pins()] == ["run-2"]
        assert store.unpin("live.x", "quick", runs[0].facts.fingerprint)
        assert store.pins() == [] and not store.unpin("live.x", "quick", runs[0].facts.fingerprint)
        with pytest.raises(HarnessError, match="run-9 is not in the history"):
            store.pin("run-9")


def test_the_migrated_schema_is_the_models_schema(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.sqlite") as store, store.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert [d for d in diff if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)] == []


def test_store_locations_and_their_errors(tmp_path: Path) -> None:
    assert store_url(tmp_path / "h.sqlite").render_as_string() == f"sqlite:///{tmp_path / 'h.sqlite'}"
    assert store_url("postgresql://u:p@127.0.0.1:5/db").drivername == "postgresql+psycopg"
    with pytest.raises(HarnessError, match="'mysql' is not supported"):
        store_url("mysql://x/y")
    with pytest.raises(HarnessError, match="does not exist"):
        store_url(tmp_path / "missing" / "h.sqlite")
    with pytest.raises(HarnessError, match="no history at"):
        open_history(tmp_path / "none.sqlite", must_exist=True)
    assert not (tmp_path / "none.sqlite").exists()
    with pytest.raises(HarnessError, match="cannot open") as caught:
        HistoryStore("postgresql://nobody:secret@127.0.0.1:1/none")
    assert "secret" not in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.timeout(120)
def test_judge_records_compares_and_judging_again_changes_nothing(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    firsts = [synthetic_run(runs, n) for n in range(3)]
    for folder in firsts:
        assert judge_run(folder, quiet=True, report=False) == 0
        assert regression(folder)["verdict"] == "n/a"
    slow = synthetic_run(runs, 3, p99=30.0)
    assert judge_run(slow, quiet=True) == 1
    found = regression(slow)
    assert (
        found["verdict"] == "fail"
        and "delivery latency p99 (delivery_p99_ms): baseline 20 ms, current 30 ms" in (found["evidence"])
    )
    assert [m["name"] for m in found["metrics"] if m["regressed"]] == ["delivery_p99_ms"]
    cases = {c.get("name"): c for c in ET.parse(slow / "junit.xml").getroot().iter("testcase")}
    assert cases["REGRESSION delivery_p99_ms"].find("failure") is not None
    html = (slow / "report.html").read_text()
    assert 'id="trend"' in html and 'id="fig-trend"' in html and "noise band" in html

    with HistoryStore(runs / "history.sqlite") as store:
        before = [r.to_dict() for r in store.runs()]
    assert len(before) == 4 and before[3]["verdict"] == "fail" and before[3]["verdicts"]["REGRESSION"] == "fail"
    loose = tmp_path / "loose.toml"
    loose.write_text("[REGRESSION]\ndelivery_p99_ms = 90.0\n")
    assert judge_run(slow, loose, quiet=True, report=False) == 0  # judged again, more leniently
    assert judge_run(firsts[0], quiet=True, report=False) == 0
    assert regression(firsts[0])["verdict"] == "n/a"  # still compared only with what came before it
    with HistoryStore(runs / "history.sqlite") as store:
        assert [r.to_dict() for r in store.runs()] == before


def test_an_unusable_history_makes_regression_inconclusive_and_the_verdict_is_still_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = synthetic_run(tmp_path / "runs", 0)
    assert judge_run(folder, quiet=True, report=False, history="postgresql://nobody@127.0.0.1:1/none") == 2
    assert regression(folder)["verdict"] == "inconclusive"
    assert "history could not be used" in regression(folder)["evidence"]
    assert "warning: run not recorded" in capsys.readouterr().err


def test_history_baseline_and_compare_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = tmp_path / "runs"
    folders = [synthetic_run(runs, n, p99=20.0 + n) for n in range(3)]
    for folder in folders:
        judge_run(folder, quiet=True, report=False)
    history = str(runs / "history.sqlite")
    capsys.readouterr()

    assert cli_main(["history", "--history", history]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["started", "run", "id"] and len(lines) == 4
    assert cli_main(["history", "stress.synthetic", "--history", history, "--json"]) == 0
    records = orjson.loads(capsys.readouterr().out)
    assert [r["metrics"]["delivery_p99_ms"] for r in records] == [20.0, 21.0, 22.0]

    assert cli_main(["baseline", "set", str(folders[0])]) == 0
    assert "20240101-000000-abcd" in capsys.readouterr().out
    assert cli_main(["history", "--history", history]) == 0
    assert "20240101-000000-abcd*" in capsys.readouterr().out
    assert cli_main(["baseline", "show", "--history", history]) == 0
    assert "stress.synthetic  quick" in capsys.readouterr().out

    slow = synthetic_run(runs, 3, p99=40.0)
    assert cli_main(["compare", str(slow)]) == 1  # not judged, not recorded: compared with the pin (20 ms)
    out = capsys.readouterr().out
    assert "REGRESSION FAIL" in out and "pinned baseline 20240101-000000-abcd" in out
    assert cli_main(["compare", str(slow), "--baseline", str(folders[2]), "--json"]) == 1
    metrics = {m["name"]: m for m in orjson.loads(capsys.readouterr().out)["metrics"]}
    assert metrics["delivery_p99_ms"]["baseline"] == 22.0 and metrics["delivery_p99_ms"]["regressed"]
    with HistoryStore(history) as store:
        assert len(store.runs()) == 3  # compare records nothing

    page = tmp_path / "trend.html"
    assert cli_main(["history", "--history", history, "--html", str(page)]) == 0
    assert 'id="fig-trend"' in page.read_text() and "pinned baseline" in page.read_text()
    assert cli_main(["baseline", "clear", str(folders[0])]) == 0
    assert cli_main(["baseline", "clear", str(folders[0])]) == 2
    assert "no baseline pinned" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["history", "--history", "{tmp}/none.sqlite"], "no history at"),
        (["history", "--history", "mysql://x/y"], "'mysql' is not supported"),
        (["history", "--history", "{tmp}/h.sqlite", "nothing.here"], "no run of scenario 'nothing.here'"),
        (["baseline", "set"], "baseline set needs RUN_DIR"),
        (["baseline", "set", "{tmp}/missing"], "does not exist"),
        (["compare", "{tmp}/missing"], "does not exist"),
        (["judge", "{tmp}", "--history", "oracle://x"], "'oracle' is not supported"),
        (["run", "live.inserts", "--history", "postgresql://u@h:port/db"], "not a database URL"),
    ],
)
def test_bad_input_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    HistoryStore(tmp_path / "h.sqlite").close()
    code = cli_main([a.replace("{tmp}", str(tmp_path)) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_a_history_from_a_newer_harness_is_a_one_line_error(tmp_path: Path) -> None:
    from sqlalchemy import text

    with HistoryStore(tmp_path / "h.sqlite") as store, store.engine.begin() as connection:
        connection.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    with pytest.raises(HarnessError, match="cannot open: Can't locate revision") as caught:
        HistoryStore(tmp_path / "h.sqlite")
    assert "\n" not in str(caught.value)


def test_the_machine_is_the_one_run_json_names(tmp_path: Path) -> None:
    folder = synthetic_run(tmp_path / "runs", 0)
    record = orjson.loads((folder / "run.json").read_bytes())
    record["machine"] = MACHINE
    (folder / "run.json").write_bytes(orjson.dumps(record))
    judge_run(folder, quiet=True, report=False)
    with HistoryStore(tmp_path / "runs" / "history.sqlite") as store:
        (run,) = store.runs()
    assert run.facts.machine == MACHINE
