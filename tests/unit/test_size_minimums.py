"""A scenario that proves its point at its own size (``size_minimums = false``: the nemesis scenarios) is
judged without the specification's size minimums; every other scenario keeps them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from harness.errors import HarnessError
from harness.scenarios.catalogue import parse_catalogue, resolve
from reports.judge import RULES, judge_run
from tests.support.synthetic import Synthetic, write_run

FEW = {"delivered": 180, "latency_ms": {"p50": 4.0, "p95": 9.0, "p99": 12.0, "max": 14.0, "count": 180}}


def _judged(tmp_path: Path, profile: dict[str, Any], totals: dict[str, Any]) -> dict[str, dict[str, Any]]:
    folder = write_run(tmp_path, Synthetic(criteria=["SC-054", "SC-057"], profile=profile, totals=totals))
    judge_run(folder, quiet=True, report=False)
    verdict = orjson.loads((folder / "verdict.json").read_bytes())
    return {c["id"]: c for c in verdict["scenarios"][0]["criteria"]}


def test_a_small_run_is_inconclusive_unless_its_scenario_waives_the_size_minimums(tmp_path: Path) -> None:
    kept = _judged(tmp_path / "kept", {}, FEW)
    assert kept["SC-054"]["verdict"] == kept["SC-057"]["verdict"] == "inconclusive"
    waived = _judged(tmp_path / "waived", {"size_minimums": False}, FEW)
    for cid in ("SC-054", "SC-057"):
        assert waived[cid]["verdict"] == "pass", waived[cid]
        assert "waives the size minimums" in waived[cid]["evidence"]
    assert "only 180 latency samples" in waived["SC-054"]["evidence"]
    assert "only 180 notifications delivered" in waived["SC-057"]["evidence"]


def test_a_waiver_never_turns_a_failure_into_a_pass(tmp_path: Path) -> None:
    slow = {**FEW, "latency_ms": {**FEW["latency_ms"], "p99": 80.0, "max": 90.0}}
    found = _judged(tmp_path, {"size_minimums": False}, slow)
    assert found["SC-054"]["verdict"] == "fail", found["SC-054"]


def test_the_nemesis_scenarios_waive_the_size_minimums_and_the_specifications_do_not() -> None:
    waiving = {s.name for s in resolve(["live", "stress", "nemesis"], RULES) if not s.size_minimums}
    assert waiving == {
        "live.outage", "live.double-outage", "live.staggered-outages", "nemesis.latency", "nemesis.bandwidth",
        "nemesis.reset-mid-frame", "nemesis.half-open", "nemesis.partition",
    }  # fmt: skip
    (outage,) = resolve(["live.outage"], RULES)
    assert outage.profile(quick=True)["size_minimums"] is False
    (inserts,) = resolve(["live.inserts"], RULES)
    assert "size_minimums" not in inserts.profile(quick=True)


def test_size_minimums_must_be_a_boolean() -> None:
    text = '[scenario."x.y"]\ntitle = "t"\nsize_minimums = "no"\nwriters = []\nlisteners = []\n'
    with pytest.raises(HarnessError, match="size_minimums must be true or false"):
        parse_catalogue(text, "x.toml", set(RULES))
