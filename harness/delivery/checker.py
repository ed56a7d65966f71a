"""The delivery checker: writers' ledgers × listeners' summaries → ``delivery.json``.

Pure functions over plain data. For each listener the expected ("must") set is every
write acked ok by a writer it may see (its conversation, or all when unfiltered; on a
per-user table only its own user's writers), certainly invoked after it was ready and
certainly acked before its end minus the drain window. Writes that race a boundary or are
indeterminate are "may": they can arrive or not without an anomaly.

Disconnects follow the excuse rule of ``docs/excuse-rule.md``, from the marks the tracker
took at each disconnect (per writer, the highest wseq and deleted row delivered until then),
never from a clock: whatever is missing at or below a mark is lost. Above it, a resume
that replays every change (feature ``resume_replays_changes``, and the listener saw the
replay: a 0.7 cursor refused as expired is answered by current rows) excuses nothing; a resume
that sends current rows only (feature ``resume``, KalamDB's) excuses a version replaced
before the resume and any delete made before it, unless the version is still current at
the end of the run or a live change after the resume proved the resume owed it. A
reconnect without resume excuses everything above the marks made before the new
subscription was ready, and a live change of a write acked before it was requested is
``stale``.

Rows a writer ``move``s between conversations: a filtered listener is owed the versions and
deletes its writer made while the row was in its conversation (the ledger's ``placed``). Where the
target promises filter transitions (``filter_transitions``, KalamDB 0.7) it is also owed one
filter-leave per move out of its conversation, a third stream keyed by the move's wseq; elsewhere
(0.4) a move out of the filter sends nothing, so nothing is owed and a leave would be malformed.

Delete latency: where a delete carries the server's commit time (0.4's Snowflake ``_seq``) the
tracker measures it on arrival; otherwise (0.7) the tracker keeps the receipt and the checker joins
it with the writer's send time of that delete (or of the move, for a filter-leave) from the ledger.
``latency_sources`` in ``delivery.json`` says how many samples came from where.

Each anomaly class has its own function; ``check_listener`` returns a ``ListenerReport``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.delivery import contention
from harness.delivery.anomalies import LEGACY_PHANTOM, ON_ARRIVAL, PHANTOM, Anomaly, Witness
from harness.delivery.latency import LatencyHistogram
from harness.delivery.ledger import INF, TimeIndex, WriterLedger
from harness.delivery.rangeset import RangeSet
from harness.delivery.tracker import Delivered, Disconnect, ListenerSummary

COUNTS = ("expected", "may", "delivered")
MAX_WITNESSES_PER_KIND = 10
MAX_DISCONNECT_RECORDS = 1000  # unexpected disconnects kept whole, so the judge can match them to network faults
MAX_WITNESSES = 5  # per listener, writer and kind found at the end
RESUME_CURRENT_ROWS = "resume"
"""Target feature: a resume sends the current version of every row changed since the last seen sequence."""
RESUME_REPLAYS_CHANGES = "resume_replays_changes"
"""Target feature: a resume replays every change since the last seen sequence, deletes included."""
FILTER_TRANSITIONS = "filter_transitions"
"""Target feature: an update entering a filter is an insert, one leaving it a delete of the key (KalamDB 0.7)."""
SOURCE_LEDGER = "writer_send_time"  # delete, filter-leave: receipt - the writer's send time in its ledger


@dataclass
class ListenerReport:
    """One listener's verdict data: counts by kind, witnesses, timeline and latency (``to_dict``: its row)."""

    listener: str
    conversation_id: int | None
    counts: dict[str, int]
    received: int
    received_by_op: dict[str, int]
    latency: LatencyHistogram
    deletes_without_latency: int
    ready_ns: int | None
    end_ns: int | None
    witnesses: list[Witness] = field(default_factory=list)
    timeline: dict[tuple[int, Anomaly], int] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)  # latency samples by source (SOURCE_*)

    def add(self, kind: Anomaly | str, n: int) -> None:
        self.counts[str(kind)] = self.counts.get(str(kind), 0) + n

    def to_dict(self) -> dict[str, Any]:
        return {
            "listener": self.listener,
            "conversation_id": self.conversation_id,
            **_with_phantom(self.counts),
            "received": self.received,
            "received_by_op": dict(self.received_by_op),
            "latency_ms": self.latency.percentiles_ms(),
            "deletes_without_latency": self.deletes_without_latency,
            "latency_sources": dict(self.sources),
            "ready_at": _secs(self.ready_ns),
            "end_at": _secs(self.end_ns),
        }


def _zero_counts() -> dict[str, int]:
    return {**dict.fromkeys(COUNTS, 0), **{str(a): 0 for a in Anomaly}}


def _with_phantom(counts: dict[str, int]) -> dict[str, int]:
    """The counts plus ``phantom``, the phantom family's sum (the key older readers know)."""
    return {**counts, LEGACY_PHANTOM: sum(counts.get(str(a), 0) for a in PHANTOM)}


@dataclass(frozen=True, slots=True)
class Windows:
    """A listener's time window where acked writes are owed (``up``), and where anything may arrive (``life``)."""

    up: tuple[int, int] | None
    life: tuple[int, int] | None


def listener_windows(summary: ListenerSummary, drain_ns: int) -> Windows:
    """From ready to end − drain (disconnects are handled by their marks, not by time)."""
    ready, end = summary.ready_ns, summary.end_ns
    if ready is None or end is None:
        return Windows(None, None)
    return Windows((ready, end - drain_ns) if ready <= end - drain_ns else None, (ready, end))


@dataclass(frozen=True, slots=True)
class Stream:
    """One writer's stream as one listener sees it: its keys by outcome, times, and what was delivered.

    ``deletes`` streams are keyed by row number, the others by wseq (``leaves``: the wseqs of
    the moves that took a row out of the listener's filter). ``current`` are the keys still
    their row's version at the end (none for deletes and leaves); ``owed`` the keys the
    tracker proved a resume owed; ``marks`` the stream's mark at each disconnect.
    """

    writer: int
    deletes: bool
    ok: RangeSet
    possible: RangeSet
    failed: RangeSet
    times: TimeIndex
    got: RangeSet
    current: RangeSet
    owed: RangeSet
    marks: tuple[int, ...]
    leaves: bool = False


def effective_marks(led: WriterLedger, gap: Disconnect) -> tuple[int, int]:
    """(wseq, deleted row) marks of ``led``'s writer at ``gap``.

    The tracker's delete mark already counts the deletes that delivered writes proved (their
    ``last_delete``). A delivered delete proves, in turn, every write that certainly ended before
    it started (the writer runs one operation at a time; its ledger's own clock says so).
    """
    mark = gap.marks.get(led.writer_id)
    wseq = (mark.wseq if mark else None) or 0
    deleted = (mark.deleted if mark else None) or 0
    if deleted:
        started = led.delete_times.invoked_not_before(deleted)
        if started is not None:
            wseq = max(wseq, led.times.last_acked_at_or_before(started))
    return wseq, deleted


def _streams(
    led: WriterLedger, got: Delivered, gaps: list[Disconnect], conversation: int | None, transitions: bool
) -> list[Stream]:
    """The writer's streams as a listener filtered to ``conversation`` (None: unfiltered) sees them."""
    marks = [effective_marks(led, gap) for gap in gaps]
    writes_seen = led.visible_writes(conversation) if conversation is not None else None
    deletes_seen = led.visible_deletes(conversation) if conversation is not None else None

    def only(keys: RangeSet, seen: RangeSet | None) -> RangeSet:
        return keys if seen is None else keys.intersection(seen)

    streams = [
        Stream(
            led.writer_id,
            False,
            only(led.written("ok"), writes_seen),
            only(led.written("ok", "indeterminate"), writes_seen),
            only(led.written("failed"), writes_seen),
            led.times,
            got.delivered,
            led.current,
            got.owed,
            tuple(m[0] for m in marks),
        ),
        Stream(
            led.writer_id,
            True,
            only(led.deleted("ok"), deletes_seen),
            only(led.deleted("ok", "indeterminate"), deletes_seen),
            only(led.deleted("failed"), deletes_seen),
            led.delete_times,
            got.deleted,
            RangeSet(),
            RangeSet(),
            tuple(m[1] for m in marks),
        ),
    ]
    if conversation is not None and transitions and led.moves:
        left = led.left(conversation)
        moved_out = RangeSet()
        for wseq in left.values():
            moved_out.add(wseq)
        streams.append(
            Stream(
                led.writer_id,
                False,
                led.written("ok").intersection(moved_out),
                led.written("ok", "indeterminate").intersection(moved_out),
                led.written("failed").intersection(moved_out),
                led.times,
                _left_wseqs(got.left, left),
                RangeSet(),
                RangeSet(),
                tuple(m[0] for m in marks),
                leaves=True,
            )
        )
    return streams


def _left_wseqs(rows: RangeSet, left: dict[int, int]) -> RangeSet:
    """The wseqs of the moves whose filter-leaves arrived (``rows``); a leave no move made maps to none."""
    out = RangeSet()
    for first, last in rows.ranges():
        for n in range(first, last + 1):
            if n in left:
                out.add(left[n])
    return out


def _unpaired_leaves(rows: RangeSet, left: dict[int, int]) -> list[int]:
    """Rows whose filter-leave arrived with no move out of the listener's conversation to pair it with."""
    return [n for first, last in rows.ranges() for n in range(first, last + 1) if n not in left]


def _touching(times: TimeIndex, start: int, stop: int) -> RangeSet:
    """Keys whose operation may overlap ``[start, stop]``."""
    lo = times.first_possibly_acked_at_or_after(start)
    hi = times.last_possibly_invoked_at_or_before(stop)
    return RangeSet([(lo, hi)] if lo <= hi and lo < INF else [])


def excused(stream: Stream, gap: Disconnect, mark: int, replays: bool) -> RangeSet:
    """Keys of ``stream`` that ``gap`` (with ``mark``) excuses (see the module docstring and docs/excuse-rule.md)."""
    above = mark + 1
    if gap.up_ns is None:  # never came back: the listener's end bounds what it was owed
        return RangeSet([(above, INF)])
    if not gap.resumed:
        last = stream.times.first_invoked_at_or_after(gap.up_ns) - 1
        return RangeSet([(above, last)] if above <= last else [])
    if replays and gap.replayed:
        return RangeSet()
    last = stream.times.last_possibly_invoked_at_or_before(gap.up_ns)
    window = RangeSet([(above, last)] if above <= last else [])
    return window.difference(stream.current).difference(stream.owed)


def classify(stream: Stream, summary: ListenerSummary, windows: Windows, replays: bool) -> tuple[RangeSet, RangeSet]:
    """(must, may) keys of one writer stream for one listener."""
    must = RangeSet()
    if windows.up is not None:
        start, stop = windows.up
        lo, hi = stream.times.first_invoked_at_or_after(start), stream.times.last_acked_at_or_before(stop)
        if lo <= hi:
            must.add_range(lo, hi)
    must = must.intersection(stream.ok)
    for gap, mark in zip(summary.disconnects, stream.marks, strict=True):
        must = must.difference(excused(stream, gap, mark, replays))
    if windows.life is None:
        return must, RangeSet()
    life = _touching(stream.times, *windows.life)
    return must, life.intersection(stream.possible).difference(must)


def stale(stream: Stream, summary: ListenerSummary) -> RangeSet:
    """Live deliveries, after reconnects without resume, of writes certainly acked before the new subscription."""
    out = RangeSet()
    if stream.deletes:
        return out
    for gap, mark in zip(summary.disconnects, stream.marks, strict=True):
        first = gap.first_live.get(stream.writer)
        if gap.resumed or gap.requested_ns is None or first is None:
            continue
        lo = max(first, mark + 1)
        hi = stream.times.last_acked_at_or_before(gap.requested_ns)
        if lo <= hi:
            out = out.union(stream.got.intersection(RangeSet([(lo, hi)])))
    return out


def _foreign_reason(
    wid: int, led: WriterLedger | None, plan_writers: set[int], summary: ListenerSummary
) -> tuple[Anomaly, str] | None:
    """Why every delivery of writer ``wid`` should not exist for this listener, or None.

    A tracker that knows the plan's writers reports rows outside the filter or of another user
    on arrival; these rules catch the rest (a writer the plan never had, a row claiming a
    conversation its writer does not write).
    """
    if led is None:
        return (Anomaly.UNEXPECTED, f"writer {wid} is not in the plan") if wid not in plan_writers else None
    if wid in summary.hidden_writers:
        return Anomaly.OTHER_USER, f"writer {wid} writes as another user than {summary.user}"
    cid = summary.conversation_id
    if cid is not None and cid not in led.conversations:
        return Anomaly.OUTSIDE_FILTER, f"writer {wid} writes conversation {led.conversation_id}, outside filter {cid}"
    return None


def _first_ack_ns(times: TimeIndex, key: int) -> int | None:
    """About when ``key`` was acked: the ack of the checkpoint at or before it."""
    spans = times.spans()
    i = bisect_right([first for first, _, _ in spans], key) - 1
    return spans[i][2] if i >= 0 else None


def _per_second(times: TimeIndex, keys: RangeSet) -> dict[int, int]:
    """Count ``keys`` per second of (approximate) ack time, walking spans and ranges together."""
    out: dict[int, int] = {}
    ranges = keys.ranges()
    j = 0
    for first, last, ack in times.spans():
        while j < len(ranges) and ranges[j][1] < first:
            j += 1
        k = j
        n = 0
        while k < len(ranges) and ranges[k][0] <= last:
            n += min(last, ranges[k][1]) - max(first, ranges[k][0]) + 1
            k += 1
        if n:
            second = ack // 1_000_000_000
            out[second] = out.get(second, 0) + n
    return out


def _witnesses_for(kind: Anomaly, lid: str, stream: Stream, keys: RangeSet) -> list[Witness]:
    """The first few witnesses of ``keys`` (of one writer stream) found at the end of the run."""
    what = "delete" if stream.deletes else "filter-leave" if stream.leaves else "write"
    texts = {
        Anomaly.LOST: (f"delivery of a {what} acked ok", "never delivered"),
        Anomaly.UNEXPECTED: ("no delivery (never attempted)", f"{what} delivered"),
        Anomaly.ABORTED: ("no delivery (the write failed)", f"{what} delivered"),
        Anomaly.STALE: ("no live change of a write acked before the subscription", "one"),
    }
    expected, observed = texts[kind]
    out = []
    for key in keys.first(MAX_WITNESSES):
        ack = _first_ack_ns(stream.times, key) if kind is not Anomaly.UNEXPECTED else None
        out.append(
            Witness(
                kind=kind,
                listener=lid,
                expected=expected,
                observed=observed,
                writer=stream.writer,
                wseq=None if stream.deletes else key,
                row=key if stream.deletes else None,
                op="delete" if stream.deletes or stream.leaves else None,
                acked_at=_secs(ack),
            )
        )
    return out


def _check_stream(
    report: ListenerReport, stream: Stream, summary: ListenerSummary, windows: Windows, replays: bool
) -> None:
    """Lost, unexpected, aborted and stale keys of one writer stream, counted with witnesses and timeline."""
    must, may = classify(stream, summary, windows, replays)
    report.add("expected", len(must))
    report.add("may", len(may))
    found = {
        Anomaly.LOST: must.difference(stream.got),
        Anomaly.ABORTED: stream.got.intersection(stream.failed),
        Anomaly.UNEXPECTED: stream.got.difference(stream.possible).difference(stream.failed),
        Anomaly.STALE: stale(stream, summary),
    }
    for kind, keys in found.items():
        report.add(kind, len(keys))
        report.witnesses.extend(_witnesses_for(kind, report.listener, stream, keys))
    for second, n in _per_second(stream.times, found[Anomaly.LOST]).items():
        report.timeline[(second, Anomaly.LOST)] = report.timeline.get((second, Anomaly.LOST), 0) + n


def _ended_early(report: ListenerReport, summary: ListenerSummary) -> None:
    if summary.ended_early is None or summary.ready_ns is None:
        return
    report.add(Anomaly.ENDED_EARLY, 1)
    report.witnesses.append(
        Witness(
            Anomaly.ENDED_EARLY,
            report.listener,
            "to receive until the run's stop",
            f"ended: {summary.ended_early[:120]}",
            received_at=_secs(summary.end_ns),
        )
    )


def check_listener(
    summary: ListenerSummary,
    ledgers: Mapping[int, WriterLedger],
    plan_writers: set[int],
    drain_ns: int,
    replays: bool = False,
    transitions: bool = False,
) -> ListenerReport:
    """Counts, witnesses and timeline of one listener (``ledgers``: the writers that arrived).

    ``replays``: the target's resume replays every change (nothing above a mark is excused);
    ``transitions``: the target sends a filtered listener a leave per row moved out of its filter.
    """
    report = ListenerReport(
        listener=summary.listener_id,
        conversation_id=summary.conversation_id,
        counts=_zero_counts(),
        received=summary.received,
        received_by_op=dict(summary.by_op),
        latency=LatencyHistogram.decode(summary.latency),
        deletes_without_latency=summary.deletes_without_latency,
        ready_ns=summary.ready_ns,
        end_ns=summary.end_ns,
        witnesses=list(summary.witnesses),
    )
    for kind in ON_ARRIVAL:
        report.add(kind, summary.anomalies.get(kind, 0))
    report.add(Anomaly.LATE, summary.late)
    for kind, per_second in summary.timeline.items():
        for second, n in per_second.items():
            report.timeline[(second, kind)] = report.timeline.get((second, kind), 0) + n
    _ended_early(report, summary)
    windows = listener_windows(summary, drain_ns)
    cid = summary.conversation_id
    watched = {
        led.writer_id
        for led in ledgers.values()
        if (cid is None or cid in led.conversations) and led.writer_id not in summary.hidden_writers
    }
    report.sources.update(summary.latency_sources)
    for wid in sorted(set(summary.writers) | watched):
        got = summary.writers.get(wid, Delivered())
        report.add("delivered", len(got.delivered) + len(got.deleted) + len(got.left))
        led = ledgers.get(wid)
        foreign = _foreign_reason(wid, led, plan_writers, summary)
        if foreign is not None:
            kind, why = foreign
            report.add(kind, len(got.delivered) + len(got.deleted))
            report.witnesses.append(
                Witness(
                    kind,
                    report.listener,
                    "rows of the writers this listener may see",
                    why,
                    writer=wid,
                    wseq=_first(got.delivered),
                    row=None if got.delivered else _first(got.deleted),
                )
            )
            continue
        if led is None:  # its ledger never arrived: neither expected nor unexpected
            continue
        for stream in _streams(led, got, summary.disconnects, cid, transitions):
            _check_stream(report, stream, summary, windows, replays)
        if cid is not None and got.left:
            _unexpected_leaves(report, wid, _unpaired_leaves(got.left, led.left(cid)))
    _delete_latency(report, summary, ledgers)
    return report


def _unexpected_leaves(report: ListenerReport, wid: int, rows: list[int]) -> None:
    report.add(Anomaly.UNEXPECTED, len(rows))
    for n in rows[:MAX_WITNESSES]:
        report.witnesses.append(
            Witness(
                Anomaly.UNEXPECTED,
                report.listener,
                "no filter-leave (no move took the row out of this conversation)",
                "a filter-leave delivered",
                writer=wid,
                row=n,
                op="delete",
            )
        )


def _delete_latency(report: ListenerReport, summary: ListenerSummary, ledgers: Mapping[int, WriterLedger]) -> None:
    """Join delete and filter-leave receipts with the writers' send times: one latency sample each.

    The ledger holds the exact send time of the deletes its time checkpoints keep (the first, then
    one per 50 ms, and the last): those deletes are the samples, every move out of the listener's
    conversation is one. A delete sent before a resubscription that came before its receipt is left
    out (it would measure the absence, as replayed writes do); any other receipt without a send
    time counts in ``deletes_without_latency``. Samples of commit-time deletes (0.4) are the tracker's.
    """
    sent: dict[tuple[int, int, int], int] = {}
    for wid in {r[0] for r in summary.receipts}:
        led = ledgers.get(wid)
        if led is None:
            continue
        for n, at_ns, _ in led.delete_times.points():
            sent[(wid, n, 0)] = at_ns
        if summary.conversation_id is not None:
            for _, n, source, _, at_ns in led.moves:
                if source == summary.conversation_id:
                    sent[(wid, n, 1)] = at_ns
    joined = 0
    for wid, n, received_ns, leave in summary.receipts:
        invoke_ns = sent.get((wid, n, leave))
        if invoke_ns is None:
            report.deletes_without_latency += 1
            continue
        if any(g.requested_ns is not None and invoke_ns < g.requested_ns <= received_ns for g in summary.disconnects):
            continue
        report.latency.record_us((received_ns - invoke_ns) // 1000)
        joined += 1
    if joined:
        report.sources[SOURCE_LEDGER] = joined


def _first(keys: RangeSet) -> int | None:
    found = keys.first(1)
    return found[0] if found else None


def _secs(ns: int | None) -> float | None:
    return None if ns is None else ns / 1e9


def connections(summaries: Iterable[ListenerSummary]) -> dict[str, Any]:
    """Listener seconds connected vs meant to be connected, and unexpected disconnects with witnesses.

    Planned time away (a scenario's reconnect) counts in neither; unexpected gaps count as down.
    ``listener_seconds_since_ready`` is the same total counted from each listener's ready time;
    listeners that never became ready are counted in ``listeners_never_ready`` instead.
    ``disconnects`` lists every unexpected disconnect (up to ``MAX_DISCONNECT_RECORDS``) with its
    listener and times, so the judge can tell those a network fault caused.
    """
    up = total = planned_total = since_ready = 0.0
    unexpected = never_ready = 0
    witnesses: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    for s in summaries:
        created, ready, end = s.created_ns, s.ready_ns, s.end_ns
        if created is None or end is None:
            continue
        gaps = s.disconnects
        planned = sum((d.up_ns or end) - d.down_ns for d in gaps if d.expected)
        down = sum((d.up_ns or end) - d.down_ns for d in gaps if not d.expected)
        total += (end - created - planned) / 1e9
        planned_total += planned / 1e9
        if ready is not None:
            up += max(0, end - ready - planned - down) / 1e9
            since_ready += max(0, end - ready - planned) / 1e9
        else:
            never_ready += 1
        for d in gaps:
            if d.expected:
                continue
            unexpected += 1
            record = {
                "listener": s.listener_id,
                "down_at": _secs(d.down_ns),
                "up_at": _secs(d.up_ns),
                "reason": d.reason,
                "resumed": d.resumed,
            }
            if len(witnesses) < MAX_WITNESSES_PER_KIND:
                witnesses.append(record)
            if len(records) < MAX_DISCONNECT_RECORDS:
                records.append(record)
    return {
        "listener_seconds_up": round(up, 3),
        "listener_seconds_total": round(total, 3),
        "listener_seconds_since_ready": round(since_ready, 3),
        "planned_away_seconds": round(planned_total, 3),
        "unexpected_disconnects": unexpected,
        "listeners_never_ready": never_ready,
        "disconnect_witnesses": witnesses,
        "disconnects": records,
        "disconnects_truncated": unexpected > len(records),
    }


def _check_chains(
    ledgers: list[WriterLedger],
    summaries: list[ListenerSummary],
    reports: list[ListenerReport],
    commit_log: Iterable[contention.Commit] | None,
) -> tuple[list[Witness], str] | None:
    """The chain check of a contention run (None for any other run: no links, bumps or log).

    Each listener's chain breaks, commit-order violations and missing links go into its report;
    returned are the version conflicts (not any one listener's) and where the order came from.
    """
    links = {s.listener_id: [contention.Link.from_list(x) for x in s.links] for s in summaries}
    acks = [
        contention.Commit(rid, version, (led.writer_id, wseq)) for led in ledgers for wseq, rid, version in led.bumps
    ]
    log = None if commit_log is None else list(commit_log)
    if not acks and not log and not any(links.values()):
        return None
    rows = {c.rid for c in acks} | {c.rid for c in log or ()} | {link.rid for got in links.values() for link in got}
    known = contention.truth(log, acks, links, rows)
    by_listener = {s.listener_id: s for s in summaries}

    def owed(listener: str, rid: int) -> bool:
        """A shared row is its inserting writer's: a listener is owed it when it may see that writer."""
        owner, summary = rid >> 32, by_listener[listener]
        led = next((x for x in ledgers if x.writer_id == owner), None)
        conversation = led.conversation_id if led is not None else None
        in_filter = summary.conversation_id is None or summary.conversation_id == conversation
        return in_filter and owner not in summary.hidden_writers

    found = contention.check_chains(links, known, owed)
    for report in reports:
        mine = found.get(report.listener, [])
        for kind in (Anomaly.CHAIN_BREAK, Anomaly.COMMIT_ORDER, Anomaly.MISSING_LINK):
            of_kind = [w for w in mine if w.kind is kind]
            report.add(kind, len(of_kind))
            report.witnesses.extend(of_kind[:MAX_WITNESSES])
    return found["all"], known.source


def check(
    ledgers: Iterable[WriterLedger | dict[str, Any]],
    listener_summaries: Iterable[ListenerSummary | dict[str, Any]],
    drain_ns: int,
    plan_writers: Iterable[int] | None = None,
    aggregation: dict[str, Any] | None = None,
    features: Iterable[str] = (RESUME_CURRENT_ROWS,),
    commit_log: Iterable[contention.Commit] | None = None,
) -> dict[str, Any]:
    """The ``delivery.json`` structure (see docs/run-folder.md) for one run.

    ``commit_log`` is the ground truth of a contention run's chain check where the target's
    database exposes its commit order (docs/contention.md); without it the server's versions are.

    ``plan_writers`` lists every writer id of the plan; a writer whose ledger is missing
    (its summary never arrived) is neither expected nor unexpected. Defaults to the ledgers.
    ``features`` are the target's; they say what a resume promises (docs/excuse-rule.md).
    """
    by_id = {}
    for led in ledgers:
        led = led if isinstance(led, WriterLedger) else WriterLedger.from_dict(led)
        by_id[led.writer_id] = led
    known = set(plan_writers) if plan_writers is not None else set(by_id)
    replays = RESUME_REPLAYS_CHANGES in set(features)
    transitions = FILTER_TRANSITIONS in set(features)
    summaries = sorted(
        (s if isinstance(s, ListenerSummary) else ListenerSummary.from_dict(s) for s in listener_summaries),
        key=lambda s: s.listener_id,
    )
    reports = [check_listener(s, by_id, known, drain_ns, replays, transitions) for s in summaries]
    chains = _check_chains(list(by_id.values()), summaries, reports, commit_log)
    counts = _zero_counts()
    merged = LatencyHistogram()
    witnesses: dict[Anomaly, list[dict[str, Any]]] = {}
    timeline: dict[tuple[int, Anomaly], int] = {}
    by_op: dict[str, int] = dict.fromkeys(("insert", "update", "delete", "snapshot"), 0)
    for r in reports:
        for name, n in r.counts.items():
            counts[name] = counts.get(name, 0) + n
        merged.merge(r.latency)
        for w in r.witnesses:
            kept = witnesses.setdefault(w.kind, [])
            if len(kept) < MAX_WITNESSES_PER_KIND:
                kept.append(w.to_dict())
        for when, n in r.timeline.items():
            timeline[when] = timeline.get(when, 0) + n
        for op, n in r.received_by_op.items():
            by_op[op] = by_op.get(op, 0) + n
    if chains is not None:
        conflicts = chains[0]
        counts[str(Anomaly.VERSION_CONFLICT)] += len(conflicts)
        witnesses[Anomaly.VERSION_CONFLICT] = [w.to_dict() for w in conflicts[:MAX_WITNESSES_PER_KIND]]
    totals: dict[str, Any] = _with_phantom(counts)
    totals["latency_ms"] = merged.percentiles_ms()
    sources: dict[str, int] = {}
    for r in reports:
        for name, n in r.sources.items():
            sources[name] = sources.get(name, 0) + n
    totals["latency_sources"] = dict(sorted(sources.items()))
    totals["received"] = sum(r.received for r in reports)
    totals["received_by_op"] = by_op
    if chains is not None:
        totals["chain_order"] = chains[1]  # where the chain check's commit order came from
    deletes_without = sum(r.deletes_without_latency for r in reports)
    notes = [
        "late: notifications received in a listener's last drain window; they count as delivered "
        "and their latency is in latency_ms",
        "latency_ms covers inserts and updates (receive time - the row's sent_at), deletes (receive time - "
        "the server's commit time where the row's version is one, as 0.4's _seq; else the writer's send time "
        "of the delete from its ledger's time checkpoints, a sample of one delete per 50 ms per writer) "
        "and filter-leaves (the writer's send time of the move); "
        "latency_sources counts the samples of each source; resume snapshot rows, and changes of writes "
        "sent before a reconnect was requested (replays), are excluded",
        f"phantom: the sum of {', '.join(str(a) for a in Anomaly if a in PHANTOM)}",
    ]
    if deletes_without:
        notes.append(
            f"{deletes_without} delete notifications carried no commit time and had no send time in the "
            "writers' ledgers: they are not in latency_ms"
        )
    return {
        "totals": totals,
        "listeners": [r.to_dict() for r in reports],
        "witnesses": [w for kind in sorted(witnesses) for w in witnesses[kind]],
        "timeline": [{"t": t, "kind": str(kind), "count": n} for (t, kind), n in sorted(timeline.items())],
        "connections": connections(summaries),
        "aggregation": aggregation or {},
        "notes": notes,
    }
