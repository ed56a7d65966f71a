"""A hand-driven world of writers and their notifications, for tracker and checker tests.

Each operation is recorded in the writer's ledger with real outcomes and produces the
``Change`` a correct server would push; tests then drop, repeat, swap or corrupt
notifications to plant exactly one anomaly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.delivery.checker import check
from harness.delivery.identity import content, insert_row, row_id, update_changes
from harness.delivery.ledger import WriterLedger
from harness.delivery.tracker import ListenerTracker, WriterView
from harness.targets.base import Change, Op, Outcome, WriteResult

MS = 1_000_000
T0 = 1_700_000_000 * 1_000_000_000
DRAIN_NS = 2_000 * MS
PAYLOAD = 64


@dataclass
class _Writer:
    ledger: WriterLedger
    user: str | None = None
    wseq: int = 0
    last_delete: int = 0
    n: int = 0
    versions: dict[int, dict[str, Any]] = field(default_factory=dict)


class World:
    """Writers acting one op every 10 ms from ``T0 + 1 s``; notifications arrive 3 ms after the ack."""

    def __init__(self) -> None:
        self.t = T0 + 1_000 * MS
        self.writers: dict[int, _Writer] = {}
        self.changes: list[Change] = []
        self.seq = 0

    def writer(self, wid: int, conversation: int, user: str | None = None) -> None:
        self.writers[wid] = _Writer(WriterLedger(wid, conversation), user)

    def _result(self, outcome: Outcome) -> WriteResult:
        res = WriteResult(outcome, self.t, self.t + MS)
        self.t += 10 * MS
        return res

    def _push(self, op: Op, row: dict | None, old: dict | None, res: WriteResult, deleted: bool | None = None) -> None:
        self.seq += 1
        self.changes.append(Change(op, row, old, self.seq, res.ack_ns + 3 * MS, 200, deleted=deleted))

    def insert(self, wid: int, outcome: Outcome = Outcome.OK, notify: bool | None = None) -> int:
        w = self.writers[wid]
        w.wseq += 1
        w.n += 1
        res = self._result(outcome)
        row = insert_row(wid, w.ledger.conversation_id, w.n, w.wseq, res.invoke_ns // 1000, PAYLOAD, w.last_delete)
        w.ledger.record("insert", w.wseq, res)
        if outcome is Outcome.OK:
            w.versions[w.n] = row
        if notify if notify is not None else outcome is Outcome.OK:
            self._push(Op.INSERT, row, None, res)
        return w.n

    def update(self, wid: int, n: int, outcome: Outcome = Outcome.OK, to: int | None = None) -> None:
        w = self.writers[wid]
        w.wseq += 1
        old = w.versions[n]
        res = self._result(outcome)
        rid = row_id(wid, n)
        new = {**old, **update_changes(rid, old["version"] + 1, w.wseq, res.invoke_ns // 1000, PAYLOAD, w.last_delete)}
        if to is not None:
            new["conversation_id"] = to
        w.ledger.record("update", w.wseq, res, supersedes=old["wseq"], conversation=new["conversation_id"])
        if to is not None:
            w.ledger.record_move(w.wseq, n, old["conversation_id"], to, res)
        if outcome is Outcome.OK:
            w.versions[n] = new
            changed = ("version", "wseq", "content", "sent_at", "last_delete") + (("conversation_id",) if to else ())
            old_values = {"id": rid, **{k: old[k] for k in changed}}
            self._push(Op.UPDATE, new, old_values, res)

    def move(self, wid: int, n: int, to: int) -> None:
        """Update row ``n`` and move it to conversation ``to`` (as a writer's ``move`` does)."""
        self.update(wid, n, to=to)

    def delete(self, wid: int, n: int, outcome: Outcome = Outcome.OK) -> None:
        w = self.writers[wid]
        w.last_delete = n
        res = self._result(outcome)
        w.ledger.record(
            "delete", n, res, supersedes=w.versions[n]["wseq"], conversation=w.versions[n]["conversation_id"]
        )
        if outcome is Outcome.OK:
            self._push(Op.DELETE, None, {**w.versions.pop(n), "_deleted": True}, res, deleted=True)

    def standard(self) -> None:
        """Two writers (conversations 10 and 20): 5 inserts, 2 updates, 1 delete each, interleaved."""
        self.writer(1, 10)
        self.writer(2, 20)
        for _ in range(5):
            self.insert(1)
            self.insert(2)
        for wid in (1, 2):
            self.update(wid, 1)
            self.update(wid, 2)
            self.delete(wid, 1)

    def end_ns(self) -> int:
        return self.t + DRAIN_NS

    def listen(
        self,
        changes: list[Change],
        conversation: int | None = None,
        lid: str = "l1",
        end_ns: int | None = None,
    ) -> ListenerTracker:
        tracker = self.tracker(lid, conversation)
        tracker.mark_ready(T0 + 500 * MS)
        for change in changes:
            tracker.observe(change)
        tracker.mark_end(end_ns if end_ns is not None else self.end_ns())
        return tracker

    def tracker(self, lid: str = "l1", conversation: int | None = None, **kwargs: Any) -> ListenerTracker:
        """A tracker that knows this world's writers (as a listener knows the plan's)."""
        views = {wid: WriterView(w.ledger.conversation_id, w.user) for wid, w in self.writers.items()}
        return ListenerTracker(lid, conversation, PAYLOAD, DRAIN_NS, created_ns=T0, writers=views, **kwargs)

    def check(self, *trackers: ListenerTracker, **kwargs: Any) -> dict[str, Any]:
        """``delivery.json`` of the trackers, their summaries sent over the wire as the runner does."""
        summaries = [t.summary().to_dict() for t in trackers]
        return check([w.ledger for w in self.writers.values()], summaries, DRAIN_NS, **kwargs)


def content_of(change: Change, version: int) -> str:
    return content(int(change.row["id"]), version, PAYLOAD)
