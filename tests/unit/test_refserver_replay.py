"""The 0.7 pieces of the reference server: version ids, the bounded replay log, and the two 0.7 faults."""

from __future__ import annotations

from refserver.catalog import ColumnDef, TableDef
from refserver.engine import CommittedChange
from refserver.faults import Fault, parse_faults
from refserver.generation import GENERATIONS, VersionIds
from refserver.replay import ReplayLog
from refserver.values import BIGINT


def _table(name: str = "t") -> TableDef:
    return TableDef("ns", name, "USER", [ColumnDef("id", BIGINT, primary_key=True)], {}, "", 0)


def _change(seq: int, owner: str = "alice", table: TableDef | None = None) -> CommittedChange:
    return CommittedChange(table or _table(), owner, "insert", {"id": seq, "_seq": seq}, None, seq)


def test_version_ids_increase_with_gaps_and_continue_above_stored_ones() -> None:
    ids = VersionIds()
    first, second = ids.next(), ids.next()
    assert second > first and second - first == 1 << 16
    ids.observe(50 << 16)
    assert ids.next() == 51 << 16
    assert GENERATIONS["0.7"].version_column == "_version" and GENERATIONS["0.4"].version_column == "_seq"


def test_the_floor_is_the_snapshot_boundary_and_moves_past_evicted_changes() -> None:
    log = ReplayLog(per_scope=3)
    scope = ("ns.t", "alice")
    assert log.changes_after(scope, 10) is None  # not tracked
    log.track(scope, 10)
    for seq in (11, 12):
        log.record(_change(seq))
    assert [c.seq for c in log.changes_after(scope, 10)] == [11, 12]
    assert [c.seq for c in log.changes_after(scope, 11)] == [12]
    assert log.changes_after(scope, 9) is None  # older than the snapshot
    for seq in (13, 14):
        log.record(_change(seq))  # 11 pushed out: the floor is now 11
    assert log.changes_after(scope, 10) is None
    assert [c.seq for c in log.changes_after(scope, 11)] == [12, 13, 14]


def test_an_empty_snapshot_takes_the_first_recorded_version_as_floor() -> None:
    log = ReplayLog()
    scope = ("ns.t", "bob")
    log.track(scope, None)
    assert log.changes_after(scope, 0) is None
    log.record(_change(5, "bob"))
    log.record(_change(6, "bob"))
    assert [c.seq for c in log.changes_after(scope, 5)] == [6]
    log.record(_change(7, "carol"))  # another user's scope is not tracked
    assert log.changes_after(("ns.t", "carol"), 0) is None


def test_the_least_recently_used_scope_is_evicted() -> None:
    log = ReplayLog(scopes=2)
    for user in ("a", "b"):
        log.track(("ns.t", user), 1)
    log.record(_change(2, "a"))  # a is now the most recently used
    log.track(("ns.t", "c"), 1)
    assert log.changes_after(("ns.t", "b"), 1) is None
    assert [c.seq for c in log.changes_after(("ns.t", "a"), 1)] == [2]


def test_replay_drop_leaves_the_nth_replayed_change_out_and_filter_leak_fires_once() -> None:
    stage = parse_faults(["replay-drop:nth=2", "filter-leak"]).stage()
    changes = [_change(s) for s in (1, 2, 3)]
    assert [c.seq for c in stage.replay(changes)] == [1, 3]
    assert stage.replay(changes[:1]) == changes[:1]  # too short to drop the second
    assert stage.leaks_filter(changes[0]) and not stage.leaks_filter(changes[1])
    assert parse_faults(["replay-drop"]).param(Fault.REPLAY_DROP, "nth") == 1
