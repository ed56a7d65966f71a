"""The chain check of live.contention: hand-built link streams, each with one anomaly, and a clean one never accused."""

from __future__ import annotations

from harness.delivery import checker
from harness.delivery.anomalies import Anomaly
from harness.delivery.contention import (
    Commit,
    Link,
    chain_breaks,
    check_chains,
    commit_order_violations,
    missing_links,
    truth,
    version_conflicts,
)
from harness.delivery.identity import INSERTED, bump_content, bump_maker, content, row_id
from harness.delivery.ledger import WriterLedger
from harness.delivery.tracker import ListenerTracker, WriterView
from harness.targets.base import Change, Op, Outcome, WriteResult

ROW = row_id(1, 1)
PAYLOAD = 64
# One row bumped four times: version v made by MAKERS[v].
MAKERS = {1: INSERTED, 2: (2, 1), 3: (3, 1), 4: (2, 2), 5: (3, 2)}


def link(version: int, old_version: int | None = None, old_maker: tuple[int, int] | None = None, at: int = 0) -> Link:
    """The link of version ``version``; old values default to the true previous state."""
    old_v = version - 1 if old_version is None else old_version
    return Link(ROW, version, MAKERS[version], old_v, old_maker or MAKERS[old_v], at or version * 1000)


def clean() -> list[Link]:
    return [link(v) for v in range(2, 6)]


def acked() -> list[Commit]:
    return [Commit(ROW, v, m) for v, m in MAKERS.items() if v > 1]


def test_bump_content_names_its_maker_and_the_insert_is_recognised() -> None:
    assert bump_maker(bump_content(7, 42, PAYLOAD), ROW, PAYLOAD) == (7, 42)
    assert bump_maker(content(ROW, 1, PAYLOAD), ROW, PAYLOAD) == INSERTED
    assert bump_maker(bump_content(7, 42, PAYLOAD)[:-1] + "x", ROW, PAYLOAD) is None
    assert bump_maker(None, ROW, PAYLOAD) is None


def test_a_clean_chain_is_never_accused() -> None:
    found = check_chains({"L1": clean()}, truth(None, acked(), {"L1": clean()}, {ROW}))
    assert found == {"L1": [], "all": []}
    log = [Commit(ROW, v, m, position=i) for i, (v, m) in enumerate(sorted(MAKERS.items())) if v > 1]
    assert check_chains({"L1": clean()}, truth(log, acked(), {"L1": clean()}, {ROW})) == {"L1": [], "all": []}


def test_an_old_value_that_is_not_the_previous_commit_is_a_chain_break() -> None:
    stale = [link(2), link(3), link(4, old_version=2), link(5)]  # version 4 reports version 2 as its old row
    found = chain_breaks("L1", stale, truth(None, acked(), {"L1": stale}, {ROW}))
    assert [(w.kind, w.expected) for w in found] == [(Anomaly.CHAIN_BREAK, "old version 3 by writer 3 wseq 1")]
    assert "old version 2" in found[0].observed


def test_the_right_old_version_with_another_writes_content_is_a_chain_break() -> None:
    wrong = [link(2), link(3, old_maker=(9, 9)), link(4), link(5)]
    found = chain_breaks("L1", wrong, truth(None, acked(), {"L1": wrong}, {ROW}))
    assert len(found) == 1 and "writer 9 wseq 9" in found[0].observed


def test_an_update_received_after_a_later_commit_is_a_commit_order_violation() -> None:
    swapped = [link(2), link(4), link(3), link(5)]
    found = commit_order_violations("L1", swapped, truth(None, acked(), {"L1": swapped}, {ROW}))
    assert [(w.kind, w.expected) for w in found] == [(Anomaly.COMMIT_ORDER, "version 3 before version 4")]


def test_the_commit_log_position_is_the_order_where_there_is_one() -> None:
    # The log says version 3 committed before version 2 (positions), so 2-then-3 is out of commit order.
    log = [Commit(ROW, 3, MAKERS[3], position=0), Commit(ROW, 2, MAKERS[2], position=1)]
    links = [link(2), link(3)]
    assert len(commit_order_violations("L1", links, truth(log, [], {"L1": links}, {ROW}))) == 1
    assert commit_order_violations("L1", links, truth(None, [], {"L1": links}, {ROW})) == []


def test_a_committed_version_never_received_is_a_missing_link() -> None:
    holed = [link(2), link(3), link(5, old_version=4)]  # version 4 acked but never delivered
    found = missing_links("L1", holed, truth(None, acked(), {"L1": holed}, {ROW}))
    assert [(w.kind, w.expected) for w in found] == [(Anomaly.MISSING_LINK, "version 4 of 5 (writer 2 wseq 2)")]


def test_two_writes_with_one_version_are_a_version_conflict() -> None:
    twice = [*clean(), Link(ROW, 3, (4, 1), 2, MAKERS[2], 9000)]  # an event claims version 3 for another write
    found = version_conflicts(truth(None, acked(), {"L1": twice}, {ROW}))
    assert [(w.kind, w.listener) for w in found] == [(Anomaly.VERSION_CONFLICT, "listener L1")]
    assert "writer 4 wseq 1" in found[0].observed


def test_links_round_trip_their_integer_form() -> None:
    unread = Link(ROW, 3, (2, 1), None, None, 5)
    for one in (link(3), unread):
        assert Link.from_list(one.to_list()) == one


def _bump(tracker: ListenerTracker, version: int, maker: tuple[int, int], old: tuple[int, int], at_ns: int) -> None:
    w, s = maker
    row = {
        "id": ROW,
        "conversation_id": 1,
        "writer_id": w,
        "wseq": s,
        "version": version,
        "content": bump_content(w, s, PAYLOAD),
        "sent_at": at_ns // 1000 - 100,
        "last_delete": 0,
    }
    old_content = content(ROW, 1, PAYLOAD) if old == INSERTED else bump_content(*old, PAYLOAD)
    tracker.observe(Change(Op.UPDATE, row, {"version": version - 1, "content": old_content}, None, at_ns, 100))


def test_the_checker_reports_chain_anomalies_per_listener_from_tracked_bumps() -> None:
    t0 = 1_000_000_000_000
    writers = {1: WriterView(1), 2: WriterView(1), 3: WriterView(1)}
    tracker = ListenerTracker("L1", None, PAYLOAD, 1_000_000, t0, writers=writers, contention=True)
    tracker.mark_ready(t0)
    _bump(tracker, 2, (2, 1), INSERTED, t0 + 2_000_000)
    _bump(tracker, 3, (3, 1), INSERTED, t0 + 3_000_000)  # a stale original: version 1 instead of 2
    tracker.mark_end(t0 + 10_000_000_000)
    ledgers = []
    for wid in (2, 3):
        led = WriterLedger(wid, 1)
        led.record_bump(1, ROW, WriteResult(Outcome.OK, t0 + 1_000_000, t0 + 1_500_000, version=wid))
        ledgers.append(led)
    report = checker.check(ledgers, [tracker.summary().to_dict()], drain_ns=1_000_000, plan_writers=[1, 2, 3])
    totals = report["totals"]
    assert totals["chain_order"] == "server_version"
    assert (totals["chain_breaks"], totals["commit_order_violations"], totals["missing_links"]) == (1, 0, 0)
    assert (totals["lost"], totals["duplicates"], totals["new_value_errors"], totals["malformed"]) == (0, 0, 0, 0)
    assert [w["kind"] for w in report["witnesses"]] == ["chain_breaks"]


def test_a_wal2json_update_record_gives_key_version_and_maker() -> None:
    from harness.targets.parse.commitlog import updated_row

    cols = [
        {"name": "objectId", "type": "text", "value": str(ROW)},
        {"name": "version", "type": "double precision", "value": 3},
        {"name": "writer_id", "type": "double precision", "value": 2.0},
        {"name": "wseq", "type": "double precision", "value": 7},
    ]
    record = {"action": "U", "schema": "public", "table": "T", "columns": cols}
    assert updated_row(record, "T") == (ROW, 3, 2, 7)
    assert updated_row({**record, "table": "other"}, "T") is None
    assert updated_row({**record, "action": "I"}, "T") is None
    assert updated_row({**record, "columns": cols[:2]}, "T") is None


def test_a_row_the_listener_may_not_see_is_never_a_missing_link() -> None:
    found = check_chains({"L2": []}, truth(None, acked(), {"L2": []}, {ROW}), lambda listener, rid: False)
    assert found == {"L2": [], "all": []}
    assert len(check_chains({"L2": []}, truth(None, acked(), {"L2": []}, {ROW}))["L2"]) == 4
