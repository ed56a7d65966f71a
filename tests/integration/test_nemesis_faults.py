"""The quick fault matrix (part of `make test`): one server fault and one network fault, each caught, no false alarm.

The network case is live.outage through the real runner: the listeners reach the reference
server through the fault proxy (plan.json routes them), nemesis.jsonl records the outage, the
declared run does not fail (its disconnects are the network's), and the same run judged without
that record fails SC-057.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from harness.orchestration.faults_matrix import NETWORK, Matrix, exit_code, select, table

pytestmark = pytest.mark.serial  # measures or loads the machine: run alone (pyproject.toml markers)


@pytest.mark.timeout(240)
def test_quick_matrix_catches_each_fault_with_no_false_alarm(tmp_path: Path) -> None:
    lines: list[str] = []
    outcomes, cleans = Matrix(tmp_path, runs=1, progress=lines.append).run(select(quick=True))
    shown = table(outcomes, cleans)
    assert {o.case.layer for o in outcomes} == {"server", NETWORK}, shown
    assert all(o.caught for o in outcomes), shown
    assert not any(c.false_alarms for c in cleans), shown
    assert exit_code(outcomes, cleans) == 0 and "0 false alarm(s)" in shown

    outage = next(o for o in outcomes if o.case.layer == NETWORK)
    assert outage.declared in ("pass", "inconclusive") and outage.run_dir is not None, shown
    verdict = orjson.loads((outage.run_dir / "verdict.json").read_bytes())
    uptime = next(c for c in verdict["scenarios"][0]["criteria"] if c["id"] == "SC-057")
    # passing, or inconclusive only for the size of a quick run (main's min_notifications)
    assert uptime["verdict"] != "fail" and uptime["value"]["network_disconnects"] >= 2, uptime
    plan = orjson.loads((outage.run_dir / "plan.json").read_bytes())
    target_port = plan["target"]["url"].rsplit(":", 1)[1]
    assert all(li["url"].startswith("http://127.0.0.1:") for li in plan["listeners"])
    assert all(not li["url"].endswith(f":{target_port}") for li in plan["listeners"])  # through the proxy
    records = [orjson.loads(line) for line in (outage.run_dir / "nemesis.jsonl").read_bytes().splitlines()]
    assert [r["kind"] for r in records] == ["begin", "window", "summary"]
    assert records[1]["counts"]["connections_cut"] >= 2 and records[1]["disruptive"] is True
