"""Rows moving between conversations: what each generation sends a filtered listener, and what the checker owes.

One writer (conversation 1) inserts 4 rows, moves rows 1 and 2 to conversation 2, updates row 1
there, moves row 1 back and deletes row 2 in conversation 2. ``server_view`` turns the unfiltered
stream into what a correct server sends a listener filtered to one conversation: under 0.7 an
update entering the filter is an insert, one leaving it a delete of the key (``_deleted`` false);
under 0.4 the filter is checked on the new row only.
"""

from __future__ import annotations

from typing import Any

import pytest

from harness.delivery import tracker as tracker_module
from harness.delivery.checker import check
from harness.delivery.tracker import ListenerTracker, WriterView
from harness.errors import HarnessError
from harness.plan import Step, WriterSpec
from harness.scenarios.catalogue import parse_catalogue
from harness.targets.base import Change, Op
from locustfiles.writers import LiveRows
from reports.judge import RULES
from tests.support.delivery_world import DRAIN_NS, MS, PAYLOAD, T0, World

FEATURES = {"0.7": ("resume", "resume_replays_changes", "filter_transitions"), "0.4": ("resume",)}


def _world() -> World:
    world = World()
    world.writer(1, 1)
    for _ in range(4):
        world.insert(1)
    world.move(1, 1, to=2)
    world.move(1, 2, to=2)
    world.update(1, 1)
    world.move(1, 1, to=1)
    world.delete(1, 2)
    return world


def _leave(change: Change) -> Change:
    rid = change.row["id"] if change.row else 0
    return Change(
        Op.DELETE, None, {"id": rid, "_seq": change.server_seq, "_deleted": False}, 0, change.received_ns, 50, False
    )


def server_view(changes: list[Change], conversation: int | None, generation: str) -> list[Change]:
    """What a correct server of ``generation`` sends a listener filtered to ``conversation``."""
    if conversation is None:
        return list(changes)
    out = []
    for c in changes:
        if c.op is not Op.UPDATE:
            row = c.row if c.op is Op.INSERT else c.old_row
            if row and row["conversation_id"] == conversation:
                out.append(c)
            continue
        now = c.row["conversation_id"] == conversation
        was = (c.old_row or {}).get("conversation_id", c.row["conversation_id"]) == conversation
        if generation == "0.4" or (was and now):
            if now:
                out.append(c)
        elif now:
            out.append(Change(Op.INSERT, c.row, None, c.server_seq, c.received_ns, c.wire_bytes))
        elif was:
            out.append(_leave(c))
    return out


def _tracker(conversation: int | None, generation: str, lid: str) -> ListenerTracker:
    views = {1: WriterView(1, None, frozenset({1, 2}))}
    tracker = ListenerTracker(lid, conversation, PAYLOAD, DRAIN_NS, created_ns=T0, writers=views)
    tracker.transitions = generation == "0.7"
    tracker.mark_ready(T0 + 500 * MS)
    return tracker


def _run(world: World, generation: str, views: dict[int | None, list[Change]] | None = None) -> dict[str, Any]:
    trackers = []
    for lid, conversation in (("c1", 1), ("c2", 2), ("all", None)):
        tracker = _tracker(conversation, generation, lid)
        got = (views or {}).get(conversation, server_view(world.changes, conversation, generation))
        for change in got:
            tracker.observe(change)
        tracker.mark_end(world.end_ns() + 100 * MS)  # clear of the drain window's buckets
        trackers.append(tracker)
    summaries = [t.summary().to_dict() for t in trackers]
    return check([w.ledger for w in world.writers.values()], summaries, DRAIN_NS, features=FEATURES[generation])


def _anomalies(report: dict[str, Any]) -> dict[str, int]:
    totals = report["totals"]
    return {
        k: v
        for k, v in totals.items()
        if isinstance(v, int) and v and k not in ("expected", "may", "delivered", "received")
    }


@pytest.mark.parametrize(
    ("generation", "owed"),
    [
        # c1: 4 inserts, 2 leaves, row 1's re-entering insert (0.7) or update (0.4);
        # c2: 2 enters, 1 update, 1 leave (0.7 only), 1 delete
        ("0.7", {"c1": 7, "c2": 5, "all": 9}),
        ("0.4", {"c1": 5, "c2": 4, "all": 9}),
    ],
)
def test_a_correct_server_of_each_generation_passes(generation: str, owed: dict[str, int]) -> None:
    report = _run(_world(), generation)
    assert _anomalies(report) == {}
    rows = {r["listener"]: r for r in report["listeners"]}
    assert {lid: r["expected"] for lid, r in rows.items()} == owed
    assert all(r["expected"] == r["delivered"] for r in rows.values())


def test_a_missing_filter_leave_is_lost_under_07() -> None:
    world = _world()
    c1 = server_view(world.changes, 1, "0.7")
    leaves = [c for c in c1 if c.op is Op.DELETE and c.deleted is False]
    report = _run(world, "0.7", {1: [c for c in c1 if c is not leaves[0]]})
    assert _anomalies(report) == {"lost": 1}
    witness = next(w for w in report["witnesses"] if w["kind"] == "lost")
    assert witness["listener"] == "c1" and "filter-leave" in witness["expected"] and witness["wseq"] == 5


def test_a_leaked_update_is_outside_the_filter_and_its_leave_lost() -> None:
    """``--fault filter-leak``: the first move out of conversation 1 arrives at its listener as a plain update."""
    world = _world()
    first_move = next(c for c in world.changes if c.op is Op.UPDATE and c.row["conversation_id"] == 2)
    c1 = server_view(world.changes, 1, "0.7")
    leaked = [
        first_move if c.op is Op.DELETE and c.deleted is False and c.old_row["id"] == first_move.row["id"] else c
        for c in c1
    ]
    report = _run(world, "0.7", {1: leaked})
    assert _anomalies(report) == {"lost": 1, "outside_filter": 1, "phantom": 1}


def test_a_key_only_delete_from_a_04_server_is_malformed() -> None:
    world = _world()
    report = _run(world, "0.4", {1: server_view(world.changes, 1, "0.7")})
    assert report["totals"]["malformed"] == 2  # the two leaves: 0.4 promises none
    assert report["totals"]["new_value_errors"] == 1  # and row 1's re-entering insert at version 3


def test_a_leave_no_move_made_is_unexpected() -> None:
    world = _world()
    c1 = server_view(world.changes, 1, "0.7")
    row3 = next(c for c in world.changes if c.op is Op.INSERT and c.row["id"] & 0xFFFFFFFF == 3)
    report = _run(world, "0.7", {1: [*c1, _leave(row3)]})
    assert _anomalies(report) == {"unexpected": 1, "phantom": 1}


def test_delete_and_leave_latency_come_from_the_writers_send_time_under_07() -> None:
    """No commit time in 0.7's versions: a delete's and a leave's latency is receipt - the ledger's send time."""
    report = _run(_world(), "0.7")
    rows = {r["listener"]: r for r in report["listeners"]}
    # c1: 4 inserts + 1 re-entering insert by sent_at, 2 leaves by the moves' send times (the World acks in 1 ms,
    # notifies 3 ms after: 4 ms each); c2: 2 enters + 1 update, 1 leave + 1 delete
    assert rows["c1"]["latency_sources"] == {"sent_at": 5, "writer_send_time": 2}
    assert rows["c2"]["latency_sources"] == {"sent_at": 3, "writer_send_time": 2}
    assert abs(rows["c1"]["latency_ms"]["max"] - 4.0) <= 0.004
    assert report["totals"]["latency_sources"] == {"sent_at": 16, "writer_send_time": 5}
    assert all(r["deletes_without_latency"] == 0 for r in rows.values())


MOVES = """
[scenario."m"]
title = "moves"
writers = [{ conversation = 1, program = [{ op = "insert", count = 4 }, { op = "move", to = 2, count = 2 }] }]
listeners = [{ conversation = 2 }]
"""


def test_a_move_step_names_its_conversation_and_the_writer_knows_where_its_rows_go() -> None:
    parse_catalogue(MOVES, "t.toml", RULES)
    writer = WriterSpec(1, 1, (Step("insert", count=4), Step("move", count=2, to=2), Step("move", count=1, to=3)))
    assert writer.conversations == frozenset({1, 2, 3})
    for bad, words in (('{ op = "move", count = 2 }', "`to`"), ('{ op = "update", to = 2, count = 2 }', "`to`")):
        with pytest.raises(HarnessError, match=words):
            parse_catalogue(MOVES.replace('{ op = "move", to = 2, count = 2 }', bad), "t.toml", RULES)


def test_a_row_leaves_each_conversation_at_most_once() -> None:
    """The writer picks rows so that every filter-leave pairs with one move (``WriterLedger.left``)."""
    rows = LiveRows()
    for n in (1, 2, 3):
        rows.add(n, n)
    picked = []
    for to in (2, 2, 1, 1, 2):
        n = rows.next_to_move(1, to)
        picked.append(n)
        if n is not None:
            rows.left.setdefault(n, set()).add(rows.moved.get(n, 1))
            if to == 1:
                rows.moved.pop(n, None)
            else:
                rows.moved[n] = to
    # rows 1 and 2 leave 1, then leave 2 back to 1; then no row may leave 1 again but row 3
    assert picked == [1, 2, 1, 2, 3]
    assert rows.next_to_move(1, 2) is None


def test_delete_receipts_past_the_cap_count_as_without_latency(monkeypatch: pytest.MonkeyPatch) -> None:
    """A listener keeps the first ``MAX_RECEIPTS`` delete receipts, so its summary stays small; the rest are counted."""
    monkeypatch.setattr(tracker_module, "MAX_RECEIPTS", 1)
    report = _run(_world(), "0.7")
    c2 = next(r for r in report["listeners"] if r["listener"] == "c2")  # 1 leave, then 1 delete
    assert c2["latency_sources"].get("writer_send_time") == 1 and c2["deletes_without_latency"] == 1
