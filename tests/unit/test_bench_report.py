"""``make bench``'s pieces that need no server: the tracker measurement and the Markdown report."""

from __future__ import annotations

from harness.orchestration.bench import report, tracker_cost


def test_tracker_cost_measures_a_clean_stream() -> None:
    cost = tracker_cost(repeats=1, count=500)
    assert set(cost) == {"insert", "update"} and all(v > 0 for v in cost.values())


def test_report_states_machine_measurements_and_tracker_cost() -> None:
    run = {"sent": 15000, "seconds": 5.0, "server_cpu": 4.0, "delivered": 100000, "expected": 100000,
           "notifications_per_s": 20000.0, "p50": 1.5, "p99": 3.0, "achieved_rate": 1000.0}  # fmt: skip
    results = {
        "machine": {"CPU": "test", "Date": "2026-12-01 00:00 UTC"},
        "inserts": [run], "fixed": [run], "steps": [{**run, "rate": 1000, "good": True}], "seconds": 5.0,
        "tracker": {"insert": 9.5, "update": 10.25}, "repeats": 1,
    }  # fmt: skip
    text = report(results)
    assert "| single-writer HTTP inserts/s | 3,000 |" in text
    assert "| Date | 2026-12-01 00:00 UTC |" in text
    assert "| insert | 9.5 |" in text and "| update | 10.2 |" in text
