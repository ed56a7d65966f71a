"""Checker: each planted anomaly is reported by the right counter, with a witness."""

from dataclasses import replace

import pytest

from harness.delivery.anomalies import Anomaly
from harness.targets.base import Op, Outcome
from tests.support.delivery_world import DRAIN_NS, MS, T0, World

ZERO = {kind: 0 for kind in Anomaly if kind is not Anomaly.LATE}


def _counts(report: dict) -> dict:
    return {k: report["totals"][k] for k in ZERO}


def _witness(report: dict, kind: str) -> dict:
    found = [w for w in report["witnesses"] if w["kind"] == kind]
    assert found, f"no {kind} witness in {report['witnesses']}"
    return found[0]


def test_clean_stream_reports_nothing() -> None:
    world = World()
    world.standard()
    mine = [c for c in world.changes if (c.row or c.old_row)["conversation_id"] == 10]
    report = world.check(world.listen(world.changes), world.listen(mine, conversation=10, lid="l2"))
    assert _counts(report) == ZERO
    rows = {r["listener"]: r for r in report["listeners"]}
    assert rows["l1"]["expected"] == rows["l1"]["delivered"] == 16
    assert rows["l2"]["expected"] == rows["l2"]["delivered"] == 8
    # 14 + 7 inserts and updates, and 3 deletes: they carry no commit time, their latency is from the ledger's send time
    assert report["totals"]["latency_ms"]["count"] == 24
    assert report["totals"]["latency_sources"] == {"sent_at": 21, "writer_send_time": 3}
    assert abs(report["totals"]["latency_ms"]["p50"] - 4.0) <= 0.004  # HDR: 3 significant digits
    assert report["witnesses"] == [] and report["timeline"] == []
    assert report["connections"]["unexpected_disconnects"] == 0


def test_lost_write() -> None:
    world = World()
    world.standard()
    dropped = world.changes[4]  # writer 1's third insert
    report = world.check(world.listen([c for c in world.changes if c is not dropped]))
    assert _counts(report) == {**ZERO, Anomaly.LOST: 1}
    w = _witness(report, Anomaly.LOST)
    assert (w["writer"], w["wseq"]) == (1, 3)
    assert any(e["kind"] == "lost" and e["count"] == 1 for e in report["timeline"])


def test_lost_delete() -> None:
    world = World()
    world.standard()
    report = world.check(
        world.listen([c for c in world.changes if c.op is not Op.DELETE or c.old_row["writer_id"] != 2])
    )
    assert _counts(report) == {**ZERO, Anomaly.LOST: 1}
    assert _witness(report, Anomaly.LOST)["row_id"] == (2 << 32) | 1


def test_duplicate() -> None:
    world = World()
    world.standard()
    stream = world.changes[:7] + [world.changes[6]] + world.changes[7:]
    report = world.check(world.listen(stream))
    assert _counts(report) == {**ZERO, Anomaly.DUPLICATE: 1}
    assert _witness(report, Anomaly.DUPLICATE)["writer"] == 1


def test_swapped_notifications() -> None:
    world = World()
    world.standard()
    stream = list(world.changes)
    stream[0], stream[2] = stream[2], stream[0]  # writer 1's first two inserts swapped
    report = world.check(world.listen(stream))
    assert _counts(report) == {**ZERO, Anomaly.OUT_OF_ORDER: 1}
    w = _witness(report, Anomaly.OUT_OF_ORDER)
    assert (w["writer"], w["wseq"]) == (1, 1)


def test_delete_delivered_ahead_of_the_next_insert_is_out_of_order() -> None:
    """live.ordering's own case (audit M5): insert m1, update m1, insert m2, delete m1 from one writer,
    delivered with the delete of m1 ahead of the insert of m2."""
    world = World()
    world.writer(1, 1)
    m1 = world.insert(1)
    world.update(1, m1)
    world.insert(1)
    world.delete(1, m1)
    insert1, update1, insert2, delete1 = world.changes
    report = world.check(world.listen([insert1, update1, delete1, insert2]))
    assert _counts(report) == {**ZERO, "out_of_order": 1}


def test_delivery_of_a_failed_write_is_aborted_and_of_a_write_never_made_unexpected() -> None:
    world = World()
    world.standard()
    world.insert(1, Outcome.FAILED, notify=True)
    report = world.check(world.listen(world.changes))
    assert _counts(report) == {**ZERO, Anomaly.ABORTED: 1}
    assert report["totals"]["phantom"] == 1
    assert "failed" in _witness(report, Anomaly.ABORTED)["detail"]

    world = World()
    world.standard()
    ghost = world.changes[-1 - 2]  # writer 2's last update
    ghost = replace(ghost, row={**ghost.row, "wseq": 99, "version": 4}, old_row={**ghost.old_row, "version": 3})
    report = world.check(world.listen([*world.changes, ghost]))
    # a ghost of row 1 after its delete, claiming version 4 with version 2's old and new contents
    assert _counts(report) == {
        **ZERO,
        Anomaly.UNEXPECTED: 1,
        Anomaly.OUT_OF_ORDER: 1,
        Anomaly.OLD_VALUE: 1,
        Anomaly.NEW_VALUE: 1,
    }
    assert "never attempted" in _witness(report, Anomaly.UNEXPECTED)["detail"]


def test_stale_old_value() -> None:
    world = World()
    world.standard()
    stream = list(world.changes)
    i = next(i for i, c in enumerate(stream) if c.op is Op.UPDATE)
    stream[i] = replace(stream[i], old_row={**stream[i].old_row, "content": "stale"})
    report = world.check(world.listen(stream))
    assert _counts(report) == {**ZERO, Anomaly.OLD_VALUE: 1}
    assert _witness(report, Anomaly.OLD_VALUE)["observed"] == "old content 'stale'"


def test_wrong_new_value() -> None:
    world = World()
    world.standard()
    stream = list(world.changes)
    i = next(i for i, c in enumerate(stream) if c.op is Op.INSERT and c.row["writer_id"] == 2)
    stream[i] = replace(stream[i], row={**stream[i].row, "content": "garbled"})
    report = world.check(world.listen(stream))
    assert _counts(report) == {**ZERO, Anomaly.NEW_VALUE: 1}
    w = _witness(report, Anomaly.NEW_VALUE)
    assert w["writer"] == 2 and w["observed"] == "content 'garbled'" and w["expected"] == "version 1's content"


def test_missing_deleted_flag() -> None:
    world = World()
    world.standard()
    stream = [
        replace(c, deleted=None) if c.op is Op.DELETE and c.old_row["writer_id"] == 1 else c for c in world.changes
    ]
    report = world.check(world.listen(stream))
    assert _counts(report) == {**ZERO, Anomaly.DELETE_FLAG: 1}
    assert _witness(report, Anomaly.DELETE_FLAG)["row_id"] == (1 << 32) | 1


def test_indeterminate_write_that_arrived_is_may_not_anomaly() -> None:
    world = World()
    world.standard()
    world.insert(1, Outcome.INDETERMINATE, notify=True)
    report = world.check(world.listen(world.changes))
    assert _counts(report) == ZERO
    assert report["totals"]["expected"] == 16 and report["totals"]["may"] == 1
    assert report["totals"]["delivered"] == 17


def test_indeterminate_write_that_did_not_arrive_is_no_anomaly() -> None:
    world = World()
    world.standard()
    world.insert(2, Outcome.INDETERMINATE, notify=False)
    report = world.check(world.listen(world.changes))
    assert _counts(report) == ZERO
    assert report["totals"]["may"] == 1 and report["totals"]["delivered"] == 16


def test_late_notification_is_delivered_not_lost() -> None:
    """A notification arriving after end - drain counts as delivered, in ``late`` and in latency."""
    world = World()
    world.standard()
    end = world.end_ns()
    stream = list(world.changes)
    stream[-2] = replace(stream[-2], received_ns=end - DRAIN_NS + 500 * MS)  # writer 2's last update
    stream[-1] = replace(stream[-1], received_ns=end - DRAIN_NS // 2)  # and its delete
    report = world.check(world.listen(stream, end_ns=end))
    assert _counts(report) == ZERO
    assert report["totals"]["late"] == 2
    assert report["totals"]["latency_ms"]["max"] > 500
    assert _witness(report, Anomaly.LATE)["writer"] == 2


def test_filtered_listener_gets_only_its_conversation() -> None:
    world = World()
    world.standard()
    mine = [c for c in world.changes if (c.row or c.old_row)["conversation_id"] == 10]
    other = next(c for c in world.changes if (c.row or c.old_row)["conversation_id"] == 20)
    report = world.check(world.listen([*mine, other], conversation=10))
    assert _counts(report) == {**ZERO, Anomaly.OUTSIDE_FILTER: 1}
    assert _witness(report, Anomaly.OUTSIDE_FILTER)["detail"].endswith("observed conversation 20 (writer 2)")
    assert report["totals"]["expected"] == 8


def _resume_world(
    drop_from_snapshot: int | None = None, update_later: int | None = None, features: tuple[str, ...] = ("resume",)
) -> dict:
    """A listener sees 6 of 10 inserts, leaves; rows are updated, deleted and inserted while it is away;
    it resumes and gets the current version of every row changed since (as KalamDB does), then live changes.
    ``update_later`` updates that row a second after the resume."""
    world = World()
    world.writer(1, 10)
    for _ in range(10):
        world.insert(1)
    down = world.t
    world.update(1, 3)  # wseq 11, replaces insert 3 (delivered before the gap)
    world.update(1, 3)  # wseq 12, replaces wseq 11
    world.update(1, 8)  # wseq 13, replaces insert 8 (in flight at the disconnect)
    world.delete(1, 1)
    world.insert(1)  # row 11, wseq 14
    up = world.t
    for _ in range(5):
        world.insert(1)  # wseq 15..19, live after the resume
    if update_later is not None:
        world.t += 1_000 * MS
        world.update(1, update_later)  # wseq 20, long after the resume
    by_wseq = {(c.row or c.old_row)["wseq"]: c for c in world.changes if c.op is not Op.DELETE}
    snapshot = [
        replace(by_wseq[w], op=Op.SNAPSHOT, old_row=None, received_ns=up)
        for w in (7, 9, 10, 12, 13, 14)
        if w != drop_from_snapshot
    ]
    tracker = world.tracker()
    tracker.mark_ready(T0 + 500 * MS)
    for c in world.changes[:6]:
        tracker.observe(c)
    tracker.mark_disconnected(down, "planned", expected=True)
    tracker.mark_resumed(up)
    for c in [*snapshot, *[c for c in world.changes if c.received_ns > up]]:
        tracker.observe(c)
    tracker.mark_end(world.end_ns())
    return world.check(tracker, features=features)


def test_resume_gap_excuses_replaced_versions_and_deletes_only() -> None:
    report = _resume_world()
    assert _counts(report) == ZERO
    totals = report["totals"]
    # replaced above the mark (wseq 6, the last delivered before the gap): 8 and 11; versions 1 and 3
    # were delivered before the gap, so they stay expected
    assert totals["expected"] == 19 - 2
    assert totals["may"] == 2 + 1  # those two and the delete
    assert totals["delivered"] == 6 + 6 + 5
    conn = report["connections"]
    assert conn["unexpected_disconnects"] == 0 and conn["planned_away_seconds"] > 0
    assert conn["listener_seconds_up"] == pytest.approx(conn["listener_seconds_total"] - 0.5, abs=1e-3)
    assert conn["listener_seconds_up"] == conn["listener_seconds_since_ready"]


def test_resume_that_misses_a_current_row_loses_it() -> None:
    report = _resume_world(drop_from_snapshot=9)
    assert _counts(report) == {**ZERO, Anomaly.LOST: 1}
    assert _witness(report, Anomaly.LOST)["wseq"] == 9


def test_a_version_replaced_after_the_resume_is_still_owed_by_it() -> None:
    report = _resume_world(drop_from_snapshot=9, update_later=9)
    assert _counts(report) == {**ZERO, Anomaly.LOST: 1}
    assert _witness(report, Anomaly.LOST)["wseq"] == 9


def _replay_world(drop: int | None = None, replayed: bool = True) -> dict:
    """As ``_resume_world``, but the resume replays every change of the gap (KalamDB 0.7 inside its replay
    log), deletes included; ``drop`` leaves the change of that wseq out (the replay-drop fault)."""
    world = World()
    world.writer(1, 10)
    for _ in range(10):
        world.insert(1)
    down = world.t
    world.update(1, 3)
    world.update(1, 8)
    world.delete(1, 1)
    world.insert(1)
    up = world.t
    for _ in range(3):
        world.insert(1)
    tracker = world.tracker()
    tracker.mark_ready(T0 + 500 * MS)
    for c in world.changes[:6]:
        tracker.observe(c)
    tracker.mark_disconnected(down, "planned", expected=True)
    tracker.mark_resumed(up, replayed=replayed)
    for c in world.changes[6:]:
        key = (c.row or c.old_row)["wseq"] if c.op is not Op.DELETE else None
        if key is None or key != drop:
            tracker.observe(replace(c, received_ns=max(c.received_ns, up)))
    tracker.mark_end(world.end_ns())
    return world.check(tracker, features=("resume", "resume_replays_changes"))


def test_a_replay_resume_owes_every_change_of_the_gap_deletes_included() -> None:
    report = _replay_world()
    assert _counts(report) == ZERO
    assert report["totals"]["may"] == 0 and report["totals"]["expected"] == 10 + 2 + 1 + 3 + 1


def test_a_change_missing_from_a_replay_is_lost() -> None:
    report = _replay_world(drop=11)
    assert _counts(report) == {**ZERO, Anomaly.LOST: 1}
    assert _witness(report, Anomaly.LOST)["wseq"] == 11


def test_a_resume_the_target_could_not_replay_keeps_the_current_rows_excuse() -> None:
    # a 0.7 target whose cursor expired: the fresh snapshot sends current rows, as a 0.4 resume does
    report = _resume_world(features=("resume", "resume_replays_changes"))
    assert _counts(report) == ZERO and report["totals"]["may"] == 3
    assert _counts(_replay_world(drop=8)) == {**ZERO, Anomaly.LOST: 1}  # the same gap replayed owes it


def test_a_row_claiming_a_watched_conversation_from_another_writer_is_outside_the_filter_not_loss() -> None:
    world = World()
    world.standard()
    mine = [c for c in world.changes if (c.row or c.old_row)["conversation_id"] == 10]
    other = next(c for c in world.changes if c.op is Op.INSERT and c.row["writer_id"] == 2)
    forged = replace(other, row={**other.row, "conversation_id": 10})
    report = world.check(world.listen([*mine, forged], conversation=10))
    assert _counts(report) == {**ZERO, Anomaly.OUTSIDE_FILTER: 1}
    assert report["totals"]["expected"] == 8
    assert _witness(report, Anomaly.OUTSIDE_FILTER)["writer"] == 2


def test_a_listener_that_never_subscribed_is_counted_apart() -> None:
    world = World()
    world.standard()
    ready = world.listen(world.changes)
    alone = world.check(ready)["connections"]
    never = world.tracker("l2")
    never.mark_end(world.end_ns())
    both = world.check(ready, never)["connections"]
    assert (alone["listeners_never_ready"], both["listeners_never_ready"]) == (0, 1)
    assert both["listener_seconds_since_ready"] == alone["listener_seconds_since_ready"]


def test_received_by_op_counts_each_kind() -> None:
    world = World()
    world.standard()
    totals = world.check(world.listen(world.changes))["totals"]
    assert totals["received_by_op"] == {"insert": 10, "update": 4, "delete": 2, "snapshot": 0}


def test_unexpected_disconnect_without_resume_is_reported() -> None:
    world = World()
    world.standard()
    tracker = world.listen(world.changes)
    tracker.mark_disconnected(world.t, "reset by peer", expected=False)
    report = world.check(tracker)
    assert report["connections"]["unexpected_disconnects"] == 1
    assert report["connections"]["disconnect_witnesses"][0]["reason"] == "reset by peer"


def _inserts(count: int) -> World:
    """One writer, ``count`` inserts: insert k invoked at T0 + 990 + 10k ms, acked 1 ms later.

    The ledger keeps a time checkpoint every 50 ms (inserts 1, 6, 11, ...); between two, it only
    knows an operation ran after the earlier one's ack and before the later one's invoke, so the
    windows below are placed where that is exact.
    """
    world = World()
    world.writer(1, 10)
    for _ in range(count):
        world.insert(1)
    return world


def _listen_between(world: World, ready_ns: int, end_ns: int, changes) -> dict:
    tracker = world.tracker()
    tracker.mark_ready(ready_ns)
    for change in changes:
        tracker.observe(change)
    tracker.mark_end(end_ns)
    return world.check(tracker)


def test_writes_racing_ready_or_the_drain_window_are_may() -> None:
    world = _inserts(10)
    ready = T0 + 1000 * MS + MS // 2  # while insert 1 is in flight
    end = T0 + 1090 * MS + MS // 2 + DRAIN_NS  # the drain window opens while insert 10 is in flight
    report = _listen_between(world, ready, end, world.changes[1:-1])
    assert _counts(report) == ZERO
    assert (report["totals"]["expected"], report["totals"]["may"], report["totals"]["delivered"]) == (8, 2, 8)
    report = _listen_between(world, ready, end, world.changes)
    assert _counts(report) == ZERO and report["totals"]["delivered"] == 10
    report = _listen_between(world, ready, end, world.changes[2:])
    assert _counts(report) == {**ZERO, Anomaly.LOST: 1} and _witness(report, Anomaly.LOST)["wseq"] == 2


def test_a_gap_without_resume_makes_its_writes_may_and_the_rest_must() -> None:
    world = _inserts(20)
    tracker = world.tracker()
    tracker.mark_ready(T0)
    for change in world.changes[:6]:
        tracker.observe(change)
    tracker.mark_disconnected(T0 + 1065 * MS, "reset by peer", expected=False)
    tracker.mark_resumed(T0 + 1100 * MS, resumed=False)  # inserts 7..10 happened while away
    for change in world.changes[12:]:  # 11 and 12, after the return, never arrive
        tracker.observe(change)
    tracker.mark_end(world.end_ns())
    report = world.check(tracker)
    assert _counts(report) == {**ZERO, Anomaly.LOST: 2}
    assert sorted(w["wseq"] for w in report["witnesses"] if w["kind"] == "lost") == [11, 12]
    assert report["totals"]["may"] == 4 and report["totals"]["expected"] == 16
    assert report["connections"]["unexpected_disconnects"] == 1
