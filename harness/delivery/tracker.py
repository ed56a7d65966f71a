"""Per-listener tracking: checks each notification on arrival and keeps compact state.

Per writer the tracker keeps a range set of delivered ``wseq`` (inserts, updates and
snapshot rows) and one of delivered delete row numbers; a complete, in-order stream
stays one range each, so memory grows with writers and anomalies, not with messages.
Anomalies are counted per kind, bucketed per second and keep a few witnesses.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.delivery.identity import Seen, content, read_change
from harness.delivery.latency import LatencyHistogram
from harness.delivery.rangeset import RangeSet
from harness.targets.base import Change, Op

ANOMALIES = (
    "duplicates",
    "out_of_order",
    "phantom",
    "old_value_errors",
    "new_value_errors",
    "delete_flag_errors",
)
MAX_WITNESSES = 5
LATE_BUCKETS = 100  # the drain window is watched in this many buckets to count late arrivals


@dataclass(frozen=True, slots=True)
class Observation:
    """What one notification showed: its latency (None when not measurable) and anomaly kinds."""

    latency_ms: float | None
    anomalies: tuple[str, ...]
    op: str


class _WriterState:
    __slots__ = ("delivered", "deleted", "last_wseq", "last_deleted")

    def __init__(self) -> None:
        self.delivered = RangeSet()  # wseqs of inserts, updates and snapshot rows
        self.deleted = RangeSet()  # row numbers of delivered deletes
        self.last_wseq: int | None = None  # the previous delivery's, for order: one displaced
        self.last_deleted: int | None = None  # message counts once, not for all that follow it


class ListenerTracker:
    """Checks one listener's notifications (identity, duplicates, order, old values, delete flag).

    ``conversation_id`` is the listener's filter (None: unfiltered); ``payload_bytes``
    lets it recompute expected old contents; ``drain_ns`` is the drain window, inside
    which arrivals before ``mark_end`` count as late.
    """

    def __init__(
        self,
        listener_id: str,
        conversation_id: int | None,
        payload_bytes: int,
        drain_ns: int,
        created_ns: int | None = None,
    ) -> None:
        self.listener_id = listener_id
        self.conversation_id = conversation_id
        self.payload_bytes = payload_bytes
        self.drain_ns = drain_ns
        self.created_ns = created_ns if created_ns is not None else time.time_ns()
        self.ready_ns: int | None = None
        self.end_ns: int | None = None
        self.disconnects: list[dict[str, Any]] = []
        self.received = 0
        self.by_op: dict[str, int] = {}
        self.anomalies: dict[str, int] = dict.fromkeys(ANOMALIES, 0)
        self.witnesses: dict[str, list[dict[str, Any]]] = {}
        self.timeline: dict[str, dict[int, int]] = {}
        self.deletes_without_latency = 0
        self.late = 0
        self._writers: dict[int, _WriterState] = {}
        self._latency = LatencyHistogram()
        self._latency_delta = LatencyHistogram()
        self._late_buckets: deque[list[int]] = deque()  # [bucket index, count]
        self._late_witness: dict[int, tuple[Seen, Change, int | None]] = {}  # first arrival per bucket
        self._bucket_ns = max(1_000_000, drain_ns // LATE_BUCKETS)
        self._last_delta: dict[str, int] = {"received": 0, **dict.fromkeys(ANOMALIES, 0)}

    def mark_ready(self, ns: int) -> None:
        """The subscription is ready: changes committed from now on must arrive."""
        if self.ready_ns is None:
            self.ready_ns = ns

    def mark_disconnected(self, ns: int, reason: str, expected: bool) -> None:
        self.disconnects.append(
            {"down_ns": ns, "up_ns": None, "reason": reason, "expected": expected, "resumed": False}
        )

    def mark_resumed(self, ns: int, resumed: bool = True) -> None:
        """Subscribed again at ``ns``; ``resumed`` says whether it resumed from the last seen seq."""
        if self.disconnects and self.disconnects[-1]["up_ns"] is None:
            self.disconnects[-1]["up_ns"] = ns
            self.disconnects[-1]["resumed"] = resumed

    def mark_end(self, ns: int) -> None:
        """The listener stopped receiving; arrivals in the last drain window count as late."""
        self.end_ns = ns
        cutoff = (ns - self.drain_ns) // self._bucket_ns
        self.late = sum(count for index, count in self._late_buckets if index >= cutoff)
        for index in sorted(self._late_witness):
            if index >= cutoff:
                seen, change, latency_us = self._late_witness[index]
                latency = "" if latency_us is None else f", latency {latency_us / 1000:.1f} ms"
                self._witness("late", _witness(self.listener_id, seen, change, f"arrived in the drain window{latency}"))

    def observe(self, change: Change) -> Observation:
        """Check one notification and fold it into the state."""
        self.received += 1
        op = str(change.op.value)
        self.by_op[op] = self.by_op.get(op, 0) + 1
        seen = read_change(change)
        found: list[str] = []
        latency_us: int | None = None
        if seen.error:
            found.append(self._anomaly("phantom", seen, change, lambda: str(seen.error)))
        elif self.conversation_id is not None and seen.conversation_id != self.conversation_id:
            found.append(
                self._anomaly(
                    "phantom",
                    seen,
                    change,
                    lambda: f"conversation {seen.conversation_id} outside filter {self.conversation_id}",
                )
            )
        else:
            state = self._writers.get(seen.writer_id)
            if state is None:
                state = self._writers[seen.writer_id] = _WriterState()
            if change.op is Op.DELETE:
                found.extend(self._check_delete(state, seen, change))
                if change.committed_ns is not None:
                    latency_us = (change.received_ns - change.committed_ns) // 1000
                else:
                    self.deletes_without_latency += 1
            else:
                found.extend(self._check_write(state, seen, change))
                if change.op is not Op.SNAPSHOT and seen.sent_at_us is not None:
                    latency_us = change.received_ns // 1000 - seen.sent_at_us
        if latency_us is not None:
            self._latency_delta.record_us(latency_us)
        self._watch_late(change, seen, latency_us)
        return Observation(None if latency_us is None else latency_us / 1000, tuple(found), op)

    def _check_write(self, state: _WriterState, seen: Seen, change: Change) -> list[str]:
        found = []
        if change.op is Op.INSERT and seen.version != 1:
            found.append(self._anomaly("phantom", seen, change, lambda: f"insert with version {seen.version}"))
        if change.op is Op.UPDATE:
            if seen.version < 2:
                found.append(self._anomaly("phantom", seen, change, lambda: f"update with version {seen.version}"))
            elif seen.old_version != seen.version - 1:
                found.append(
                    self._anomaly(
                        "old_value_errors",
                        seen,
                        change,
                        lambda: f"old version {seen.old_version}, expected {seen.version - 1}",
                    )
                )
            elif seen.old_content != content(seen.rid, seen.version - 1, self.payload_bytes):
                found.append(
                    self._anomaly(
                        "old_value_errors",
                        seen,
                        change,
                        lambda: f"old content {_clip(seen.old_content)} is not version {seen.version - 1}'s",
                    )
                )
        if (
            seen.content is not None
            and seen.version >= 1
            and (seen.content != content(seen.rid, seen.version, self.payload_bytes))
        ):
            found.append(
                self._anomaly(
                    "new_value_errors",
                    seen,
                    change,
                    lambda: f"content {_clip(seen.content)} is not version {seen.version}'s",
                )
            )
        if seen.wseq in state.delivered:
            found.append(self._anomaly("duplicates", seen, change, lambda: "wseq delivered before"))
            return found
        last = state.last_wseq
        if seen.n in state.deleted:
            found.append(self._anomaly("out_of_order", seen, change, lambda: "row's delete was delivered before"))
        elif last is not None and seen.wseq < last:
            found.append(self._anomaly("out_of_order", seen, change, lambda: f"after wseq {last}"))
        state.delivered.add(seen.wseq)
        state.last_wseq = seen.wseq
        return found

    def _check_delete(self, state: _WriterState, seen: Seen, change: Change) -> list[str]:
        found = []
        if change.deleted is not True:
            found.append(self._anomaly("delete_flag_errors", seen, change, lambda: f"_deleted is {change.deleted!r}"))
        if seen.n in state.deleted:
            found.append(self._anomaly("duplicates", seen, change, lambda: f"delete of row {seen.n} delivered before"))
            return found
        last = state.last_deleted
        if last is not None and seen.n < last:
            found.append(
                self._anomaly("out_of_order", seen, change, lambda: f"delete of row {seen.n} after row {last}")
            )
        state.deleted.add(seen.n)
        state.last_deleted = seen.n
        return found

    def _anomaly(self, kind: str, seen: Seen, change: Change, detail: Callable[[], str]) -> str:
        """Count one anomaly; its witness text is only built while the kind still keeps witnesses."""
        self.anomalies[kind] += 1
        second = change.received_ns // 1_000_000_000
        per_second = self.timeline.setdefault(kind, {})
        per_second[second] = per_second.get(second, 0) + 1
        if len(self.witnesses.get(kind, ())) < MAX_WITNESSES:
            self._witness(kind, _witness(self.listener_id, seen, change, detail()))
        return kind

    def _witness(self, kind: str, witness: dict[str, Any]) -> None:
        kept = self.witnesses.setdefault(kind, [])
        if len(kept) < MAX_WITNESSES:
            kept.append({"kind": kind, **witness})

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

    def delta(self) -> dict[str, Any]:
        """Counters and latency since the previous call (for Locust's report cycle)."""
        now = {"received": self.received, **self.anomalies}
        out = {key: now[key] - self._last_delta[key] for key in now}
        self._last_delta = now
        out["latency"] = self._latency_delta.encode()
        self._latency.merge(self._latency_delta)
        self._latency_delta.reset()
        return out

    def _total_latency(self) -> LatencyHistogram:
        total = LatencyHistogram()
        total.merge(self._latency)
        total.merge(self._latency_delta)
        return total

    def summary(self) -> dict[str, Any]:
        """Full state as plain data, for the checker."""
        return {
            "listener_id": self.listener_id,
            "conversation_id": self.conversation_id,
            "created_ns": self.created_ns,
            "ready_ns": self.ready_ns,
            "end_ns": self.end_ns,
            "disconnects": [dict(d) for d in self.disconnects],
            "received": self.received,
            "by_op": dict(self.by_op),
            "late": self.late,
            "anomalies": dict(self.anomalies),
            "witnesses": [w for kind in sorted(self.witnesses) for w in self.witnesses[kind]],
            "timeline": {k: {str(s): c for s, c in v.items()} for k, v in self.timeline.items()},
            "writers": {
                str(wid): {"delivered": st.delivered.to_list(), "deleted": st.deleted.to_list()}
                for wid, st in sorted(self._writers.items())
            },
            "latency": self._total_latency().encode(),
            "deletes_without_latency": self.deletes_without_latency,
        }


def _witness(listener_id: str, seen: Seen, change: Change, detail: str) -> dict[str, Any]:
    return {
        "listener": listener_id,
        "writer": seen.writer_id,
        "wseq": seen.wseq if change.op is not Op.DELETE else None,
        "row_id": seen.rid,
        "received_at": change.received_ns / 1e9,
        "detail": f"{change.op} of row {seen.n} (version {seen.version}, wseq {seen.wseq}): {detail}",
    }


def _clip(text: str | None, limit: int = 40) -> str:
    if text is None:
        return "missing"
    return repr(text if len(text) <= limit else text[:limit] + "...")
