"""Subscription limits are checked against a plan before a run: one line naming the user and the limit."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.orchestration.limits import PER_CONNECTION, PER_USER, check_limits, serve_limits
from harness.plan import TargetSpec
from harness.scenarios.catalogue import build_plan, resolve
from reports.judge import RULES

TARGET = TargetSpec("ref", "http://127.0.0.1:1", "root", "pw")


def _plan(name: str):
    return build_plan(resolve([name], RULES)[0], quick=True, target=TARGET, run_id="r", run_dir="/tmp/r")


def test_serve_flags_name_the_limits() -> None:
    args = ["--fault", "drop:every=3", "--max-subscriptions-per-user", "2", "--max-subscriptions-per-connection=5"]
    assert serve_limits(args) == {PER_USER: 2, PER_CONNECTION: 5}
    assert serve_limits(["--protocol", "0.4"]) == {}
    with pytest.raises(HarnessError, match="needs an integer"):
        serve_limits(["--max-subscriptions-per-user", "many"])


def test_a_plan_needing_more_subscriptions_than_allowed_is_one_line_up_front() -> None:
    plan = _plan("live.multi-listener")  # 3 listeners as the app user
    check_limits(plan, {PER_USER: 3})
    check_limits(plan, {PER_USER: 0})  # 0: no limit
    with pytest.raises(HarnessError) as err:
        check_limits(plan, {PER_USER: 2})
    text = str(err.value)
    assert "\n" not in text and "needs 3 subscriptions" in text and "allows 2 per user" in text
