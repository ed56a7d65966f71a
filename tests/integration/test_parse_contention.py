"""live.contention on Parse for real (--quick, about 8 s, within make test's budget), on the Parse server the
session's Parse tests share (``lqharness target up parse``): it runs to a verdict with PostgreSQL's commit log
(wal2json) as the chain check's ground truth. That it passes on the reference
server, with exact counts, is tests/integration/test_live_query_changes.py's part.

Needs what tests/integration/test_parse_target.py needs, plus the wal2json plugin
(``scripts/install-parse-deps.sh``); without them the Parse test skips (fails under ``CI=true``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from harness.errors import HarnessError
from harness.orchestration import parse_process
from harness.orchestration.runner import Runner, RunOptions
from harness.scenarios.catalogue import resolve
from reports.judge import RULES
from tests.support.parse import INSTALL_SECONDS, require_parse


def _run(target_dir: Path, out: Path) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """Run live.contention --quick on the Parse server up in ``target_dir``: its criteria by id, delivery totals
    and run folder."""
    (scenario,) = resolve(["live.contention"], RULES)
    options = RunOptions(target="parse", target_dir=target_dir, quick=True, out_dir=out, progress=lambda _msg: None)
    Runner(options).run(scenario)
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    verdict = json.loads((run_dir / "verdict.json").read_text())
    by_id = {c["id"]: c for s in verdict["scenarios"] for c in s["criteria"]}
    return by_id, json.loads((run_dir / "delivery.json").read_text())["totals"], run_dir


def _require_wal2json() -> None:
    try:
        require_parse()
        lib = parse_process.pg_bindir().parent / "lib" / "wal2json.so"
        if not lib.exists():
            raise HarnessError(f"{lib} not found: install postgresql-<major>-wal2json (scripts/install-parse-deps.sh)")
    except HarnessError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"Parse prerequisites missing under CI: {exc}")
        pytest.skip(str(exc))


@pytest.mark.timeout(INSTALL_SECONDS + 120)  # the session's server may be the one that installs
def test_live_contention_on_parse_is_judged_against_the_postgresql_commit_log(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    _require_wal2json()  # before the shared server starts: without wal2json the test skips at once
    parse_up: Path = request.getfixturevalue("parse_up")
    by_id, totals, run_dir = _run(parse_up, tmp_path / "runs")
    assert by_id["SC-051"]["verdict"] == "pass", by_id["SC-051"]  # completeness holds on Parse
    assert by_id["CHAIN-1"]["verdict"] in ("pass", "fail"), by_id["CHAIN-1"]
    assert totals["chain_order"] == "commit_log" and "commit log order" in by_id["CHAIN-1"]["evidence"]
    target = json.loads((run_dir / "target.json").read_text())
    assert target["commit_log_updates"] == 200  # every acked bump, once, in the log
    assert totals["version_conflicts"] == 0  # the log, the writers' acks and the events agree on every version
    state = json.loads((parse_up / parse_process.STATE_FILE).read_text())
    assert json.loads((run_dir / "run.json").read_text())["target"]["url"] == state["url"]  # the shared server
