"""A scenario about a target feature (``requires``) is n/a, criterion by criterion and as a whole, on a target
that lacks the feature: live.reconnect on Parse, which has no resume, says so instead of failing SC-051."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from harness.errors import HarnessError
from harness.scenarios.catalogue import parse_catalogue, resolve
from reports.judge import RULES, judge_run
from tests.support.synthetic import Synthetic, write_run
from tests.unit.test_catalogue import GOOD


def test_requires_is_recorded_in_the_profile_and_checked_at_load() -> None:
    (scenario,) = parse_catalogue(GOOD + 'requires = ["resume"]\n', "t.toml", RULES).values()
    assert scenario.requires == ("resume",) and scenario.profile(quick=True)["requires"] == ["resume"]
    (plain,) = parse_catalogue(GOOD, "t.toml", RULES).values()
    assert "requires" not in plain.profile(quick=False)  # the profiles of other scenarios are unchanged
    with pytest.raises(HarnessError, match="requires must be a list of target feature names") as caught:
        parse_catalogue(GOOD + 'requires = "resume"\n', "t.toml", RULES)
    assert "\n" not in str(caught.value)
    (reconnect, isolation) = resolve(["live.reconnect", "live.user-isolation"], RULES)
    assert reconnect.requires == ("resume",) and isolation.requires == ("user_tables",)


@pytest.mark.timeout(60)
def test_a_scenario_about_a_missing_feature_is_not_applicable_with_the_reason(tmp_path: Path) -> None:
    spec = Synthetic(criteria=["SC-051", "SC-057"], profile={"requires": ["resume"]}, features=[],
                     totals={"lost": 10})  # fmt: skip
    run_dir = write_run(tmp_path / "parse", spec)
    judge_run(run_dir, quiet=True, report=False)
    verdict = orjson.loads((run_dir / "verdict.json").read_bytes())
    (scenario,) = verdict["scenarios"]
    assert verdict["verdict"] == scenario["verdict"] == "n/a" and "resume" in scenario["not_applicable"]
    for criterion in scenario["criteria"][:2]:
        assert criterion["verdict"] == "n/a", criterion
        assert (
            criterion["evidence"]
            == "the scenario is about the target's resume, which this target lacks (features: none)"
        )

    has_it = write_run(tmp_path / "ref", Synthetic(criteria=["SC-051"], profile={"requires": ["resume"]},
                                                   totals={"lost": 10}))  # fmt: skip
    judge_run(has_it, quiet=True, report=False)
    (scenario,) = orjson.loads((has_it / "verdict.json").read_bytes())["scenarios"]
    assert scenario["verdict"] == "fail" and "not_applicable" not in scenario  # a target with it is judged as ever
