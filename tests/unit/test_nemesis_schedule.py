"""The nemesis schedule as scenario data: defaults filled in, every bad entry a one-line error."""

from __future__ import annotations

import pytest

from harness.errors import HarnessError
from harness.nemesis import WRITERS_ROUTE, Fault, parse_schedule


def test_entries_are_parsed_sorted_with_defaults() -> None:
    schedule = parse_schedule(
        "s",
        [
            {"at": 5, "fault": "latency", "params": {"ms": 50}},
            {"at": 1, "fault": "outage", "seconds": 2, "listeners": ["L2"], "writers": True},
        ],
        ("L1", "L2"),
    )
    first, second = schedule.faults
    assert first.fault is Fault.OUTAGE and first.seconds == 2.0
    assert first.routes(("L1", "L2")) == ("L2", WRITERS_ROUTE)
    assert second.params == {"ms": 50.0, "jitter_ms": 0.0} and second.seconds is None
    assert second.routes(("L1", "L2")) == ("L1", "L2")
    assert schedule.writers
    assert schedule.to_list()[0]["fault"] == "outage"


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"fault": "flood"}, "unknown fault 'flood'"),
        ({"fault": "outage", "when": 1}, "unknown key 'when'"),
        ({"fault": "outage", "at": -1}, "at must be a number >= 0"),
        ({"fault": "outage", "seconds": "long"}, "seconds must be a number"),
        ({"fault": "outage", "params": {"ms": 1}}, "takes no parameter 'ms'"),
        ({"fault": "latency", "params": {"ms": 10, "jitter_ms": 20}}, "jitter_ms .20. exceeds ms .10."),
        ({"fault": "bandwidth", "params": {"bytes_per_second": 0}}, "at least 1"),
        ({"fault": "partition", "listeners": "L1"}, "listeners must be a list"),
        ({"fault": "partition", "listeners": ["L7"]}, "names listener 'L7'"),
        ({"fault": "outage", "writers": 1}, "writers must be true or false"),
    ],
)
def test_bad_entries_are_one_line_errors(entry: dict, message: str) -> None:
    with pytest.raises(HarnessError, match=message) as info:
        parse_schedule("scenario x", [entry], ("L1",))
    assert "\n" not in str(info.value) and "scenario x" in str(info.value)


def test_not_a_list_is_an_error_and_absent_is_empty() -> None:
    with pytest.raises(HarnessError, match="must be a list"):
        parse_schedule("s", {"fault": "outage"})
    assert parse_schedule("s", None).faults == ()
