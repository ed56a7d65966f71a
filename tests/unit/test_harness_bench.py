"""The harness bench's pieces that need no processes: the sender's frames and the Markdown section."""

from __future__ import annotations

import struct

from harness.delivery.tracker import ListenerTracker
from harness.orchestration.benchfeed import SCHEMA, _unmask, change_frame, server_frame, snowflake
from harness.orchestration.harnessbench import section
from harness.targets.kalamdb import wire


def _payload(frame: bytes) -> bytes:
    n = frame[1] & 0x7F
    if n == 126:
        return frame[4:]
    if n == 127:
        return frame[10:]
    return frame[2:]


def test_frames_carry_their_length_in_each_of_the_three_forms() -> None:
    for size in (10, 300, 70_000):
        frame = server_frame(b"x" * size)
        assert frame[0] == 0x81 and len(_payload(frame)) == size
    assert struct.unpack("!H", server_frame(b"x" * 300)[2:4])[0] == 300


def test_unmask_undoes_the_client_mask() -> None:
    mask, data = b"\x01\x02\x03\x04", b"hello, websocket"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
    assert _unmask(masked, mask) == data


def test_fed_changes_are_clean_harness_notifications() -> None:
    """The sender's rows pass every check of the tracker, so the bench measures checks, not anomalies."""
    tracker = ListenerTracker("bench", None, 200, 10**12)
    bigints = wire.schema_bigints(SCHEMA)
    for n in range(1, 50):
        msg = wire.decode_frame(
            _payload(change_frame("s1", 1, n, 1_700_000_000_000_000, 200, snowflake(1_700_000_000_000, n)))
        )
        for change in wire.change_events(msg, 1_700_000_000_001_000_000, 400, bigints):
            tracker.observe(change)
    assert tracker.received == 49 and not any(tracker.anomalies.values())


def _results() -> dict:
    paced = {"p50": 0.5, "p99": 0.9, "lag_max_ms": 2.0, "delivered": 100, "expected": 100, "anomalies": 0}
    step = {**paced, "spread_p50": 1.0, "spread_p99": 3.0}
    return {
        "ingest": {"harness": {"rate": 60_000.0, "anomalies": 0}, "bare": {"rate": 90_000.0, "anomalies": 0}},
        "latency": {f"{r}-{k}": paced for r in (1000, 20000) for k in ("harness", "bare")},
        "capacity": {"held": 10_000, "asked": 10_000, "rss_per_listener": 15_000.0, "nofile": 20_000, "error": None},
        "fanin": {"steps": [{**step, "listeners": 10}, {**step, "listeners": 50, "spread_p99": 9.0}], "limit": 10},
        "writes": {"harness": {"rate": 9000.0, "failures": 0}, "fasthttp": {"rate": 8000.0, "failures": 0}},
        "judge": {"seconds": 9.0, "merge_seconds": 8.0, "peak_rss": 130 << 20, "notifications": 10_000_000},
    }


def test_section_prints_every_figure_beside_its_goal_and_ceiling() -> None:
    text = "\n".join(section(_results(), 3))
    for n in range(1, 8):
        assert f"\n| {n} | " in text
    assert "60,000/s (67% of bare) | ≥ 50,000/s and ≥ 60% of bare | bare loop 90,000/s | met" in text
    assert "10,000 of 10,000, 14.6 KB each" in text
    assert "Locust FastHttpUser 8,000/s" in text
    assert "**not met**" not in text


def test_section_marks_a_missed_goal() -> None:
    results = _results()
    results["capacity"] = {**results["capacity"], "held": 1_900, "error": "OSError: too many open files"}
    text = "\n".join(section(results, 3))
    assert "1,900 of 10,000" in text and "stopped by OSError" in text and "**not met**" in text


def test_ingest_share_is_of_the_faster_bare_loop() -> None:
    results = _results()
    results["ingest"]["frames"] = {"rate": 120_000.0, "anomalies": 0}
    text = "\n".join(section(results, 3))
    assert "60,000/s (50% of bare)" in text
    assert (
        "bare loop 90,000/s (websocket-client's frames), 120,000/s (the harness's frame reader) | **not met**" in text
    )
