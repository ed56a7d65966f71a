"""The writers' ledger: what each writer did and what it knows about the outcome, compactly.

Per writer: range sets of insert/update sequence numbers (``wseq``) per outcome,
range sets of deleted row numbers per outcome, the wseqs that are their row's current
version (never replaced by an update or delete), counts by kind, and coarse time indexes
(checkpoints of invoke/ack times) from which the checker bounds when any operation
happened. Memory grows with outcome changes, run time and the writer's live rows (as the
writer's own state does), never with one entry per operation, with one exception: ``moves``
(one entry per ``move`` a program makes, a scenario-sized count). The time checkpoints hold the
exact send time of the operations they keep: where a target's deletes carry no commit time, the
checker takes those deletes' latency from there.

Rows normally stay in their writer's conversation; ``placed`` and ``deleted_placed`` hold the
wseqs and deleted rows whose row was in another conversation (after a ``move``), so the
checker knows which versions and deletes a filtered listener is owed.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Any

from harness.delivery.rangeset import RangeSet
from harness.targets.base import Outcome, WriteResult

KINDS = ("insert", "update", "delete")
CHECKPOINT_NS = 50_000_000
MAX_ERRORS = 5
INF = 1 << 62


class TimeIndex:
    """Checkpoints ``(key, invoke_ns, ack_ns)`` of a sequential stream with increasing keys.

    Keeps the first operation, then at most one per ``interval_ns``, plus the latest.
    Between two checkpoints ``a < k < b`` an operation ran entirely inside
    ``[a.ack, b.invoke]`` because the stream has one operation in flight at a time.
    """

    __slots__ = ("interval_ns", "_keys", "_inv", "_ack", "_last")

    def __init__(self, interval_ns: int = CHECKPOINT_NS) -> None:
        self.interval_ns = interval_ns
        self._keys: list[int] = []
        self._inv: list[int] = []
        self._ack: list[int] = []
        self._last: tuple[int, int, int] | None = None

    def add(self, key: int, invoke_ns: int, ack_ns: int) -> None:
        if self._keys and key <= (self._last or (self._keys[-1],))[0]:
            raise ValueError(f"time index keys must increase: {key}")
        if not self._keys or invoke_ns - self._inv[-1] >= self.interval_ns:
            self._keys.append(key)
            self._inv.append(invoke_ns)
            self._ack.append(ack_ns)
            self._last = None
        else:
            self._last = (key, invoke_ns, ack_ns)

    def points(self) -> list[tuple[int, int, int]]:
        pts = list(zip(self._keys, self._inv, self._ack, strict=True))
        return pts + [self._last] if self._last else pts

    def to_list(self) -> list[list[int]]:
        return [list(p) for p in self.points()]

    @classmethod
    def from_list(cls, data: list[list[int]], interval_ns: int = CHECKPOINT_NS) -> TimeIndex:
        out = cls(interval_ns)
        for key, inv, ack in data:
            out._keys.append(key)
            out._inv.append(inv)
            out._ack.append(ack)
        return out

    def _arrays(self) -> tuple[list[int], list[int], list[int]]:
        if self._last:
            return self._keys + [self._last[0]], self._inv + [self._last[1]], self._ack + [self._last[2]]
        return self._keys, self._inv, self._ack

    def first_invoked_at_or_after(self, t: int) -> int:
        """Smallest key whose operation certainly started at or after ``t`` (INF if none)."""
        keys, inv, ack = self._arrays()
        i = bisect_left(inv, t)
        if i >= 1 and ack[i - 1] >= t:
            return keys[i - 1] + 1
        return keys[i] if i < len(keys) else INF

    def last_acked_at_or_before(self, t: int) -> int:
        """Largest key whose operation certainly was acked at or before ``t`` (-1 if none)."""
        keys, inv, ack = self._arrays()
        j = bisect_right(ack, t) - 1
        if j + 1 < len(keys) and inv[j + 1] <= t:
            return keys[j + 1] - 1
        return keys[j] if j >= 0 else -1

    def first_possibly_acked_at_or_after(self, t: int) -> int:
        """Smallest key whose ack may be at or after ``t`` (INF if none)."""
        keys, inv, ack = self._arrays()
        i = bisect_left(ack, t)
        if i >= 1 and i < len(keys) and inv[i] >= t:
            return keys[i - 1] + 1
        return keys[i] if i < len(keys) else INF

    def last_possibly_invoked_at_or_before(self, t: int) -> int:
        """Largest key whose invoke may be at or before ``t`` (-1 if none)."""
        keys, inv, ack = self._arrays()
        j = bisect_right(inv, t) - 1
        if j < 0:
            return -1
        if j + 1 < len(keys) and ack[j] <= t:
            return keys[j + 1] - 1
        return keys[j]

    def invoked_not_before(self, key: int) -> int | None:
        """A time at or before which ``key``'s operation had certainly not started (None if no key at or before it).

        The stream runs one operation at a time, so ``key`` started after the checkpoint before it was acked.
        """
        keys, inv, ack = self._arrays()
        i = bisect_right(keys, key) - 1
        if i < 0:
            return None
        return inv[i] if keys[i] == key else ack[i]

    def spans(self) -> list[tuple[int, int, int]]:
        """``(first_key, last_key, ack_ns)`` spans: keys in a span were acked at about ``ack_ns``."""
        keys, _, ack = self._arrays()
        return [(keys[i], (keys[i + 1] - 1 if i + 1 < len(keys) else INF), ack[i]) for i in range(len(keys))]


@dataclass
class WriterLedger:
    """One writer stream's operations by outcome, with coarse timing.

    Inserts and updates are numbered by ``wseq`` (the sequence notifications carry);
    deletes carry no wseq on the wire, so they are numbered by the row they delete
    (always the writer's oldest live row, hence increasing). Kinds are counted, not
    stored per operation, so a complete mixed stream stays one range per outcome.
    """

    writer_id: int
    conversation_id: int
    wseqs: dict[str, RangeSet] = field(default_factory=dict)
    deleted_rows: dict[str, RangeSet] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    current: RangeSet = field(default_factory=RangeSet)  # wseqs still their row's version (never replaced)
    times: TimeIndex = field(default_factory=TimeIndex)
    delete_times: TimeIndex = field(default_factory=TimeIndex)
    errors: list[dict[str, Any]] = field(default_factory=list)
    bumps: list[list[int]] = field(
        default_factory=list
    )  # [wseq, row id, version] of acked bumps whose version is known
    placed: dict[int, RangeSet] = field(default_factory=dict)  # conversation -> wseqs whose row was there, not home
    deleted_placed: dict[int, RangeSet] = field(default_factory=dict)  # conversation -> rows deleted there, not home
    moves: list[list[int]] = field(default_factory=list)  # [wseq, row, from, to, invoke_ns] of moves not failed

    def record_move(self, wseq: int, n: int, source: int, to: int, result: WriteResult) -> None:
        """Record a move of row ``n`` from conversation ``source`` to ``to`` (an update, see ``record``)."""
        if str(Outcome(result.outcome)) != Outcome.FAILED:
            self.moves.append([wseq, n, source, to, result.invoke_ns])

    def visible_writes(self, conversation: int) -> RangeSet:
        """Wseqs whose row version was in ``conversation`` (everything but the moved-away ones for home)."""
        return self._visible(conversation, self.placed, self.written("ok", "indeterminate", "failed"))

    def visible_deletes(self, conversation: int) -> RangeSet:
        """Rows deleted while in ``conversation``."""
        return self._visible(conversation, self.deleted_placed, self.deleted("ok", "indeterminate", "failed"))

    def _visible(self, conversation: int, placed: dict[int, RangeSet], every: RangeSet) -> RangeSet:
        if conversation != self.conversation_id:
            return placed.get(conversation, RangeSet())
        elsewhere = RangeSet()
        for keys in placed.values():
            elsewhere = elsewhere.union(keys)
        return every.difference(elsewhere)

    def left(self, conversation: int) -> dict[int, int]:
        """Row -> wseq of the moves that took a row out of ``conversation`` (a row leaves one at most once)."""
        return {n: wseq for wseq, n, source, _, _ in self.moves if source == conversation}

    @property
    def conversations(self) -> frozenset[int]:
        """Every conversation this writer's rows were in."""
        return frozenset({self.conversation_id, *self.placed, *self.deleted_placed})

    def record_bump(self, wseq: int, rid: int, result: WriteResult) -> None:
        """Record a bump of shared row ``rid`` (an update whose version the server chose) and the version it got."""
        self.record("update", wseq, result)
        if result.outcome is Outcome.OK and result.version is not None:
            self.bumps.append([wseq, rid, result.version])

    def record(
        self,
        kind: str,
        key: int,
        result: WriteResult,
        supersedes: int | None = None,
        conversation: int | None = None,
    ) -> None:
        """Record one operation: ``key`` is the wseq of an insert/update, the row number of a delete.

        ``supersedes`` is the wseq of the row version an update or delete replaces: that version
        stops being current (a resume sends current rows only). An indeterminate update's new
        version is not known to be current, nor is the version it may have replaced.
        ``conversation`` is the row's conversation after the operation (None: the writer's own).
        """
        if kind not in KINDS:
            raise ValueError(f"unknown op kind {kind!r}")
        outcome = str(Outcome(result.outcome))
        if supersedes is not None and outcome != Outcome.FAILED:
            self.current.discard(supersedes)
        if kind != "delete" and outcome == Outcome.OK:
            self.current.add(key)
        away = conversation is not None and conversation != self.conversation_id
        if kind == "delete":
            self.deleted_rows.setdefault(outcome, RangeSet()).add(key)
            self.delete_times.add(key, result.invoke_ns, result.ack_ns)
            if away:
                self.deleted_placed.setdefault(int(conversation or 0), RangeSet()).add(key)
        else:
            self.wseqs.setdefault(outcome, RangeSet()).add(key)
            self.times.add(key, result.invoke_ns, result.ack_ns)
            if away:
                self.placed.setdefault(int(conversation or 0), RangeSet()).add(key)
        by_kind = self.counts.setdefault(outcome, dict.fromkeys(KINDS, 0))
        by_kind[kind] += 1
        if outcome != Outcome.OK and len(self.errors) < MAX_ERRORS:
            self.errors.append(
                {"op": kind, "key": key, "outcome": outcome, "error": result.error, "at_ns": result.ack_ns}
            )

    def written(self, *outcomes: str) -> RangeSet:
        """Insert/update wseqs with any of ``outcomes``."""
        return _union(self.wseqs, outcomes)

    def deleted(self, *outcomes: str) -> RangeSet:
        """Row numbers deleted with any of ``outcomes``."""
        return _union(self.deleted_rows, outcomes)

    def outcome_counts(self) -> dict[str, dict[str, int]]:
        """``writes.json`` row: per outcome, operation counts by kind."""
        return {str(o): dict(self.counts.get(str(o), dict.fromkeys(KINDS, 0))) for o in Outcome}

    def to_dict(self) -> dict[str, Any]:
        return {
            "writer_id": self.writer_id,
            "conversation_id": self.conversation_id,
            "wseqs": {o: rs.to_list() for o, rs in self.wseqs.items()},
            "deleted_rows": {o: rs.to_list() for o, rs in self.deleted_rows.items()},
            "counts": self.outcome_counts(),
            "current": self.current.to_list(),
            "times": self.times.to_list(),
            "delete_times": self.delete_times.to_list(),
            "errors": list(self.errors),
            "bumps": [list(b) for b in self.bumps],
            "placed": {str(c): rs.to_list() for c, rs in sorted(self.placed.items())},
            "deleted_placed": {str(c): rs.to_list() for c, rs in sorted(self.deleted_placed.items())},
            "moves": [list(m) for m in self.moves],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WriterLedger:
        return cls(
            writer_id=int(data["writer_id"]),
            conversation_id=int(data["conversation_id"]),
            wseqs={o: RangeSet.from_list(r) for o, r in data["wseqs"].items()},
            deleted_rows={o: RangeSet.from_list(r) for o, r in data["deleted_rows"].items()},
            counts={o: dict(c) for o, c in data["counts"].items()},
            current=RangeSet.from_list(data.get("current") or []),
            times=TimeIndex.from_list(data["times"]),
            delete_times=TimeIndex.from_list(data["delete_times"]),
            errors=list(data.get("errors", [])),
            bumps=[[int(x) for x in b] for b in data.get("bumps") or ()],
            placed={int(c): RangeSet.from_list(r) for c, r in (data.get("placed") or {}).items()},
            deleted_placed={int(c): RangeSet.from_list(r) for c, r in (data.get("deleted_placed") or {}).items()},
            moves=[[int(x) for x in m] for m in data.get("moves") or ()],
        )


def _union(sets: dict[str, RangeSet], keys: tuple[str, ...]) -> RangeSet:
    out = RangeSet()
    for key in keys:
        if key in sets:
            out = out.union(sets[key])
    return out


def writes_summary(ledgers: list[WriterLedger]) -> dict[str, Any]:
    """The ``writes.json`` content: per writer counts by outcome and kind, first errors, and totals."""
    writers = {
        str(led.writer_id): {
            "conversation_id": led.conversation_id,
            **led.outcome_counts(),
            "errors": led.errors,
        }
        for led in sorted(ledgers, key=lambda x: x.writer_id)
    }
    totals = {
        str(o): {k: sum(led.outcome_counts()[str(o)][k] for led in ledgers) for k in KINDS}
        for o in (Outcome.OK, Outcome.FAILED, Outcome.INDETERMINATE)
    }
    return {"writers": writers, "totals": totals}
