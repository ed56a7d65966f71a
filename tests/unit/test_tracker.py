"""Listener tracker: checks on arrival, live deltas, and memory that does not grow with messages."""

import gc
import tracemalloc
from dataclasses import replace

import orjson
import pytest

from harness.delivery.anomalies import Anomaly
from harness.delivery.identity import insert_row
from harness.delivery.latency import LatencyHistogram
from harness.delivery.tracker import MAX_WITNESSES, ListenerTracker
from harness.targets.base import Change, Op
from tests.support.delivery_world import DRAIN_NS, MS, PAYLOAD, T0, World


def test_observation_carries_latency_and_anomalies() -> None:
    world = World()
    world.standard()
    tracker = ListenerTracker("l1", None, PAYLOAD, DRAIN_NS, created_ns=T0)
    tracker.mark_ready(T0)
    first = tracker.observe(world.changes[0])
    assert first.anomalies == () and first.op == "insert"
    assert first.latency_ms == pytest.approx(4.0)
    again = tracker.observe(world.changes[0])
    assert again.anomalies == ("duplicates",)
    delete = next(c for c in world.changes if c.op is Op.DELETE)
    obs = tracker.observe(replace(delete, deleted=False, committed_ns=delete.received_ns - 2 * MS))
    assert obs.anomalies == ("delete_flag_errors",) and obs.latency_ms == pytest.approx(2.0)


def test_delta_reports_only_what_is_new() -> None:
    world = World()
    world.standard()
    tracker = ListenerTracker("l1", None, PAYLOAD, DRAIN_NS, created_ns=T0)
    for c in world.changes[:5]:
        tracker.observe(c)
    d1 = tracker.delta()
    assert d1["received"] == 5 and d1["duplicates"] == 0
    assert LatencyHistogram.decode(d1["latency"]).count == 5
    tracker.observe(world.changes[0])
    d2 = tracker.delta()
    assert d2["received"] == 1 and d2["duplicates"] == 1
    assert LatencyHistogram.decode(d2["latency"]).count == 1


def test_update_with_skipped_version_is_an_old_value_error() -> None:
    world = World()
    world.standard()
    tracker = ListenerTracker("l1", None, PAYLOAD, DRAIN_NS, created_ns=T0)
    upd = next(c for c in world.changes if c.op is Op.UPDATE)
    obs = tracker.observe(replace(upd, old_row={**upd.old_row, "version": 0}))
    assert obs.anomalies == ("old_value_errors",)
    (witness,) = tracker.summary().witnesses
    assert (witness.kind, witness.expected, witness.observed) == (Anomaly.OLD_VALUE, "old version 1", "old version 0")


def _insert(n: int) -> Change:
    row = insert_row(1, 10, n, n, (T0 + n * MS) // 1000, PAYLOAD)
    return Change(Op.INSERT, row, None, n, T0 + n * MS + 3 * MS, 200)


def _summary_after(count: int) -> dict:
    tracker = ListenerTracker("l1", 10, PAYLOAD, DRAIN_NS, created_ns=T0)
    tracker.mark_ready(T0)
    for n in range(1, count + 1):
        tracker.observe(_insert(n))
    tracker.mark_end(T0 + (count + 10) * MS + DRAIN_NS // 2)
    assert len(tracker._late_buckets) <= 102
    return tracker.summary().to_dict()


def test_summary_size_does_not_grow_with_in_order_notifications() -> None:
    small = _summary_after(1_000)
    big = _summary_after(100_000)
    assert big["received"] == 100_000 and big["writers"]["1"]["delivered"] == [[1, 100_000]]
    # arrivals in the last 2 s before the end (T0 + count + 1000 ms): rows count-993..count, to a 20 ms bucket
    assert abs(small["late"] - 994) <= 20 and abs(big["late"] - 994) <= 20
    assert len(orjson.dumps(big)) < len(orjson.dumps(small)) + 100


def test_tracker_memory_does_not_grow_with_in_order_notifications() -> None:
    """What the tracker keeps after 100,000 in-order notifications is what it kept after 1,000 (audit M4):
    a tracker that held on to every change would keep megabytes more."""
    tracker = ListenerTracker("l1", 10, PAYLOAD, DRAIN_NS, created_ns=T0)
    tracker.mark_ready(T0)
    changes = [_insert(n) for n in range(1, 100_001)]  # made before tracing: only what observe keeps counts
    tracemalloc.start()
    try:
        for change in changes[:1_000]:
            tracker.observe(change)
        gc.collect()
        after_1k = tracemalloc.get_traced_memory()[0]
        for change in changes[1_000:]:
            tracker.observe(change)
        gc.collect()
        after_100k = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert tracker.received == 100_000
    assert after_100k - after_1k < 256 * 1024, f"retained {after_100k - after_1k} bytes more after 100,000"


def test_one_displaced_notification_is_one_out_of_order() -> None:
    tracker = ListenerTracker("l1", 10, PAYLOAD, DRAIN_NS, created_ns=T0)
    for n in (1, 2, 3, 9, 4, 5, 6, 7, 8, 10):
        tracker.observe(_insert(n))
    assert tracker.anomalies["out_of_order"] == 1
    (witness,) = tracker.summary().witnesses
    assert witness.wseq == 4 and witness.observed == "after wseq 9"


def test_anomalies_keep_counting_past_the_witness_limit() -> None:
    tracker = ListenerTracker("l1", 10, PAYLOAD, DRAIN_NS, created_ns=T0)
    first = _insert(1)
    for _ in range(21):
        tracker.observe(first)
    assert tracker.anomalies["duplicates"] == 20
    assert len(tracker.summary().witnesses) == MAX_WITNESSES


def test_new_value_of_a_snapshot_row_is_checked() -> None:
    tracker = ListenerTracker("l1", 10, PAYLOAD, DRAIN_NS, created_ns=T0)
    row = _insert(1).row
    obs = tracker.observe(Change(Op.SNAPSHOT, {**row, "version": 2}, None, 1, T0, 200))
    assert obs.anomalies == ("new_value_errors",)
