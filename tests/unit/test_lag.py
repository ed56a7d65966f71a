"""Event-loop lag: the sampler's arithmetic, its rows in generator.jsonl, and the judge's lag rule."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from locustfiles.lag import LagSampler, appender
from reports.judge import judge_run
from tests.support.synthetic import T0, Synthetic, write_run


def test_lateness_is_the_wake_up_past_the_period_and_never_negative() -> None:
    sampler = LagSampler(period=0.02, report_every=1.0)
    assert sampler.record(10.0, 10.025) is None  # 5 ms late
    assert sampler.record(10.025, 10.040) is None  # early wake-up: 0, not negative
    assert sampler.worst_ms == pytest.approx(5.0)


def test_one_row_per_interval_with_the_worst_and_the_mean() -> None:
    sampler = LagSampler(period=0.02, report_every=1.0, role="worker")
    rows = []
    t = 0.0
    for late in [0.0, 0.010, 0.0, 0.002] * 20:  # 80 wake-ups of 20 ms + lateness: past one second
        woke = t + 0.02 + late
        row = sampler.record(t, woke)
        if row is not None:
            rows.append(row)
        t = woke
    assert len(rows) == 1
    row = rows[0]
    assert row["kind"] == "lag" and row["role"] == "worker"
    assert row["loop_lag_ms"] == pytest.approx(10.0)
    assert row["loop_lag_mean_ms"] == pytest.approx(3.0, abs=0.01)
    assert row["loop_ticks"] >= 40


def test_appender_adds_whole_lines_after_the_monitors_rows(tmp_path: Path) -> None:
    (tmp_path / "generator.jsonl").write_bytes(orjson.dumps({"t": 1.0, "role": "local", "cpu_core_pct": 5}) + b"\n")
    emit = appender(tmp_path)
    emit({"t": 2.0, "kind": "lag", "loop_lag_ms": 3.5})
    emit({"t": 3.0, "kind": "lag", "loop_lag_ms": 1.0})
    rows = [orjson.loads(line) for line in (tmp_path / "generator.jsonl").read_bytes().splitlines()]
    assert [r["t"] for r in rows] == [1.0, 2.0, 3.0] and rows[1]["loop_lag_ms"] == 3.5


def _with_lag(root: Path, lag_ms: float, p99_ms: float) -> Path:
    """A synthetic run whose SC-054 p99 is ``p99_ms`` and whose one Locust process lagged ``lag_ms`` every second."""
    s = Synthetic(
        criteria=["SC-054"],
        totals={"latency_ms": {"p50": 4.0, "p95": 12.0, "p99": p99_ms, "max": 90.0, "count": 100_000}},
    )
    folder = write_run(root, s)
    rows = b"".join(
        orjson.dumps({"t": T0 + t, "kind": "lag", "role": "local", "pid": 5001, "loop_lag_ms": lag_ms}) + b"\n"
        for t in range(0, 200)
    )
    with (folder / "generator.jsonl").open("ab") as fh:
        fh.write(rows)
    return folder


def _sc054(folder: Path) -> dict:
    judge_run(folder, quiet=True, report=False)
    doc = orjson.loads((folder / "verdict.json").read_bytes())
    return next(c for c in doc["scenarios"][0]["criteria"] if c["id"] == "SC-054")


def test_a_failing_latency_measured_with_a_lagging_generator_is_inconclusive_with_the_figure(tmp_path: Path) -> None:
    found = _sc054(_with_lag(tmp_path / "lagging", lag_ms=25.0, p99_ms=70.0))  # 25 ms > 20% of 50 ms
    assert found["verdict"] == "inconclusive"
    assert "event-loop lag p99 25.0 ms" in found["evidence"] and "50 ms threshold" in found["evidence"]


def test_a_latency_over_the_limit_even_less_the_worst_lag_still_fails(tmp_path: Path) -> None:
    found = _sc054(_with_lag(tmp_path / "lagging", lag_ms=25.0, p99_ms=80.0))  # 80 - 25 = 55 ms > 50 ms
    assert found["verdict"] == "fail", found
    assert "even less its worst lateness (25.0 ms) the target's share (55.0 ms)" in found["evidence"]


def test_a_failing_latency_with_little_lag_still_fails(tmp_path: Path) -> None:
    assert _sc054(_with_lag(tmp_path / "calm", lag_ms=2.0, p99_ms=80.0))["verdict"] == "fail"


def test_a_passing_latency_stands_with_the_lag_noted(tmp_path: Path) -> None:
    found = _sc054(_with_lag(tmp_path / "pass", lag_ms=25.0, p99_ms=20.0))
    assert found["verdict"] == "pass" and "load generator lagging" in found["evidence"]


def test_the_lag_is_in_the_verdict(tmp_path: Path) -> None:
    folder = _with_lag(tmp_path / "doc", lag_ms=25.0, p99_ms=20.0)
    judge_run(folder, quiet=True, report=False)
    generator = orjson.loads((folder / "verdict.json").read_bytes())["scenarios"][0]["generator"]
    assert generator["lag"]["lag_ms"] == pytest.approx(25.0)
