"""Latency criteria and the workers' clock offsets (run.json ``clocks``): judged normally while every worker's
clock is known to within the tolerance, inconclusive with the figures when one is not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from reports.clocks import clock_doubt, worker_clocks
from reports.judge import judge_run
from reports.runfolder import load_run_folder
from reports.terminal import summary_table
from tests.support.synthetic import Synthetic, ramp_phases, write_run

PASSING = {"p50": 4.0, "p95": 12.0, "p99": 20.0, "max": 45.0, "count": 9000}
FAILING = {**PASSING, "p99": 80.0, "max": 90.0}


def with_run_record(run_dir: Path, **fields: Any) -> Path:
    """Replace fields of the synthetic run.json (``None`` removes one)."""
    path = run_dir / "run.json"
    record = orjson.loads(path.read_bytes())
    for key, value in fields.items():
        if value is None:
            record.pop(key, None)
        else:
            record[key] = value
    path.write_bytes(orjson.dumps(record))
    return run_dir


def clock(offset_s: float, rtt_s: float = 0.0002, samples: int = 5) -> dict[str, Any]:
    return {"offset_s": offset_s, "rtt_s": rtt_s, "samples": samples}


def sc054(run_dir: Path) -> dict[str, Any]:
    judge_run(run_dir, quiet=True, report=False)
    document = orjson.loads((run_dir / "verdict.json").read_bytes())
    return next(c for c in document["scenarios"][0]["criteria"] if c["id"] == "SC-054")


def latency_run(tmp_path: Path, latency: dict[str, Any], **record: Any) -> Path:
    run_dir = write_run(tmp_path, Synthetic(criteria=["SC-054"], totals={"latency_ms": latency}))
    return with_run_record(run_dir, **record)


@pytest.mark.parametrize(("latency", "verdict"), [(PASSING, "pass"), (FAILING, "fail")])
def test_small_offsets_leave_latency_judged_normally(tmp_path: Path, latency: dict[str, Any], verdict: str) -> None:
    clocks = {"worker-a": clock(0.0011), "worker-b": clock(-0.0023, rtt_s=0.001)}
    found = sc054(latency_run(tmp_path, latency, workers=2, clocks=clocks))
    assert found["verdict"] == verdict and "clock" not in found["evidence"]


@pytest.mark.parametrize("latency", [PASSING, FAILING])
def test_an_offset_beyond_the_tolerance_makes_latency_inconclusive_with_the_figures(
    tmp_path: Path, latency: dict[str, Any]
) -> None:
    """Both ways: an offset can hide a slow delivery as well as invent one."""
    clocks = {"worker-a": clock(0.0004), "worker-b": clock(-0.012, rtt_s=0.002, samples=4)}
    found = sc054(latency_run(tmp_path, latency, workers=2, clocks=clocks))
    assert found["verdict"] == "inconclusive"
    evidence = found["evidence"]
    assert "worker worker-b offset -12.000 ms ± 1.000 ms (rtt/2, best of 4 pings): up to 13.000 ms off" in evidence
    assert "the tolerance is 5 ms (10% of the 50 ms threshold)" in evidence
    assert "worker-a" not in evidence and f"p99 {latency['p99']:.1f} ms" in evidence


@pytest.mark.parametrize(("offset_s", "verdict"), [(0.004, "pass"), (0.004001, "inconclusive")])
def test_the_tolerance_is_inclusive(tmp_path: Path, offset_s: float, verdict: str) -> None:
    """|offset| + rtt/2 equal to 10% of 50 ms (4 ms + 1 ms) is within it; a microsecond more is not."""
    found = sc054(latency_run(tmp_path, PASSING, workers=1, clocks={"w1": clock(offset_s, rtt_s=0.002)}))
    assert found["verdict"] == verdict


def test_the_fraction_is_a_criteria_setting(tmp_path: Path) -> None:
    run_dir = latency_run(tmp_path, PASSING, workers=1, clocks={"w1": clock(0.008)})
    loose = tmp_path / "loose.toml"
    loose.write_text("[clocks]\nmax_offset_fraction = 0.2\n")
    judge_run(run_dir, loose, quiet=True, report=False)
    document = orjson.loads((run_dir / "verdict.json").read_bytes())
    assert document["scenarios"][0]["criteria"][0]["verdict"] == "pass"
    assert sc054(run_dir)["verdict"] == "inconclusive"  # the default 10% (5 ms) does not tolerate 8.1 ms


def test_a_single_process_run_has_no_clock_to_check(tmp_path: Path) -> None:
    assert sc054(latency_run(tmp_path / "local", PASSING, workers=0, clocks={}))["verdict"] == "pass"
    # a run.json from before clocks were recorded: nothing to check either
    assert sc054(latency_run(tmp_path / "old", PASSING, workers=2, clocks=None))["verdict"] == "pass"


def test_a_worker_without_an_estimate_leaves_latency_inconclusive(tmp_path: Path) -> None:
    found = sc054(latency_run(tmp_path, PASSING, workers=2, clocks={"w1": clock(0.0001)}))
    assert found["verdict"] == "inconclusive"
    assert "1 of the run's 2 worker(s) have no clock offset in run.json" in found["evidence"]
    bad = sc054(latency_run(tmp_path / "bad", PASSING, workers=1, clocks={"w1": {"offset_s": "soon"}}))
    assert bad["verdict"] == "inconclusive" and "(w1 unreadable)" in bad["evidence"]


def test_degradation_tolerates_against_the_ramp_slo(tmp_path: Path) -> None:
    """DEGRADATION's latency is the NOTIFY p95 against [report] slo_p95_ms (50 ms): 6 ms of offset is too much."""
    p95 = [10.0, 30.0, 90.0]

    def notify_p95(t: float) -> float:
        return p95[min(max(int((t - 10) // 20), 0), len(p95) - 1)]

    phases = [(n, a, b, {**e, "rate": 145}) if n == "step-2" else (n, a, b, e) for n, a, b, e in ramp_phases(p95)]
    spec = Synthetic(criteria=["DEGRADATION"], phases=phases, notify_p95_ms=notify_p95)
    run_dir = with_run_record(write_run(tmp_path, spec), workers=1, clocks={"w1": clock(0.006)})
    judge_run(run_dir, quiet=True, report=False)
    document = orjson.loads((run_dir / "verdict.json").read_bytes())
    found = document["scenarios"][0]["criteria"][0]
    assert found["id"] == "DEGRADATION" and found["verdict"] == "inconclusive"
    assert "worker w1 offset +6.000 ms" in found["evidence"] and "the SLO broke at step-3" in found["evidence"]
    shown = document["scenarios"][0]["clocks"]
    assert shown == {"workers": {"w1": {"offset_ms": 6.0, "rtt_ms": 0.2, "samples": 5, "bound_ms": 6.1}}, "unknown": 0}


def test_clock_doubt_over_hand_built_records(tmp_path: Path) -> None:
    run_dir = with_run_record(write_run(tmp_path, Synthetic()), workers=3, clocks={"b": clock(-0.03), "a": clock(0)})
    clocks = worker_clocks(load_run_folder(run_dir))
    assert [c.node for c in clocks.estimates] == ["a", "b"] and clocks.unknown == 1
    assert clock_doubt(clocks, 500.0, 0.1) == (
        "1 of the run's 3 worker(s) have no clock offset in run.json; the tolerance is 50 ms (10% of the 500 ms "
        "threshold), so the measured latency may be the clocks' and not the target's"
    )


def test_the_report_and_the_terminal_table_show_each_workers_clock(tmp_path: Path) -> None:
    clocks = {"worker-a_1f": clock(0.0012, rtt_s=0.0008, samples=5), "worker-b_2e": clock(-0.009, rtt_s=0.001)}
    run_dir = latency_run(tmp_path, PASSING, workers=2, clocks=clocks)
    judge_run(run_dir, quiet=True)
    text = (run_dir / "report.html").read_text()
    section = text[text.index("<h2>Clocks</h2>") : text.index("<h2>Inputs</h2>")]
    assert "SC-054 5 ms, DEGRADATION 5 ms" in section
    assert "<td>worker-a_1f</td><td>+1.200</td><td>0.800</td><td>5</td><td>1.600</td>" in section
    assert "<td>worker-b_2e</td><td>-9.000</td><td>1.000</td><td>5</td><td>9.500</td>" in section
    assert section.count('class="v pass') == 1 and section.count('class="v fail') == 1
    table = summary_table(orjson.loads((run_dir / "verdict.json").read_bytes()))
    assert (
        "    clocks: worker-a_1f +1.200 ms (rtt 0.800, 5 pings); worker-b_2e -9.000 ms (rtt 1.000, 5 pings)"
        in table.splitlines()
    )


def test_a_single_process_report_says_there_is_one_clock(tmp_path: Path) -> None:
    run_dir = latency_run(tmp_path, PASSING, workers=0, clocks={})
    judge_run(run_dir, quiet=True)
    assert "One Locust process: every time was taken on the master's clock." in (run_dir / "report.html").read_text()
    assert "clocks:" not in summary_table(orjson.loads((run_dir / "verdict.json").read_bytes()))
