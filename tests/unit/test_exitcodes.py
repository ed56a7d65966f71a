"""The one way exit codes combine, and the exit code each verdict in verdict.json ends a command with."""

from __future__ import annotations

import pytest

from harness import exitcodes
from harness.runfolder import Verdict, verdict_exit_code


@pytest.mark.parametrize(
    ("codes", "combined"),
    [
        ([], exitcodes.PASS),
        ([exitcodes.PASS, exitcodes.PASS], exitcodes.PASS),
        ([exitcodes.PASS, exitcodes.INCONCLUSIVE], exitcodes.INCONCLUSIVE),
        ([exitcodes.INCONCLUSIVE, exitcodes.FAIL, exitcodes.PASS], exitcodes.FAIL),
        ([exitcodes.HARNESS_ERROR, exitcodes.PASS], exitcodes.INCONCLUSIVE),
        ([exitcodes.PASS, 3], exitcodes.INCONCLUSIVE),
    ],
)
def test_a_failure_wins_then_any_code_that_is_not_a_pass(codes: list[int], combined: int) -> None:
    assert exitcodes.combine(codes) == combined
    assert exitcodes.combine(iter(codes)) == combined


def test_each_verdict_has_its_exit_code_and_unknown_ones_are_inconclusive() -> None:
    assert [verdict_exit_code(v) for v in ("pass", "fail", "inconclusive")] == [0, 1, 2]
    assert verdict_exit_code(Verdict.NA) == exitcodes.INCONCLUSIVE
    assert verdict_exit_code("no such verdict") == exitcodes.INCONCLUSIVE
