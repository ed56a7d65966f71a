"""Receive backlog: the listeners' registry, its figures on the lag rows, and the judge's backlog rule."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from locustfiles.lag import Backlogs, LagSampler
from reports.judge import judge_run
from tests.support.synthetic import T0, Synthetic, write_run


class _Listener:
    def __init__(self, value: int | None) -> None:
        self.value = value

    def backlog(self) -> int | None:
        return self.value


def _row(sampler: LagSampler) -> dict:
    assert sampler.record(0.0, 0.02) is None
    row = sampler.record(0.02, 1.5)
    assert row is not None
    return row


def test_a_row_carries_the_largest_listener_backlog_the_sum_and_the_count() -> None:
    backlogs = Backlogs()
    kept = [_Listener(100), _Listener(4000), _Listener(None), _Listener(0)]
    for listener in kept:
        backlogs.add(listener)
    row = _row(LagSampler(backlogs=backlogs))
    assert row["recv_backlog_bytes"] == 4000
    assert row["recv_backlog_total_bytes"] == 4100
    assert row["recv_backlog_listeners"] == 3  # the one that cannot tell is left out
    backlogs.discard(kept[1])
    assert _row(LagSampler(backlogs=backlogs))["recv_backlog_bytes"] == 100


def test_no_listener_that_exposes_a_backlog_leaves_the_row_without_one() -> None:
    backlogs = Backlogs()
    backlogs.add(_Listener(None))
    assert "recv_backlog_bytes" not in _row(LagSampler(backlogs=backlogs))


def test_a_listener_that_is_gone_is_no_longer_sampled() -> None:
    backlogs = Backlogs()
    backlogs.add(_Listener(5))
    assert backlogs.sample() is None  # held weakly: the listener above was dropped at once


def _with_backlog(root: Path, backlog: int, p99_ms: float) -> Path:
    """A synthetic run whose SC-054 p99 is ``p99_ms``; its one Locust process held ``backlog`` bytes every second."""
    s = Synthetic(
        criteria=["SC-054"],
        totals={"latency_ms": {"p50": 4.0, "p95": 12.0, "p99": p99_ms, "max": 90.0, "count": 100_000}},
    )
    folder = write_run(root, s)
    rows = b"".join(
        orjson.dumps(
            {
                "t": T0 + t,
                "kind": "lag",
                "role": "local",
                "pid": 5001,
                "loop_lag_ms": 1.0,
                "recv_backlog_bytes": backlog,
                "recv_backlog_total_bytes": backlog * 3,
                "recv_backlog_listeners": 3,
            }
        )
        + b"\n"
        for t in range(0, 200)
    )
    with (folder / "generator.jsonl").open("ab") as fh:
        fh.write(rows)
    return folder


def _sc054(folder: Path) -> tuple[dict, dict]:
    judge_run(folder, quiet=True, report=False)
    doc = orjson.loads((folder / "verdict.json").read_bytes())
    scenario = doc["scenarios"][0]
    return next(c for c in scenario["criteria"] if c["id"] == "SC-054"), scenario["generator"]


def test_a_failing_latency_with_a_large_receive_backlog_is_inconclusive_with_the_figure(tmp_path: Path) -> None:
    found, generator = _sc054(_with_backlog(tmp_path / "behind", backlog=500_000, p99_ms=80.0))
    assert found["verdict"] == "inconclusive"
    assert "receive backlog p99 500,000 bytes" in found["evidence"] and "max_backlog_bytes 65,536" in found["evidence"]
    assert generator["backlog"]["backlog_bytes"] == pytest.approx(500_000)


def test_a_failing_latency_with_a_small_backlog_still_fails(tmp_path: Path) -> None:
    found, _ = _sc054(_with_backlog(tmp_path / "calm", backlog=2_000, p99_ms=80.0))
    assert found["verdict"] == "fail"


def test_a_passing_latency_stands_with_the_backlog_noted(tmp_path: Path) -> None:
    found, _ = _sc054(_with_backlog(tmp_path / "pass", backlog=500_000, p99_ms=20.0))
    assert found["verdict"] == "pass" and "behind on what it received" in found["evidence"]


def test_a_run_without_backlog_samples_says_so(tmp_path: Path) -> None:
    folder = write_run(tmp_path / "none", Synthetic(criteria=["SC-054"]))
    _, generator = _sc054(folder)
    assert generator["backlog"]["backlog_bytes"] is None and "not sampled" in generator["backlog"]["evidence"]
