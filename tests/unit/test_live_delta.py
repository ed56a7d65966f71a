"""A listener's live delta, encoded for a worker's report or as the histogram itself in-process, gives one view."""

from __future__ import annotations

import time

from harness.delivery.identity import insert_row
from harness.delivery.latency import LatencyHistogram
from harness.delivery.tracker import ListenerTracker
from harness.targets.base import Change, Op
from locustfiles.aggregation import LiveView


def _tracker(n: int) -> ListenerTracker:
    tracker = ListenerTracker("l1", None, 50, 10**12)
    now_ns = time.time_ns()
    for i in range(1, n + 1):
        row = insert_row(1, 1, i, i, now_ns // 1000 - 1000 * i, 50)
        tracker.observe(Change(Op.INSERT, row, None, i, now_ns, 300))
    return tracker


def test_the_in_process_delta_is_the_encoded_one_without_the_encoding() -> None:
    wire, local = _tracker(40), _tracker(40)
    encoded, direct = wire.delta(), local.delta(encode=False)
    assert isinstance(direct["latency"], LatencyHistogram) and isinstance(encoded["latency"], str)
    assert direct["latency"].percentiles_ms() == LatencyHistogram.decode(encoded["latency"]).percentiles_ms()
    assert {k: v for k, v in direct.items() if k != "latency"} == {k: v for k, v in encoded.items() if k != "latency"}
    assert local.delta(encode=False)["latency"].count == 0  # the next delta starts empty
    assert local.summary().latency == wire.summary().latency  # and the total keeps everything


def test_a_live_view_fed_either_way_shows_the_same_figures() -> None:
    by_wire, by_object = LiveView(), LiveView()
    by_wire.add({"l1": _tracker(25).delta()})
    by_object.add({"l1": _tracker(25).delta(encode=False)})
    assert by_wire.listeners() == by_object.listeners()
    assert by_wire.totals() == by_object.totals()
