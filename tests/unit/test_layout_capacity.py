"""The runner's per-process capacity: measured by the bench and kept where the runner reads it, else the defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.orchestration.layout import DEFAULT, Capacity, advise, capacity_path, from_bench, load, load_of, save
from harness.plan import Plan, TargetSpec
from harness.scenarios.catalogue import build_plan, resolve
from reports.judge import RULES

TARGET = TargetSpec("kalamdb", "http://127.0.0.1:1", "root", "pw")


def _plan(name: str, quick: bool = True) -> Plan:
    return build_plan(resolve([name], RULES)[0], quick=quick, target=TARGET, run_id="r", run_dir="/tmp/r")


def _bench(ingest: float, writes: float, limit: int | None) -> dict[str, object]:
    return {"ingest": {"harness": {"rate": ingest}}, "writes": {"harness": {"rate": writes}}, "fanin": {"limit": limit}}


def test_the_bench_figures_become_the_capacity_with_headroom_on_the_rates() -> None:
    cap = from_bench(_bench(40_000.0, 6_000.0, 50), "2026-12-03 14:00 UTC")
    assert (cap.notifications, cap.writes, cap.listeners) == (20_000, 3_000, 50)
    assert "2026-12-03 14:00 UTC" in cap.source
    assert from_bench(_bench(40_000.0, 6_000.0, None), "d").listeners == 1  # no step held: one per process


def test_saved_capacity_is_what_the_runner_loads(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert load() == DEFAULT  # no bench ran here
    cap = Capacity(20_000.0, 3_000.0, 50, "measured by `make bench` on d")
    assert save(cap) == capacity_path() == tmp_path / "livequery-harness" / "capacity.json"
    assert load() == cap


@pytest.mark.parametrize(
    "text",
    ["", "{", '{"notifications": 1}', '{"notifications": 0, "writes": 1, "listeners": 1, "source": "x"}', "[1, 2]"],
)
def test_an_unreadable_or_nonsensical_capacity_file_falls_back_to_the_defaults(tmp_path: Path, text: str) -> None:
    path = tmp_path / "capacity.json"
    path.write_text(text)
    assert load(path) == DEFAULT


def test_listeners_are_spread_so_no_process_holds_more_than_measured_and_the_runner_says_so() -> None:
    plan = _plan("stress.writers-listeners")
    listeners = load_of(plan)[2]
    roomy = Capacity(1e9, 1e9, listeners, "measured")
    assert advise(plan, 0, 8, roomy).workers == 0
    tight = Capacity(1e9, 1e9, listeners // 2, "measured by `make bench` on d")
    layout = advise(plan, 0, 8, tight)
    assert layout.workers == 2
    assert len(layout.notes) == 1 and f"{listeners // 2:,} listeners (measured by `make bench` on d)" in layout.notes[0]
    short = advise(plan, 1, 8, tight)
    assert short.workers == 1 and "the plan needs 2" in short.notes[0] and "expect generator lag" in short.notes[0]


def test_writers_are_spread_when_one_process_cannot_hold_the_asked_rate() -> None:
    plan = _plan("stress.cpu")
    writes = load_of(plan)[0]
    assert advise(plan, 0, 8, Capacity(1e9, writes, 1000, "measured")).workers == 0
    layout = advise(plan, 0, 8, Capacity(1e9, writes / 3, 1000, "measured"))
    assert layout.workers == 3 and f"{writes:,.0f} writes/s" in layout.notes[0]
