"""Writer streams: programs, live-row choice, identity of the rows written, ledger outcomes."""

import time
from typing import Any

import pytest

from harness.delivery.identity import bump_content, content, row_id, split_id
from harness.plan import Step, WriterSpec
from harness.targets.base import Outcome, Row, WriteResult
from locustfiles.writers import LiveRows, WriterStream, run_streams


class MemoryTable:
    """A WriterSession over a dict: the table the stream writes to, with scripted outcomes."""

    def __init__(self, outcomes: dict[int, Outcome] | None = None) -> None:
        self.rows: dict[int, Row] = {}
        self.log: list[tuple[str, int]] = []
        self.outcomes = outcomes or {}  # call number (1-based) -> outcome to return instead of OK

    def _result(self) -> WriteResult:
        now = time.time_ns()
        outcome = self.outcomes.get(len(self.log), Outcome.OK)
        return WriteResult(outcome, now, now + 1000, None if outcome is Outcome.OK else "scripted")

    def insert(self, row: Row) -> WriteResult:
        self.log.append(("insert", row["id"]))
        res = self._result()
        if res.outcome is Outcome.OK:
            self.rows[row["id"]] = dict(row)
        return res

    def update(self, key: Any, changes: Row) -> WriteResult:
        self.log.append(("update", key))
        res = self._result()
        if res.outcome is Outcome.OK:
            self.rows[key].update(changes)
        return res

    def delete(self, key: Any) -> WriteResult:
        self.log.append(("delete", key))
        res = self._result()
        if res.outcome is Outcome.OK:
            del self.rows[key]
        return res

    def bump(self, key: Any, changes: Row, counter: str = "version") -> WriteResult:
        """The server's ``counter + 1`` with ``changes``; a missing row is an ack that changed nothing."""
        self.log.append(("bump", key))
        res = self._result()
        if res.outcome is not Outcome.OK:
            return res
        if key not in self.rows:
            return WriteResult(Outcome.OK, res.invoke_ns, res.ack_ns, None, 0)
        row = self.rows[key]
        row.update(changes, **{counter: row[counter] + 1})
        return WriteResult(Outcome.OK, res.invoke_ns, res.ack_ns, None, 1, row[counter])

    def select(self, where: str | None = None, limit: int | None = None) -> list[Row]:
        return list(self.rows.values())

    def close(self) -> None:
        pass


def _run(program: tuple[Step, ...], table: MemoryTable, seconds: float = 10.0, writer_id: int = 3) -> WriterStream:
    stream = WriterStream(WriterSpec(writer_id, 30, program), 40, time.monotonic() + seconds)
    run_streams([stream], {None: table}, lambda op, res: None, lambda: False)
    return stream


def test_inserts_updates_deletes_follow_the_program() -> None:
    table = MemoryTable()
    stream = _run((Step("insert", count=4), Step("update", count=6), Step("delete", count=2)), table)
    ops = [(op, split_id(key)[1]) for op, key in table.log]
    assert ops[:4] == [("insert", n) for n in (1, 2, 3, 4)]
    assert ops[4:10] == [("update", n) for n in (1, 2, 3, 4, 1, 2)]  # oldest first, cycling
    assert ops[10:] == [("delete", 1), ("delete", 2)]  # always the oldest live row
    assert sorted(split_id(k)[1] for k in table.rows) == [3, 4]
    row = table.rows[row_id(3, 3)]
    assert (row["version"], row["wseq"], row["conversation_id"], row["writer_id"]) == (2, 7, 30, 3)
    assert row["content"] == content(row_id(3, 3), 2, 40)
    assert stream.ledger.outcome_counts()["ok"] == {"insert": 4, "update": 6, "delete": 2}
    assert stream.ledger.written("ok").ranges() == [(1, 10)]
    assert stream.ledger.deleted("ok").ranges() == [(1, 2)]


def test_bumps_spread_over_writer_1s_shared_rows_with_the_servers_versions() -> None:
    table = MemoryTable()
    _run((Step("insert", count=2),), table, writer_id=1)
    stream = _run((Step("bump", count=20, rows=2),), table, writer_id=4)
    assert {split_id(key) for op, key in table.log if op == "bump"} == {(1, 1), (1, 2)}  # seeded, both rows
    row = table.rows[row_id(1, 1)]
    assert (row["writer_id"], row["content"]) == (4, bump_content(4, row["wseq"], 40))
    assert sum(r["version"] - 1 for r in table.rows.values()) == 20
    assert stream.ledger.outcome_counts()["ok"]["update"] == 20
    assert sorted(v for _, _, v in stream.ledger.bumps) == sorted(
        v for rid in table.rows for v in range(2, table.rows[rid]["version"] + 1)
    )


def test_a_bump_of_a_row_not_there_yet_is_failed() -> None:
    stream = _run((Step("bump", count=3, rows=1),), MemoryTable(), writer_id=2)
    assert stream.ledger.outcome_counts()["failed"]["update"] == 3 and stream.ledger.bumps == []


def test_indeterminate_update_retires_the_row() -> None:
    table = MemoryTable(outcomes={5: Outcome.INDETERMINATE})  # call 5: the second update (row 2)
    stream = _run((Step("insert", count=3), Step("update", count=4), Step("delete", count=3)), table)
    touched = [(op, split_id(key)[1]) for op, key in table.log[3:]]
    assert touched == [
        ("update", 1),
        ("update", 2),
        ("update", 3),
        ("update", 1),
        ("delete", 1),
        ("delete", 3),
    ]
    assert stream.ledger.outcome_counts()["indeterminate"]["update"] == 1
    assert stream.skipped == 1  # the third delete found no live row


def test_rate_and_seconds_bound_a_step() -> None:
    table = MemoryTable()
    t0 = time.monotonic()
    _run((Step("insert", count=5, rate=50.0),), table)
    assert time.monotonic() - t0 >= 4 / 50 - 0.005
    table = MemoryTable()
    t0 = time.monotonic()
    _run((Step("insert", seconds=0.2, rate=100.0), Step("pause", seconds=0.1), Step("insert", count=1)), table)
    assert time.monotonic() - t0 >= 0.3 - 0.005  # the step's seconds and the pause, however fast the table
    assert 2 <= len(table.log) <= 22  # 100/s for 0.2 s is at most 21 inserts, then the last step's one


def test_mix_is_seeded_by_writer_and_never_over_counts() -> None:
    program = (
        Step("insert", count=5),
        Step("mix", count=40, weights={"insert": 2, "update": 1, "delete": 1}),
    )
    a, again, other = MemoryTable(), MemoryTable(), MemoryTable()
    stream = _run(program, a)
    _run(program, again)
    _run(program, other, writer_id=4)
    assert a.log == again.log  # the same writer replays its mix
    ops = [op for op, _ in a.log]
    assert ops != [op for op, _ in other.log]  # another writer draws its own
    assert len(a.log) == 45 - stream.skipped  # 5 inserts and 40 mix ops, less the deletes that found no row
    assert {op for op, _ in a.log} == {"insert", "update", "delete"}


@pytest.mark.timeout(10)
def test_deadline_bounds_an_unbounded_program() -> None:
    table = MemoryTable()
    t0 = time.monotonic()
    _run((Step("insert", seconds=100.0, rate=20.0),), table, seconds=0.3)
    assert time.monotonic() - t0 < 5.0  # a 100 s step cut at 0.3 s: generous on a busy machine
    assert 1 <= len(table.log) <= 7  # 20/s for 0.3 s is at most 7 inserts


def test_live_rows_compact_and_keep_order() -> None:
    rows = LiveRows()
    for n in range(1, 3001):
        rows.add(n, n)
    rows.remove(1500)
    for _ in range(2000):
        rows.remove(rows.oldest())
    assert len(rows) == 999 and rows.oldest() == 2002
    assert rows.next_to_update() == 2002 and rows.next_to_update() == 2003
