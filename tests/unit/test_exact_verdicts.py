"""Exact verdicts: one test per way the checker was found wrong (issue 8), each a stream built with the
project's own classes, and the verdict it must give."""

from __future__ import annotations

import random
import time
from dataclasses import replace
from types import SimpleNamespace
from typing import Any

import msgpack
import orjson
import pytest

from harness.delivery.anomalies import Anomaly
from harness.delivery.identity import row_id
from harness.delivery.ledger import WriterLedger
from harness.plan import ReconnectSpec
from harness.targets.base import Change, Op, Outcome, WriteResult
from harness.targets.kalamdb.wire import WireError
from locustfiles.listeners import ListenerUser
from locustfiles.writers import LiveRows
from tests.support.delivery_world import DRAIN_NS, MS, T0, World


def _counts(report: dict[str, Any]) -> dict[str, int]:
    """The non-zero anomaly counts (late arrivals are delivered, not an anomaly of the verdict)."""
    return {str(k): report["totals"][k] for k in Anomaly if k is not Anomaly.LATE and report["totals"][k]}


def _witnesses(report: dict[str, Any], kind: Anomaly) -> list[dict[str, Any]]:
    return [w for w in report["witnesses"] if w["kind"] == kind]


def _wseq_of(change: Change) -> int:
    return int((change.row or change.old_row or {})["wseq"])


# -- case 1: a malformed frame, and a listener that ends before the stop ------------------------------


class _Sub:
    """A subscription whose second recv raises what a driver raises on a row sent as a positional array."""

    def __init__(self, changes: list[Change], raised: Exception | None = None) -> None:
        self.spec = SimpleNamespace(reconnect=None)
        self.deadline = float("inf")
        self.last_seq: int | None = 1
        self.last_error: str | None = None
        self.requested_ns: int | None = None
        self.replayed = False  # a 0.4-style resume: current rows, not a replay
        self.opened = 0
        raised = raised or AttributeError("'list' object has no attribute 'items'")
        self._script: list[Any] = [changes[0], raised, *changes[1:]]
        self._done = False

    def stop(self) -> bool:
        return self._done

    def recv(self, timeout: float) -> Change | None:
        if not self._script:
            self._done = True
            return None
        item = self._script.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        pass

    def open(self, resume_from: int | None, until: float) -> bool:
        self.opened += 1
        self.requested_ns = T0 + 2_000 * MS
        return True


@pytest.mark.parametrize(
    "raised",
    [AttributeError("'list' object has no attribute 'items'"), WireError("frame is not JSON: unexpected character")],
    ids=["driver-crash", "protocol-error"],
)
def test_case1_a_malformed_frame_is_a_counted_anomaly_then_a_resume(raised: Exception) -> None:
    world = World()
    world.standard()
    tracker = world.tracker()
    tracker.mark_ready(T0 + 500 * MS)
    sub = _Sub(world.changes, raised)
    fired: list[tuple[Any, ...]] = []
    user = SimpleNamespace(fire=lambda *args: fired.append(args))  # Locust's request event, as OneShotUser fires it
    ended = ListenerUser._receive(user, sub, tracker)  # type: ignore[arg-type]
    tracker.mark_end(world.end_ns(), early=ended)
    assert ended is None and sub.opened == 1  # it resumed and went on to the stop
    assert len(fired) == len(world.changes)
    report = world.check(tracker)
    assert _counts(report) == {Anomaly.MALFORMED: 1}
    assert type(raised).__name__ in _witnesses(report, Anomaly.MALFORMED)[0]["observed"]
    assert report["connections"]["unexpected_disconnects"] == 1
    assert report["totals"]["delivered"] == 16


def test_case1_a_listener_that_ends_before_the_stop_is_an_anomaly_not_silence() -> None:
    world = World()
    world.standard()
    tracker = world.tracker()
    tracker.mark_ready(T0 + 500 * MS)
    for change in world.changes[:5]:
        tracker.observe(change)
    tracker.mark_end(world.changes[4].received_ns, early="the listener's receive loop raised")
    report = world.check(tracker)
    assert report["totals"][Anomaly.ENDED_EARLY] == 1
    (witness,) = _witnesses(report, Anomaly.ENDED_EARLY)
    assert witness["listener"] == "l1" and "raised" in witness["observed"]


class _PlannedSub(_Sub):
    """A subscription that leaves after 3 changes (a planned reconnect) and whose close takes its time."""

    def __init__(self, changes: list[Change]) -> None:
        super().__init__(changes)
        self._script = list(changes)
        self.spec = SimpleNamespace(reconnect=ReconnectSpec(after_changes=3, away_seconds=0.0))
        self.closed_at: list[int] = []

    def close(self) -> None:
        self.closed_at.append(time.time_ns())
        time.sleep(0.05)  # a client close waits for the server's echo

    def stop_wait(self, seconds: float) -> bool:
        return False


def test_suspicion_a_planned_reconnect_is_stamped_before_close_waits() -> None:
    world = World()
    world.standard()
    tracker = world.tracker()
    tracker.mark_ready(T0 + 500 * MS)
    sub = _PlannedSub(world.changes)
    user = SimpleNamespace(fire=lambda *args: None)
    assert ListenerUser._receive(user, sub, tracker) is None  # type: ignore[arg-type]
    (gap,) = tracker.disconnects
    assert gap.expected and gap.down_ns <= sub.closed_at[0]


# -- cases 2, 3, 6: marks, not time, decide what a resumed gap excuses ---------------------------------


def _resumed(world: World, received: list[Change], down_ns: int, up_ns: int, after: list[Change]) -> dict[str, Any]:
    tracker = world.tracker()
    tracker.mark_ready(T0 + 500 * MS)
    for change in received:
        tracker.observe(change)
    tracker.mark_disconnected(down_ns, "reset by peer", expected=False)
    tracker.mark_resumed(up_ns, resumed=True)
    for change in after:
        tracker.observe(change)
    tracker.mark_end(world.end_ns())
    return world.check(tracker)


def test_case2_losses_just_before_a_resumed_disconnect_are_lost() -> None:
    world = World()
    world.writer(1, 10)
    for _ in range(5):
        world.insert(1)  # wseq 1..5
    world.delete(1, 1)
    world.update(1, 3)  # wseq 6, replaces insert 3
    for _ in range(3):
        world.insert(1)  # wseq 7..9
    down = world.t + 5 * MS  # the drops are 30 to 80 ms before the disconnect
    dropped_insert = next(c for c in world.changes if c.op is Op.INSERT and _wseq_of(c) == 3)
    dropped_delete = next(c for c in world.changes if c.op is Op.DELETE)
    live = [c for c in world.changes if c is not dropped_insert and c is not dropped_delete]
    world.t = down + 50 * MS
    up = world.t
    world.insert(1)  # wseq 10, after the resume
    report = _resumed(world, live, down, up, world.changes[-1:])
    assert _counts(report) == {Anomaly.LOST: 2}
    lost = _witnesses(report, Anomaly.LOST)
    assert {(w["wseq"], w["row"]) for w in lost} == {(3, None), (None, 1)}  # insert 3, and the delete of row 1


def test_case3_a_correct_resume_after_a_lagging_connection_loses_nothing() -> None:
    world = World()
    world.writer(1, 10)
    for _ in range(10):
        world.insert(1)  # wseq 1..10
    # the send queue backs up from here: nothing after wseq 3 arrives before the drop (400 ms later)
    for n in range(4, 11):
        world.update(1, n)  # wseq 11..17 replace inserts 4..10
    world.t += 400 * MS
    down = world.t
    up = down + 100 * MS
    current = [c for c in world.changes if _wseq_of(c) >= 11]  # the resume sends current rows only
    snapshot = [replace(c, op=Op.SNAPSHOT, old_row=None, received_ns=up) for c in current]
    report = _resumed(world, world.changes[:3], down, up, snapshot)
    assert _counts(report) == {}
    assert report["totals"]["expected"] == 3 + 7 and report["totals"]["may"] == 7


def test_case6_the_servers_clock_does_not_widen_what_a_resume_excuses() -> None:
    world = World()
    world.writer(1, 10)
    for _ in range(60):
        world.insert(1)  # wseq 1..60
    for n in range(1, 51):
        world.update(1, n)  # wseq 61..110 replace inserts 1..50
    for n in range(51, 61):
        world.delete(1, n)
    behind = 40_000 * MS  # the server's clock is 40 s behind: every delete seems 40 s late
    stream = [replace(c, committed_ns=c.received_ns - behind) if c.op is Op.DELETE else c for c in world.changes]
    received = [c for c in stream if not (c.op is Op.INSERT and _wseq_of(c) <= 50)]  # 50 inserts dropped
    down = world.t
    world.t += 100 * MS
    up = world.t
    report = _resumed(world, received, down, up, [])
    assert report["totals"]["latency_ms"]["p99"] > 39_000
    assert _counts(report) == {Anomaly.LOST: 50}


# -- case 7: replacements just after an empty resume ---------------------------------------------------


def test_case7_an_empty_resume_is_caught_when_rows_are_updated_again_soon_after() -> None:
    world = World()
    world.writer(1, 10)
    for _ in range(5):
        world.insert(1)  # wseq 1..5, delivered
    down = world.t
    for n in range(1, 6):
        world.update(1, n)  # wseq 6..10 while away: the resume owes them (current at the resume)
    up = world.t
    world.t += 20 * MS
    for n in range(1, 6):
        world.update(1, n)  # wseq 11..15, 20 ms after the resume, replace 6..10
    after = [c for c in world.changes if c.received_ns > up]
    report = _resumed(world, world.changes[:5], down, up, after)  # the resume sent nothing
    assert _counts(report) == {Anomaly.LOST: 5}
    assert sorted(w["wseq"] for w in _witnesses(report, Anomaly.LOST)) == [6, 7, 8, 9, 10]


# -- case 4 and 5: odd identities give a verdict, never a crash ----------------------------------------


def test_case4_a_tombstone_naming_row_0_is_unexpected_with_a_verdict() -> None:
    world = World()
    world.standard()
    tomb = {**world.writers[1].versions[2], "id": row_id(1, 1) - 1, "_deleted": True}
    ghost = Change(Op.DELETE, None, tomb, 99, world.end_ns() - DRAIN_NS - 100 * MS, 100, deleted=True)
    report = world.check(world.listen([*world.changes, ghost]))
    assert report["totals"][Anomaly.UNEXPECTED] == 1
    (witness,) = _witnesses(report, Anomaly.UNEXPECTED)
    assert (witness["writer"], witness["row"], witness["row_id"]) == (1, 0, 1 << 32)
    orjson.dumps(report)


def test_case5_a_bigint_beyond_64_bits_is_an_anomaly_and_the_outputs_still_serialize() -> None:
    world = World()
    world.standard()
    first = world.changes[0]
    huge = [
        replace(first, row={**first.row, "id": 2**64 + 1}),
        replace(first, row={**first.row, "wseq": str(2**70)}),
        replace(first, row={**first.row, "writer_id": 2**64}),
        replace(first, row={**first.row, "conversation_id": 2**64}),
    ]
    tracker = world.listen([*world.changes, *huge])
    summary = tracker.summary().to_dict()
    msgpack.packb(summary)  # a distributed run sends this to the master
    report = world.check(tracker)
    orjson.dumps(report)  # and writes this as delivery.json
    assert _counts(report) == {Anomaly.MALFORMED: 3, Anomaly.NEW_VALUE: 1, Anomaly.DUPLICATE: 1}


# -- cases 8 and 9: every column the writer wrote is checked -------------------------------------------


def test_case8_a_garbled_or_content_less_tombstone_is_a_delete_value_error() -> None:
    for tombstone in ({"content": "garbled"}, {"content": None}, {"conversation_id": 99}):
        world = World()
        world.standard()
        stream = [
            replace(c, old_row={**c.old_row, **tombstone}) if c.op is Op.DELETE and c.old_row["writer_id"] == 1 else c
            for c in world.changes
        ]
        report = world.check(world.listen(stream))
        assert _counts(report) == {Anomaly.DELETE_VALUE: 1}, tombstone
        assert _witnesses(report, Anomaly.DELETE_VALUE)[0]["row"] == 1


def test_case9_every_written_column_of_a_new_row_is_checked() -> None:
    bad = [
        (Op.INSERT, lambda row: {k: v for k, v in row.items() if k != "content"}, Anomaly.NEW_VALUE),
        (Op.INSERT, lambda row: {**row, "content": None}, Anomaly.NEW_VALUE),
        (Op.UPDATE, lambda row: {k: v for k, v in row.items() if k != "content"}, Anomaly.NEW_VALUE),
        (Op.INSERT, lambda row: {**row, "conversation_id": 20}, Anomaly.NEW_VALUE),
        (Op.INSERT, lambda row: {**row, "sent_at": None}, Anomaly.NEW_VALUE),
        (Op.INSERT, lambda row: {**row, "version": 1.9}, Anomaly.MALFORMED),
    ]
    for op, change_row, kind in bad:
        world = World()
        world.standard()
        i = next(i for i, c in enumerate(world.changes) if c.op is op and c.row["writer_id"] == 1)
        stream = list(world.changes)
        stream[i] = replace(stream[i], row=change_row(stream[i].row))
        report = world.check(world.listen(stream))  # unfiltered: writer 1 writes conversation 10
        assert report["totals"][kind] == 1, (op, kind, _counts(report))
        assert all(report["totals"][k] == 0 for k in (Anomaly.OLD_VALUE, Anomaly.OUT_OF_ORDER)), _counts(report)


# -- case 10: a delete takes its place in its writer's order -----------------------------------------


def _case10_world() -> tuple[World, list[Change]]:
    """Insert 1..3, delete row 1, insert 4..6, update row 2 (the issue's writer)."""
    world = World()
    world.writer(1, 10)
    for _ in range(3):
        world.insert(1)
    world.delete(1, 1)
    for _ in range(3):
        world.insert(1)
    world.update(1, 2)
    return world, list(world.changes)


def test_case10_a_delete_arriving_after_a_later_write_of_its_writer_is_out_of_order() -> None:
    world, changes = _case10_world()
    delete = changes.pop(3)
    report = world.check(world.listen([*changes, delete]))  # the delete last, after update 2
    assert _counts(report) == {Anomaly.OUT_OF_ORDER: 1}
    assert _witnesses(report, Anomaly.OUT_OF_ORDER)[0]["op"] == "delete"


def test_case10_a_delete_arriving_before_an_earlier_write_of_its_writer_is_out_of_order() -> None:
    world, changes = _case10_world()
    delete = changes.pop(3)
    report = world.check(world.listen([changes[0], delete, *changes[1:]]))  # the delete before insert 2
    assert _counts(report) == {Anomaly.OUT_OF_ORDER: 1}  # one displaced message counts once
    assert _witnesses(report, Anomaly.OUT_OF_ORDER)[0]["wseq"] == 2


# -- case 11: a subscription without resume delivering old writes --------------------------------------


def test_case11_changes_from_before_a_new_subscription_without_resume_are_stale() -> None:
    world = World()
    world.writer(1, 10)
    for _ in range(20):
        world.insert(1)  # insert k invoked at T0 + 990 + 10k ms, acked 1 ms later
    tracker = world.tracker()
    tracker.mark_ready(T0 + 500 * MS)
    for change in world.changes[:4]:
        tracker.observe(change)
    tracker.mark_disconnected(T0 + 1045 * MS, "reset by peer", expected=False)
    requested = T0 + 1100 * MS + MS // 2  # inserts 5..10 were acked before the new subscription was asked for
    tracker.mark_resumed(requested + 5 * MS, resumed=False, requested_ns=requested)
    for change in world.changes[4:]:  # yet they arrive as live inserts on it
        tracker.observe(change)
    tracker.mark_end(world.end_ns())
    report = world.check(tracker)
    assert _counts(report) == {Anomaly.STALE: 6}
    assert _witnesses(report, Anomaly.STALE)[0]["wseq"] == 5


# -- case 12: per-user visibility ----------------------------------------------------------------------


def test_case12_a_listener_sees_its_own_users_rows_only_and_a_leak_is_flagged() -> None:
    world = World()
    world.writer(1, 10, user="alice")
    world.writer(2, 20, user="bob")
    for _ in range(4):
        world.insert(1)
        world.insert(2)
    world.update(1, 1)
    world.update(2, 1)
    alices = [c for c in world.changes if (c.row or c.old_row)["writer_id"] == 1]
    leak = next(c for c in world.changes if (c.row or c.old_row)["writer_id"] == 2)

    def listen(changes: list[Change]) -> dict[str, Any]:
        tracker = world.tracker(user="alice", per_user=True)
        tracker.mark_ready(T0 + 500 * MS)
        for change in changes:
            tracker.observe(change)
        tracker.mark_end(world.end_ns())
        return world.check(tracker)

    correct = listen(alices)
    assert _counts(correct) == {} and correct["totals"]["expected"] == correct["totals"]["delivered"] == 5
    leaked = listen([*alices, leak])
    assert _counts(leaked) == {Anomaly.OTHER_USER: 1}
    assert _witnesses(leaked, Anomaly.OTHER_USER)[0]["writer"] == 2


# -- case 13: the ledger does not grow per operation ---------------------------------------------------


def _mixed_ledger(ops: int, weights: tuple[float, float, float]) -> WriterLedger:
    """A writer doing a clean mix as locustfiles.writers does: updates cycle over live rows, deletes the oldest."""
    rng = random.Random(1)
    ledger, rows = WriterLedger(1, 10), LiveRows()
    wseq = n = 0
    for i in range(ops):
        res = WriteResult(Outcome.OK, T0 + i * MS, T0 + i * MS + MS // 2)
        op = rng.choices(("insert", "update", "delete"), weights=weights)[0]
        target = rows.oldest() if op == "delete" else rows.next_to_update()
        if op == "insert" or target is None:
            wseq, n = wseq + 1, n + 1
            ledger.record("insert", wseq, res)
            rows.add(n, wseq)
        elif op == "update":
            wseq += 1
            ledger.record("update", wseq, res, supersedes=rows.wseqs[target])
            rows.wseqs[target] = wseq
        else:
            ledger.record("delete", target, res, supersedes=rows.wseqs[target])
            rows.remove(target)
    return ledger


def _size_without_time_index(ledger: WriterLedger) -> int:
    data = ledger.to_dict()
    return len(orjson.dumps({k: v for k, v in data.items() if k not in ("times", "delete_times")}))


def test_case13_the_ledger_keeps_no_entry_per_update_or_delete() -> None:
    """Beyond its time checkpoints (which grow with run time), a ledger is bounded by the writer's live rows."""
    for weights in ((0.4, 0.2, 0.4), (0.2, 0.6, 0.2)):  # tables that stay small: four times the run, same ledger
        short, long = (_size_without_time_index(_mixed_ledger(n, weights)) for n in (5_000, 20_000))
        assert long < short * 1.2 + 200, weights
    ledger = _mixed_ledger(20_000, (0.6, 0.3, 0.1))  # a growing table: at most one range per live row
    live = ledger.counts["ok"]["insert"] - ledger.counts["ok"]["delete"]
    assert len(ledger.to_dict()["current"]) <= live
