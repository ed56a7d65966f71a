"""The judge under a network nemesis: what nemesis.jsonl declares is the network's, the rest is the target's.

Synthetic run folders with a fault window written as the runner's hook writes it. The same run
judged without that record (a network fault nobody declared) must fail, so each test shows both
that the criterion sees the fault and that the record keeps it from blaming the target.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from harness.orchestration.faults_matrix import undeclared_copy
from reports.judge import judge_run
from tests.support.synthetic import T0, Synthetic, write_run

LOAD = (T0 + 10.0, T0 + 110.0)  # the synthetic run's load phase; drain to T0 + 115
MANY = {"delivered": 100_000}  # enough notifications for a passing SC-057 to count (min_notifications)


def _window(fault: str, start: float, end: float | None, routes: list[str], **what: Any) -> list[dict[str, Any]]:
    base = {"id": 1, "fault": fault, "start": start, "routes": routes, "params": what.pop("params", {})}
    describe = {
        "disruptive": what.pop("disruptive", False),
        "delays": what.pop("delays", False),
        "min_delay_ms": what.pop("min_delay_ms", {"c2s": 0.0, "s2c": 0.0}),
    }
    lines = [{"kind": "begin", **base, **describe}]
    if end is not None:
        lines.append({"kind": "window", **base, **describe, "end": end, "until_end": False, "counts": what})
    return lines


def _run(tmp_path: Path, lines: list[dict[str, Any]], summary: dict[str, Any] | None = None, **synthetic: Any) -> Path:
    s = Synthetic(profile={"nemesis": [{"fault": lines[0]["fault"] if lines else "outage"}]}, **synthetic)
    folder = write_run(tmp_path, s)
    records = [*lines, *([{"kind": "summary", "routes": summary}] if summary is not None else [])]
    (folder / "nemesis.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return folder


def _judged(folder: Path, cid: str) -> dict[str, Any]:
    judge_run(folder, quiet=True, report=False)
    document = orjson.loads((folder / "verdict.json").read_bytes())
    return next(c for c in document["scenarios"][0]["criteria"] if c["id"] == cid)


def _disconnect(down: float, up: float | None) -> dict[str, Any]:
    record = {"listener": "L1", "down_at": down, "up_at": up, "reason": "connection reset", "resumed": True}
    return {
        "unexpected_disconnects": 1,
        "listener_seconds_up": 100.0 - ((up or LOAD[1]) - down),
        "disconnect_witnesses": [record],
        "disconnects": [record],
    }


def test_a_disconnect_in_an_outage_the_listener_recovered_from_is_excused(tmp_path: Path) -> None:
    outage = _window("outage", T0 + 40.0, T0 + 42.0, ["L1", "L2"], disruptive=True, connections_cut=2)
    folder = _run(tmp_path, outage, criteria=["SC-057"], connections=_disconnect(T0 + 40.01, T0 + 43.5), totals=MANY)
    found = _judged(folder, "SC-057")
    assert found["verdict"] == "pass", found
    assert found["value"]["network_disconnects"] == 1 and found["value"]["unexpected_disconnects"] == 0
    assert "caused by network faults" in found["evidence"] and "outage" in found["evidence"]
    undeclared = undeclared_copy(folder, tmp_path / "copy")
    assert _judged(undeclared, "SC-057")["verdict"] == "fail"


def test_a_listener_that_stays_down_after_the_fault_is_still_a_failure(tmp_path: Path) -> None:
    outage = _window("outage", T0 + 40.0, T0 + 42.0, ["L1"], disruptive=True)
    folder = _run(tmp_path, outage, criteria=["SC-057"], connections=_disconnect(T0 + 40.01, T0 + 60.0))
    found = _judged(folder, "SC-057")
    assert found["verdict"] == "fail"
    assert "not recovered within 10 s" in found["evidence"] and "came back 18.0 s after" in found["evidence"]


def test_a_disconnect_outside_the_windows_or_on_another_route_is_the_targets(tmp_path: Path) -> None:
    elsewhere = _window("partition", T0 + 40.0, T0 + 42.0, ["L2"], disruptive=True)
    folder = _run(tmp_path, elsewhere, criteria=["SC-057"], connections=_disconnect(T0 + 41.0, T0 + 41.5))
    assert _judged(folder, "SC-057")["verdict"] == "fail"


def test_latency_covering_the_load_is_subtracted_before_the_limit(tmp_path: Path) -> None:
    latency = _window(
        "latency", T0 + 6.0, None, ["L1"], delays=True, min_delay_ms={"c2s": 140.0, "s2c": 140.0},
        params={"ms": 150.0, "jitter_ms": 10.0},
    )  # fmt: skip
    held = {"L1": {"s2c": {"max_hold_ms": 165.0}, "c2s": {"max_hold_ms": 160.0}}}
    slow = {"latency_ms": {"p50": 150.0, "p95": 170.0, "p99": 180.0, "max": 190.0, "count": 9000}}
    folder = _run(tmp_path, latency, held, criteria=["SC-054"], totals=slow)
    found = _judged(folder, "SC-054")
    assert found["verdict"] == "pass", found
    assert (
        "added 140.0 to 165.0 ms" in found["evidence"]
        and "p99 (target and clients) is 15.0 to 40.0 ms" in found["evidence"]
    )
    assert _judged(undeclared_copy(folder, tmp_path / "copy"), "SC-054")["verdict"] == "fail"


def test_a_delay_the_network_may_or_may_not_explain_is_inconclusive_and_one_it_cannot_is_a_failure(
    tmp_path: Path,
) -> None:
    cap = _window("bandwidth", T0 + 50.0, T0 + 52.0, ["L1"], delays=True, params={"bytes_per_second": 2048.0})
    held = {"L1": {"s2c": {"max_hold_ms": 1900.0}}}
    late = {"latency_ms": {"p50": 5.0, "p95": 900.0, "p99": 1800.0, "max": 1950.0, "count": 9000}}
    found = _judged(_run(tmp_path / "a", cap, held, criteria=["SC-054"], totals=late), "SC-054")
    assert found["verdict"] == "inconclusive" and "cannot be told apart" in found["evidence"]
    little = {"L1": {"s2c": {"max_hold_ms": 20.0}}}
    found = _judged(_run(tmp_path / "b", cap, little, criteria=["SC-054"], totals=late), "SC-054")
    assert found["verdict"] == "fail" and "even so" in found["evidence"]


def test_scheduled_faults_without_their_record_are_inconclusive(tmp_path: Path) -> None:
    scheduled = {"nemesis": [{"fault": "outage"}]}
    dropped = Synthetic(criteria=["SC-054", "SC-057"], profile=scheduled, connections=_disconnect(T0 + 40.0, T0 + 41))
    folder = write_run(tmp_path / "a", dropped)
    for cid in ("SC-054", "SC-057"):
        found = _judged(folder, cid)
        assert found["verdict"] == "inconclusive" and "nemesis.jsonl is missing" in found["evidence"], found
    calm = write_run(tmp_path / "b", Synthetic(criteria=["SC-057"], profile=scheduled, totals=MANY))
    assert _judged(calm, "SC-057")["verdict"] == "pass"  # no disconnect: nothing to attribute


def test_the_report_lists_and_hatches_the_fault_windows(tmp_path: Path) -> None:
    outage = _window("outage", T0 + 40.0, T0 + 42.0, ["L1"], disruptive=True, connections_cut=3)
    folder = _run(tmp_path, outage, criteria=["SC-057"])
    judge_run(folder, quiet=True)
    html = (folder / "report.html").read_text()
    assert "<h2>Network faults</h2>" in html and "connections_cut 3" in html
