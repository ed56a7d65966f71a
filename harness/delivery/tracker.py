"""Per-listener tracking: checks each notification on arrival and keeps compact state.

Per writer the tracker keeps a range set of delivered ``wseq`` (inserts, updates and
snapshot rows) and one of delivered delete row numbers; a complete, in-order stream
stays one range each, so memory grows with writers, disconnects and anomalies, not with
messages. At each disconnect it marks, per writer, the highest sequence and deleted row
delivered so far: the checker's excuse rule (docs/excuse-rule.md) works from those marks.
Anomalies (``harness.delivery.anomalies``) are counted per kind, bucketed per second and
keep a few witnesses. ``summary()`` is the ``ListenerSummary`` the checker reads.

Rows may move between conversations (a writer's ``move``). Where the target promises filter
transitions (feature ``filter_transitions``, KalamDB 0.7) a filtered listener gets a row entering
its filter as an insert at its current version, and one leaving it as a delete whose old values
are only the key and system columns (``_deleted`` false): the tracker counts those leaves per
writer by row, and the checker pairs them with the writers' moves.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.delivery.anomalies import ON_ARRIVAL, Anomaly, Witness, parse
from harness.delivery.contention import LinkLog
from harness.delivery.identity import Seen, bump_content, content, read_change, split_id
from harness.delivery.latency import LatencyHistogram
from harness.delivery.rangeset import RangeSet, RunMap
from harness.targets.base import Change, Op

MAX_WITNESSES = 5
SOURCE_SENT_AT = "sent_at"  # insert and update latency: receipt - the row's client send time
SOURCE_COMMIT = "commit_time"  # delete latency: receipt - the server's commit time in the row's version (0.4's _seq)
MAX_RECEIPTS = 256  # delete receipts per listener for the send-time join: a summary stays small with many listeners
_DELIVERED_KEYS = ("delivered", "deleted", "owed", "left")
LATE_BUCKETS = 100  # the drain window is watched in this many buckets to count late arrivals


@dataclass(slots=True)
class Observation:
    """What one notification showed: its latency (None when not measurable) and anomaly kinds.

    Built once per notification and only read, so not frozen (a frozen constructor costs more).
    """

    latency_ms: float | None
    anomalies: tuple[Anomaly, ...]
    op: str


@dataclass(frozen=True, slots=True)
class WriterView:
    """What a listener knows of a planned writer: the conversation it writes and the user it writes as."""

    conversation_id: int
    user: str | None = None
    conversations: frozenset[int] = frozenset()  # every conversation its rows may be in (empty: its own only)

    def writes_into(self, conversation: int | None) -> bool:
        """Whether this writer's rows may be in ``conversation``."""
        return conversation == self.conversation_id or conversation in self.conversations


@dataclass(frozen=True, slots=True)
class Mark:
    """Per writer, at a disconnect: the highest ``wseq`` and the highest deleted row delivered until then."""

    wseq: int | None
    deleted: int | None


@dataclass
class Disconnect:
    """One time away: when it dropped, why, the marks then, and how it came back.

    ``requested_ns`` is when the subscription that ended it was requested, ``up_ns`` when it
    was ready; ``resumed`` says whether it resumed from the last seen server sequence, and
    ``replayed`` whether that resume replayed every change since it (a 0.7 resume inside the
    server's log; not one refused as expired and answered by a fresh snapshot).
    ``first_live`` holds, per writer, the first live (not snapshot) wseq received after it.
    """

    down_ns: int
    reason: str
    expected: bool
    marks: dict[int, Mark] = field(default_factory=dict)
    up_ns: int | None = None
    requested_ns: int | None = None
    resumed: bool = False
    replayed: bool = False
    first_live: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "down_ns": self.down_ns,
            "up_ns": self.up_ns,
            "requested_ns": self.requested_ns,
            "reason": self.reason,
            "expected": self.expected,
            "resumed": self.resumed,
            "replayed": self.replayed,
            "marks": {str(w): [m.wseq, m.deleted] for w, m in sorted(self.marks.items())},
            "first_live": {str(w): k for w, k in sorted(self.first_live.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Disconnect:
        return cls(
            down_ns=int(data["down_ns"]),
            reason=str(data.get("reason")),
            expected=bool(data.get("expected")),
            marks={int(w): Mark(m[0], m[1]) for w, m in (data.get("marks") or {}).items()},
            up_ns=data.get("up_ns"),
            requested_ns=data.get("requested_ns"),
            resumed=bool(data.get("resumed")),
            replayed=bool(data.get("replayed")),
            first_live={int(w): int(k) for w, k in (data.get("first_live") or {}).items()},
        )


@dataclass
class Delivered:
    """One writer's deliveries to one listener: wseqs (inserts, updates, snapshot rows) and deleted rows.

    ``owed`` holds wseqs a resume owed and did not send: versions never received, replaced by
    a change that arrived live after the resume, so they were current when the resume was made.
    It grows only with such losses. ``left`` holds the rows whose filter-leave arrived (0.7).
    """

    delivered: RangeSet = field(default_factory=RangeSet)
    deleted: RangeSet = field(default_factory=RangeSet)
    owed: RangeSet = field(default_factory=RangeSet)
    left: RangeSet = field(default_factory=RangeSet)

    def to_dict(self) -> dict[str, list[list[int]]]:
        return {k: getattr(self, k).to_list() for k in _DELIVERED_KEYS}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Delivered:
        return cls(*(RangeSet.from_list(data.get(k) or []) for k in _DELIVERED_KEYS))

    def copy(self) -> Delivered:
        return Delivered.from_dict(self.to_dict())


@dataclass
class ListenerSummary:
    """A listener's final state as the checker reads it (sent from worker to master as ``to_dict``).

    ``user`` is the user the listener subscribed as; ``hidden_writers`` the planned writers
    whose rows that user may not see (a per-user table); ``ended_early`` why the listener
    stopped before the run told it to (None when it did not).
    """

    listener_id: str
    conversation_id: int | None = None
    user: str | None = None
    hidden_writers: frozenset[int] = frozenset()
    created_ns: int | None = None
    ready_ns: int | None = None
    end_ns: int | None = None
    ended_early: str | None = None
    disconnects: list[Disconnect] = field(default_factory=list)
    received: int = 0
    by_op: dict[str, int] = field(default_factory=dict)
    late: int = 0
    anomalies: dict[Anomaly, int] = field(default_factory=dict)
    witnesses: list[Witness] = field(default_factory=list)
    timeline: dict[Anomaly, dict[int, int]] = field(default_factory=dict)
    writers: dict[int, Delivered] = field(default_factory=dict)
    latency: str = "0:"
    deletes_without_latency: int = 0
    links: list[list[int]] = field(default_factory=list)  # contention: shared-row update links (contention.Link)
    receipts: list[list[int]] = field(default_factory=list)  # [writer, row, received_ns, leave] of deletes
    latency_sources: dict[str, int] = field(default_factory=dict)  # latency samples by source (SOURCE_*)

    def to_dict(self) -> dict[str, Any]:
        return {
            "listener_id": self.listener_id,
            "conversation_id": self.conversation_id,
            "user": self.user,
            "hidden_writers": sorted(self.hidden_writers),
            "created_ns": self.created_ns,
            "ready_ns": self.ready_ns,
            "end_ns": self.end_ns,
            "ended_early": self.ended_early,
            "disconnects": [d.to_dict() for d in self.disconnects],
            "received": self.received,
            "by_op": dict(self.by_op),
            "late": self.late,
            "anomalies": {str(k): n for k, n in self.anomalies.items()},
            "witnesses": [w.to_dict() for w in self.witnesses],
            "timeline": {str(k): {str(s): c for s, c in v.items()} for k, v in self.timeline.items()},
            "writers": {str(wid): d.to_dict() for wid, d in sorted(self.writers.items())},
            "latency": self.latency,
            "deletes_without_latency": self.deletes_without_latency,
            "links": self.links,
            "receipts": self.receipts,
            "latency_sources": dict(self.latency_sources),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ListenerSummary:
        """Inverse of ``to_dict``; unknown anomaly keys are dropped."""
        return cls(
            listener_id=str(data["listener_id"]),
            conversation_id=data.get("conversation_id"),
            user=data.get("user"),
            hidden_writers=frozenset(int(w) for w in data.get("hidden_writers") or ()),
            created_ns=data.get("created_ns"),
            ready_ns=data.get("ready_ns"),
            end_ns=data.get("end_ns"),
            ended_early=data.get("ended_early"),
            disconnects=[Disconnect.from_dict(d) for d in data.get("disconnects") or ()],
            received=int(data.get("received", 0)),
            by_op={str(k): int(v) for k, v in (data.get("by_op") or {}).items()},
            late=int(data.get("late", 0)),
            anomalies={a: int(n) for k, n in (data.get("anomalies") or {}).items() if (a := parse(k)) is not None},
            witnesses=[Witness.from_dict(w) for w in data.get("witnesses") or ()],
            timeline={
                a: {int(s): int(c) for s, c in v.items()}
                for k, v in (data.get("timeline") or {}).items()
                if (a := parse(k)) is not None
            },
            writers={int(w): Delivered.from_dict(d) for w, d in (data.get("writers") or {}).items()},
            latency=str(data.get("latency", "0:")),
            deletes_without_latency=int(data.get("deletes_without_latency", 0)),
            links=[list(link) for link in data.get("links") or ()],
            receipts=[[int(x) for x in r] for r in data.get("receipts") or ()],
            latency_sources={str(k): int(v) for k, v in (data.get("latency_sources") or {}).items()},
        )


class _WriterState:
    """One writer's deliveries so far, and what order checks need of the previous one.

    Order compares each delivery with the previous one only, so one displaced message counts
    once, not for all that follow it. A write carrying ``last_delete`` r follows the delete of
    row r and precedes the delete of row r + 1 in its writer's order (see identity).

    ``versions`` holds, per live row, the highest version received above 1 (an update or a
    snapshot row): a delete's tombstone must be that version or a later one.
    """

    __slots__ = (
        "got",
        "last_wseq",
        "last_deleted",
        "previous_delete",
        "previous_write_after",
        "max_last_delete",
        "versions",
    )

    def __init__(self) -> None:
        self.got = Delivered()
        self.last_wseq: int | None = None  # the previous write's wseq
        self.last_deleted: int | None = None  # the previous delete's row
        self.previous_delete: int | None = None  # the previous delivery's row, when it was a delete
        self.previous_write_after: int | None = None  # the previous delivery's last_delete, when it was a write
        self.max_last_delete = 0  # the highest last_delete delivered: deletes up to it came before
        self.versions = RunMap()  # row -> highest version above 1 received, until its delete


class ListenerTracker:
    """Checks one listener's notifications (identity, duplicates, order, old and new values, deletes).

    ``conversation_id`` is the listener's filter (None: unfiltered); ``payload_bytes``
    lets it recompute expected contents; ``drain_ns`` is the drain window, inside which
    arrivals before ``mark_end`` count as late. ``writers`` are the planned writers (their
    conversation and user), so a row can be checked against what its writer wrote; rows
    of writers not in it are checked by the checker at the end. ``user`` is the user the
    listener subscribes as and ``per_user`` whether the table shows each user only its own
    rows. With ``contention`` every update is a bump of a shared row (docs/contention.md): its
    content names its maker, and its link goes to ``links`` for the chain check. ``transitions``
    (set once the target's generation is known) says the target sends filter enters and leaves.
    Deletes without a commit time are kept as ``receipts`` (the first ``MAX_RECEIPTS``), which the
    checker joins with the writers' send times for their latency.
    """

    def __init__(
        self,
        listener_id: str,
        conversation_id: int | None,
        payload_bytes: int,
        drain_ns: int,
        created_ns: int | None = None,
        *,
        writers: Mapping[int, WriterView] | None = None,
        user: str | None = None,
        per_user: bool = False,
        contention: bool = False,
    ) -> None:
        self.listener_id = listener_id
        self.conversation_id = conversation_id
        self.payload_bytes = payload_bytes
        self.drain_ns = drain_ns
        self.created_ns = created_ns if created_ns is not None else time.time_ns()
        self.plan_writers: dict[int, WriterView] = dict(writers or {})
        self.user = user
        self.hidden = frozenset(w for w, v in self.plan_writers.items() if per_user and v.user != user)
        self.ready_ns: int | None = None
        self.end_ns: int | None = None
        self.ended_early: str | None = None
        self.disconnects: list[Disconnect] = []
        self.received = 0
        self.by_op: dict[str, int] = {}
        self.anomalies: dict[Anomaly, int] = dict.fromkeys(ON_ARRIVAL, 0)
        self.witnesses: dict[Anomaly, list[Witness]] = {}
        self.timeline: dict[Anomaly, dict[int, int]] = {}
        self.deletes_without_latency = 0
        self.late = 0
        self._writers: dict[int, _WriterState] = {}
        self.links = LinkLog(payload_bytes) if contention else None
        self.transitions = False
        self.receipts: list[list[int]] = []
        self.latency_sources: dict[str, int] = {}
        self._latency = LatencyHistogram()
        self._latency_delta = LatencyHistogram()
        self._late_buckets: deque[list[int]] = deque()  # [bucket index, count]
        self._late_witness: dict[int, tuple[Seen, Change, int | None]] = {}  # first arrival per bucket
        self._bucket_ns = max(1_000_000, drain_ns // LATE_BUCKETS)
        self._last_delta: dict[str, int] = {"received": 0, **{str(k): 0 for k in ON_ARRIVAL}}

    def mark_ready(self, ns: int) -> None:
        """The subscription is ready: changes committed from now on must arrive."""
        if self.ready_ns is None:
            self.ready_ns = ns

    def mark_disconnected(self, ns: int, reason: str, expected: bool) -> None:
        """The connection dropped (or was closed) at ``ns``: mark what each writer had delivered until now."""
        marks = {
            w: Mark(st.got.delivered.max(), max(st.got.deleted.max() or 0, st.max_last_delete) or None)
            for w, st in self._writers.items()
        }
        self.disconnects.append(Disconnect(ns, reason, expected, marks))

    def mark_resumed(
        self, ns: int, resumed: bool = True, requested_ns: int | None = None, replayed: bool = False
    ) -> None:
        """Subscribed again at ``ns`` (requested at ``requested_ns``); ``resumed``: from the last seen seq,
        ``replayed``: the target replayed every change since it."""
        if self.disconnects and self.disconnects[-1].up_ns is None:
            gap = self.disconnects[-1]
            gap.up_ns = ns
            gap.requested_ns = requested_ns if requested_ns is not None else ns
            gap.resumed = resumed
            gap.replayed = resumed and replayed

    def mark_end(self, ns: int, early: str | None = None) -> None:
        """The listener stopped receiving; arrivals in the last drain window count as late.

        ``early`` says why, when the run did not tell it to stop (a crash, a failed resubscribe).
        """
        self.end_ns = ns
        self.ended_early = early
        cutoff = (ns - self.drain_ns) // self._bucket_ns
        self.late = sum(count for index, count in self._late_buckets if index >= cutoff)
        for index in sorted(self._late_witness):
            if index >= cutoff:
                seen, change, latency_us = self._late_witness[index]
                latency = "no latency" if latency_us is None else f"latency {latency_us / 1000:.1f} ms"
                self._keep(_witness(Anomaly.LATE, self.listener_id, seen, change, "before the drain window", latency))

    def observe_malformed(self, received_ns: int, detail: str) -> Observation:
        """A frame the target could not turn into a notification (a protocol error): one malformed anomaly."""
        self.received += 1
        self.by_op["malformed"] = self.by_op.get("malformed", 0) + 1
        self._count(Anomaly.MALFORMED, received_ns)
        if len(self.witnesses.get(Anomaly.MALFORMED, ())) < MAX_WITNESSES:
            self._keep(
                Witness(
                    Anomaly.MALFORMED,
                    self.listener_id,
                    "a change frame of the protocol's shape",
                    _clip(detail, 80),
                    received_at=received_ns / 1e9,
                )
            )
        return Observation(None, (Anomaly.MALFORMED,), "malformed")

    def observe(self, change: Change) -> Observation:
        """Check one notification and fold it into the state."""
        self.received += 1
        op = str(change.op)  # Op is a StrEnum: its str is the value, without the enum's property
        self.by_op[op] = self.by_op.get(op, 0) + 1
        bump = self.links is not None and change.op is Op.UPDATE
        if change.op is Op.DELETE and self._leave_shape(change):
            return self._observe_leave(change)
        seen = read_change(change, shared=bump)
        found: list[Anomaly] = []
        latency_us: int | None = None
        outside = self._outside(seen)
        if seen.error:
            found.append(self._anomaly(Anomaly.MALFORMED, seen, change, "a harness row", lambda: str(seen.error)))
        elif outside is not None:
            kind, expected, observed = outside
            found.append(self._anomaly(kind, seen, change, expected, lambda: observed))
        else:
            state = self._writers.get(seen.writer_id)
            if state is None:
                state = self._writers[seen.writer_id] = _WriterState()
            wrong = self._check_values(seen, change, bump)
            found.extend(wrong)
            self._note_owed(state, seen, change)
            if change.op is Op.DELETE:
                found.extend(self._check_delete(state, seen, change, check_version=not wrong))
                if change.committed_ns is not None:
                    latency_us = (change.received_ns - change.committed_ns) // 1000
                    self.latency_sources[SOURCE_COMMIT] = self.latency_sources.get(SOURCE_COMMIT, 0) + 1
                else:
                    self._receipt(seen.writer_id, seen.n, change.received_ns, leave=False)
            else:
                found.extend(self._check_write(state, seen, change, bump))
                if bump and self.links is not None:
                    self.links.record(seen, change.received_ns)
                if change.op is not Op.SNAPSHOT and seen.sent_at_us is not None and not self._sent_away(seen):
                    latency_us = change.received_ns // 1000 - seen.sent_at_us
                    self.latency_sources[SOURCE_SENT_AT] = self.latency_sources.get(SOURCE_SENT_AT, 0) + 1
                if change.op is not Op.SNAPSHOT and self.disconnects:
                    self.disconnects[-1].first_live.setdefault(seen.writer_id, seen.wseq)
        if latency_us is not None:
            self._latency_delta.record_us(latency_us)
        self._watch_late(change, seen, latency_us)
        return Observation(None if latency_us is None else latency_us / 1000, tuple(found), op)

    def _receipt(self, writer_id: int, n: int, received_ns: int, leave: bool) -> None:
        """Keep a delete's receipt for the send-time join; past ``MAX_RECEIPTS`` it counts as without latency."""
        if len(self.receipts) < MAX_RECEIPTS:
            self.receipts.append([writer_id, n, received_ns, int(leave)])
        else:
            self.deletes_without_latency += 1

    def _leave_shape(self, change: Change) -> bool:
        """Whether a delete is a filter-leave: old values of the key and system columns only, ``_deleted`` false."""
        old = change.old_row
        return (
            isinstance(old, dict)
            and change.deleted is False
            and "writer_id" not in old
            and isinstance(old.get("id"), int)
            and not isinstance(old.get("id"), bool)
            and all(k == "id" or k.startswith("_") for k in old)
        )

    def _observe_leave(self, change: Change) -> Observation:
        """A row leaving this listener's filter (0.7): owed where a move took it out, a duplicate the second time."""
        rid = int((change.old_row or {})["id"])
        writer_id, n = split_id(rid)
        seen = Seen(Op.DELETE, rid, writer_id, n, None, 0, 0, None, None)
        view = self.plan_writers.get(writer_id)
        found: list[Anomaly] = []
        if not self.transitions or self.conversation_id is None:
            why = "no filter transitions from this target" if not self.transitions else "a listener without filter"
            found.append(self._anomaly(Anomaly.MALFORMED, seen, change, "a tombstone of every column", lambda: why))
        elif writer_id in self.hidden or (view is not None and not view.writes_into(self.conversation_id)):
            outside = self._outside_writer(writer_id, view)
            found.append(self._anomaly(outside[0], seen, change, outside[1], lambda: outside[2]))
        else:
            state = self._writers.get(writer_id)
            if state is None:
                state = self._writers[writer_id] = _WriterState()
            if n in state.got.left:
                found.append(self._anomaly(Anomaly.DUPLICATE, seen, change, "one filter-leave", lambda: "a second one"))
            else:
                state.got.left.add(n)
                self._receipt(writer_id, n, change.received_ns, leave=True)
        self._watch_late(change, seen, None)
        return Observation(None, tuple(found), str(change.op.value))

    def _outside_writer(self, writer_id: int, view: WriterView | None) -> tuple[Anomaly, str, str]:
        if writer_id in self.hidden:
            return Anomaly.OTHER_USER, f"rows of user {self.user}", f"writer {writer_id}'s (user {view and view.user})"
        where = view.conversation_id if view is not None else None
        return (
            Anomaly.OUTSIDE_FILTER,
            f"conversation {self.conversation_id}",
            f"conversation {where} (writer {writer_id})",
        )

    def _sent_away(self, seen: Seen) -> bool:
        """Whether the write was sent before the current subscription was requested: a replayed change's
        latency would measure the absence, so it is left out, as resume snapshot rows are."""
        gap = self.disconnects[-1] if self.disconnects else None
        return gap is not None and gap.requested_ns is not None and (seen.sent_at_us or 0) * 1000 < gap.requested_ns

    def _note_owed(self, state: _WriterState, seen: Seen, change: Change) -> None:
        """After a resume, a live change replacing a version never received proves the resume owed that version."""
        if change.op is Op.UPDATE:
            replaced = seen.old_wseq
        elif change.op is Op.DELETE:
            replaced = seen.wseq  # the tombstone is the row's last version
        else:
            return
        resumed = bool(self.disconnects) and self.disconnects[-1].resumed
        if resumed and replaced is not None and replaced >= 1 and replaced not in state.got.delivered:
            state.got.owed.add(replaced)

    def _outside(self, seen: Seen) -> tuple[Anomaly, str, str] | None:
        """(kind, expected, observed) when the row is one this listener should never see, else None."""
        if seen.error:
            return None
        view = self.plan_writers.get(seen.writer_id)
        if seen.writer_id in self.hidden:
            return (
                Anomaly.OTHER_USER,
                f"rows of user {self.user}",
                f"writer {seen.writer_id}'s (user {view and view.user})",
            )
        conversation = seen.conversation_id
        if view is not None and not view.writes_into(conversation):
            conversation = view.conversation_id  # a conversation its writer never wrote: a value error, checked later
        if self.conversation_id is not None and conversation != self.conversation_id:
            return (
                Anomaly.OUTSIDE_FILTER,
                f"conversation {self.conversation_id}",
                f"conversation {conversation} (writer {seen.writer_id})",
            )
        return None

    def _check_values(self, seen: Seen, change: Change, bump: bool = False) -> Sequence[Anomaly]:
        """Every column the writer wrote, against what it wrote (the new row, or the delete's tombstone).

        A ``bump``'s content is that of its maker (writer, wseq), not of its (id, version).
        """
        view = self.plan_writers.get(seen.writer_id)
        op, version = change.op, seen.version
        if (  # every value as written, tested in one expression; the cases below say what is wrong
            version >= 1
            and (version == 1 or op is not Op.INSERT)
            and (version >= 2 or op is not Op.UPDATE)
            and seen.conversation_id is not None
            and (view is None or seen.conversation_id == view.conversation_id)
            and seen.sent_at_us is not None
            and seen.wseq >= 1
            and seen.last_delete is not None
            and seen.last_delete >= 0
            and seen.content
            == (
                bump_content(seen.writer_id, seen.wseq, self.payload_bytes)
                if bump
                else content(seen.rid, version, self.payload_bytes)
            )
        ):
            return ()
        kind = Anomaly.DELETE_VALUE if op is Op.DELETE else Anomaly.NEW_VALUE
        wrong: list[tuple[str, Callable[[], str]]] = []
        entering = self.transitions and self.conversation_id is not None  # a filter-enter is an insert (0.7)
        if change.op is Op.INSERT and seen.version != 1 and not (entering and seen.version > 1):
            wrong.append(("version 1", lambda: f"version {seen.version}"))
        if change.op is Op.UPDATE and seen.version < 2:
            wrong.append(("version 2 or more", lambda: f"version {seen.version}"))
        if seen.version < 1:
            wrong.append(("version 1 or more", lambda: f"version {seen.version}"))
        elif seen.content != (
            bump_content(seen.writer_id, seen.wseq, self.payload_bytes)
            if bump
            else content(seen.rid, seen.version, self.payload_bytes)
        ):
            wrong.append((f"version {seen.version}'s content", lambda: f"content {_clip(seen.content)}"))
        if view is not None and not view.writes_into(seen.conversation_id):
            wrong.append((f"conversation {view.conversation_id}", lambda: f"conversation {seen.conversation_id}"))
        elif seen.conversation_id is None:
            wrong.append(("an integer conversation_id", lambda: "none"))
        if seen.sent_at_us is None:
            wrong.append(("an integer sent_at", lambda: "none"))
        if seen.wseq < 1:
            wrong.append(("wseq 1 or more", lambda: f"wseq {seen.wseq}"))
        if seen.last_delete is None or seen.last_delete < 0:
            wrong.append(("an integer last_delete", lambda: f"last_delete {seen.last_delete}"))
        if not wrong:
            return ()
        expected, observed = wrong[0]
        return [self._anomaly(kind, seen, change, expected, observed)]

    def _check_write(self, state: _WriterState, seen: Seen, change: Change, bump: bool = False) -> list[Anomaly]:
        """Old values (except a ``bump``'s, which the chain check judges), duplicates, order per writer."""
        found = []
        if change.op is Op.UPDATE and seen.version >= 2 and not bump:
            if seen.old_version != seen.version - 1:
                found.append(
                    self._anomaly(
                        Anomaly.OLD_VALUE,
                        seen,
                        change,
                        f"old version {seen.version - 1}",
                        lambda: f"old version {seen.old_version}",
                    )
                )
            elif seen.old_content != content(seen.rid, seen.version - 1, self.payload_bytes):
                found.append(
                    self._anomaly(
                        Anomaly.OLD_VALUE,
                        seen,
                        change,
                        f"version {seen.version - 1}'s content as old content",
                        lambda: f"old content {_clip(seen.old_content)}",
                    )
                )
        got = state.got
        if seen.wseq in got.delivered:
            found.append(self._anomaly(Anomaly.DUPLICATE, seen, change, "one delivery", lambda: "a second one"))
            return found
        last, deleted_before = state.last_wseq, state.previous_delete
        after = seen.last_delete if change.op is not Op.SNAPSHOT else None  # a resume sends rows, not order
        if seen.n in got.deleted:
            found.append(
                self._anomaly(Anomaly.OUT_OF_ORDER, seen, change, "before the row's delete", lambda: "after it")
            )
        elif last is not None and seen.wseq < last:
            found.append(
                self._anomaly(Anomaly.OUT_OF_ORDER, seen, change, f"before wseq {last}", lambda: f"after wseq {last}")
            )
        elif deleted_before is not None and after is not None and after < deleted_before:
            found.append(
                self._anomaly(
                    Anomaly.OUT_OF_ORDER,
                    seen,
                    change,
                    f"before the delete of row {deleted_before}",
                    lambda: f"after it (written after the delete of row {after})",
                )
            )
        got.delivered.add(seen.wseq)
        if not bump and self.links is None and seen.version > (state.versions.get(seen.n) or 1):
            state.versions.set(seen.n, seen.version)
        state.last_wseq = seen.wseq
        state.previous_delete = None
        state.previous_write_after = after
        if after is not None:
            state.max_last_delete = max(state.max_last_delete, after)
        return found

    def _check_delete(
        self, state: _WriterState, seen: Seen, change: Change, check_version: bool = True
    ) -> list[Anomaly]:
        """The delete flag, duplicates, order per writer and, with ``check_version`` (its values are
        those of some version of the row), that the tombstone is not older than a version received."""
        found = []
        if change.deleted is not True:
            found.append(
                self._anomaly(
                    Anomaly.DELETE_FLAG, seen, change, "_deleted true", lambda: f"_deleted {change.deleted!r}"
                )
            )
        got = state.got
        if seen.n in got.deleted:
            found.append(self._anomaly(Anomaly.DUPLICATE, seen, change, "one delete", lambda: "a second one"))
            return found
        received = state.versions.get(seen.n)
        state.versions.discard(seen.n)
        if check_version and received is not None and seen.version < received:
            found.append(
                self._anomaly(
                    Anomaly.DELETE_VALUE,
                    seen,
                    change,
                    f"the row's last version as tombstone (version {received} or later, received before it)",
                    lambda: f"version {seen.version} (wseq {seen.wseq}), a version the row had left",
                )
            )
        last, write_after = state.last_deleted, state.previous_write_after
        if last is not None and seen.n < last:
            found.append(
                self._anomaly(
                    Anomaly.OUT_OF_ORDER, seen, change, f"before the delete of row {last}", lambda: f"after row {last}"
                )
            )
        elif write_after is not None and write_after >= seen.n:
            found.append(
                self._anomaly(
                    Anomaly.OUT_OF_ORDER,
                    seen,
                    change,
                    "before the writes made after it",
                    lambda: f"after a write made after the delete of row {write_after}",
                )
            )
        got.deleted.add(seen.n)
        state.last_deleted = seen.n
        state.previous_delete = seen.n
        state.previous_write_after = None
        return found

    def _count(self, kind: Anomaly, received_ns: int) -> None:
        self.anomalies[kind] = self.anomalies.get(kind, 0) + 1
        per_second = self.timeline.setdefault(kind, {})
        second = received_ns // 1_000_000_000
        per_second[second] = per_second.get(second, 0) + 1

    def _anomaly(
        self, kind: Anomaly, seen: Seen, change: Change, expected: str, observed: Callable[[], str]
    ) -> Anomaly:
        """Count one anomaly; its witness text is only built while the kind still keeps witnesses."""
        self._count(kind, change.received_ns)
        if len(self.witnesses.get(kind, ())) < MAX_WITNESSES:
            self._keep(_witness(kind, self.listener_id, seen, change, expected, observed()))
        return kind

    def _keep(self, witness: Witness) -> None:
        kept = self.witnesses.setdefault(witness.kind, [])
        if len(kept) < MAX_WITNESSES:
            kept.append(witness)

    def _watch_late(self, change: Change, seen: Seen, latency_us: int | None) -> None:
        index = change.received_ns // self._bucket_ns
        buckets = self._late_buckets
        if buckets and buckets[-1][0] == index:
            buckets[-1][1] += 1
        else:
            buckets.append([index, 1])
            self._late_witness[index] = (seen, change, latency_us)
        while buckets and buckets[0][0] < index - LATE_BUCKETS - 1:
            self._late_witness.pop(buckets.popleft()[0], None)

    def delta(self, encode: bool = True) -> dict[str, Any]:
        """Counters and latency since the previous call (for Locust's report cycle).

        The latency is HDR-encoded for the wire (a worker's report); with ``encode`` False it is
        the histogram itself, for a live view in this process (encoding and decoding cost about
        2 ms per listener, which held the in-process loop for tens of ms each second).
        """
        now = {"received": self.received, **{str(k): n for k, n in self.anomalies.items()}}
        out: dict[str, Any] = {key: n - self._last_delta.get(key, 0) for key, n in now.items()}
        self._last_delta = now
        delta = self._latency_delta
        self._latency.merge(delta)
        if encode:
            out["latency"] = delta.encode()
            delta.reset()
        else:
            out["latency"] = delta
            self._latency_delta = LatencyHistogram()
        return out

    def _total_latency(self) -> LatencyHistogram:
        total = LatencyHistogram()
        total.merge(self._latency)
        total.merge(self._latency_delta)
        return total

    def summary(self) -> ListenerSummary:
        """Full state, for the checker (``to_dict`` for the wire)."""
        return ListenerSummary(
            listener_id=self.listener_id,
            conversation_id=self.conversation_id,
            user=self.user,
            hidden_writers=self.hidden,
            created_ns=self.created_ns,
            ready_ns=self.ready_ns,
            end_ns=self.end_ns,
            ended_early=self.ended_early,
            disconnects=[Disconnect.from_dict(d.to_dict()) for d in self.disconnects],
            received=self.received,
            by_op=dict(self.by_op),
            late=self.late,
            anomalies=dict(self.anomalies),
            witnesses=[w for kind in sorted(self.witnesses) for w in self.witnesses[kind]],
            timeline={k: dict(v) for k, v in self.timeline.items()},
            writers={wid: st.got.copy() for wid, st in sorted(self._writers.items())},
            latency=self._total_latency().encode(),
            deletes_without_latency=self.deletes_without_latency,
            links=self.links.to_list() if self.links is not None else [],
            receipts=[list(r) for r in self.receipts],
            latency_sources=dict(self.latency_sources),
        )


def _witness(kind: Anomaly, listener_id: str, seen: Seen, change: Change, expected: str, observed: str) -> Witness:
    readable = seen.error is None
    return Witness(
        kind=kind,
        listener=listener_id,
        expected=expected,
        observed=observed,
        writer=seen.writer_id if readable else None,
        wseq=seen.wseq if readable and change.op is not Op.DELETE else None,
        row=seen.n if readable else None,
        op=str(change.op),
        received_at=change.received_ns / 1e9,
    )


def _clip(text: str | None, limit: int = 40) -> str:
    if text is None:
        return "missing"
    return repr(text if len(text) <= limit else text[:limit] + "...")
