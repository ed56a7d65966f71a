"""The delivery checker: writers' ledgers × listeners' summaries → ``delivery.json``.

Pure functions over plain data. For each listener the expected ("must") set is every
write acked ok by a writer it should see (its conversation, or all when unfiltered),
invoked after it was ready and acked before its end minus the drain window. Writes that
race a boundary, fall in a gap without resume, or are indeterminate are "may": they can
arrive or not without an anomaly. In a gap with resume (KalamDB sends the rows changed
since the last seen ``_seq``, current versions only), a write stays "must" unless its row
version was replaced by an operation started before the listener came back; deletes there
are "may". Lost = must − delivered; phantom = delivered writes the ledger has as failed or
never made (indeterminate ones never are), and anything delivered from a writer whose
conversation the listener's filter excludes.

A disconnect gap starts ``slack`` before the disconnect (notifications still in flight
then may be replaced or deleted before the resume): ``gap_slack_ns`` or twice the
listener's p99 latency, whichever is more.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from harness.delivery.identity import row_id
from harness.delivery.latency import LatencyHistogram
from harness.delivery.ledger import INF, TimeIndex, WriterLedger
from harness.delivery.rangeset import RangeSet
from harness.delivery.tracker import ANOMALIES, MAX_WITNESSES

COUNTERS = ("expected", "may", "delivered", "lost", *ANOMALIES, "late")
MAX_WITNESSES_PER_KIND = 10
DEFAULT_GAP_SLACK_NS = 200_000_000  # at least; twice the listener's p99 latency when that is more


@dataclass(frozen=True, slots=True)
class Windows:
    """A listener's time windows.

    ``up``: where acked writes must arrive. ``soft``: resumed disconnect gaps (from
    ``slack`` before the disconnect to the resume), where a write whose row version was
    later replaced, and any delete, may be missing (a resume sends current rows only).
    ``life``: ready to end, where anything may arrive.
    """

    up: tuple[tuple[int, int], ...]
    soft: tuple[tuple[int, int], ...]
    life: tuple[int, int] | None


def listener_windows(summary: dict[str, Any], drain_ns: int, gap_slack_ns: int) -> Windows:
    """Up intervals from ready to end − drain, cut by gaps without resume, softened by resumed ones."""
    ready, end = summary.get("ready_ns"), summary.get("end_ns")
    if ready is None or end is None:
        return Windows((), (), None)
    up: list[tuple[int, int]] = []
    soft: list[tuple[int, int]] = []
    start: int | None = ready
    for gap in sorted(summary.get("disconnects", []), key=lambda d: d["down_ns"]):
        if start is None:
            break
        if gap.get("resumed") and gap.get("up_ns") is not None:
            soft.append((gap["down_ns"] - gap_slack_ns, gap["up_ns"]))
            continue
        up.append((start, gap["down_ns"] - gap_slack_ns))
        start = gap.get("up_ns")
    if start is not None:
        up.append((start, end - drain_ns))
    return Windows(tuple((a, b) for a, b in up if a <= b), tuple(soft), (ready, end))


def _touching(times: TimeIndex, start: int, stop: int) -> RangeSet:
    """Keys whose operation may overlap ``[start, stop]``."""
    lo = times.first_possibly_acked_at_or_after(start)
    hi = times.last_possibly_invoked_at_or_before(stop)
    return RangeSet([(lo, hi)] if lo <= hi and lo < INF else [])


def _classify(
    times: TimeIndex,
    windows: Windows,
    ok: RangeSet,
    possible: RangeSet,
    replaced: Callable[[int], RangeSet] | None,
) -> tuple[RangeSet, RangeSet]:
    """(must, may) keys of one writer stream for one listener. Inside a soft window, keys that
    ``replaced(resume_ns)`` names (every key when it is None) are excused."""
    must = RangeSet()
    for start, stop in windows.up:
        lo, hi = times.first_invoked_at_or_after(start), times.last_acked_at_or_before(stop)
        if lo <= hi:
            must.add_range(lo, hi)
    must = must.intersection(ok)
    for start, stop in windows.soft:
        gap = _touching(times, start, stop)
        must = must.difference(gap if replaced is None else gap.intersection(replaced(stop)))
    if windows.life is None:
        return must, RangeSet()
    life = _touching(times, *windows.life)
    return must, life.intersection(possible).difference(must)


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


def check_listener(
    summary: dict[str, Any],
    ledgers: dict[int, WriterLedger],
    plan_writers: set[int],
    drain_ns: int,
    gap_slack_ns: int = DEFAULT_GAP_SLACK_NS,
) -> dict[str, Any]:
    """Counters, witnesses and timeline of one listener (``ledgers``: the writers that arrived)."""
    lid = summary["listener_id"]
    cid = summary.get("conversation_id")
    hist = LatencyHistogram.decode(summary.get("latency", "0:"))
    p99_ms = hist.percentiles_ms()["p99"] or 0
    slack_ns = max(gap_slack_ns, int(2 * p99_ms * 1_000_000))
    windows = listener_windows(summary, drain_ns, slack_ns)
    anomalies = summary.get("anomalies", {})
    counts = {k: 0 for k in COUNTERS}
    for kind in ANOMALIES:
        counts[kind] = int(anomalies.get(kind, 0))
    counts["late"] = int(summary.get("late", 0))
    witnesses: list[dict[str, Any]] = list(summary.get("witnesses", []))
    timeline: dict[tuple[int, str], int] = {}
    for kind, per_second in summary.get("timeline", {}).items():
        for second, n in per_second.items():
            timeline[(int(second), kind)] = timeline.get((int(second), kind), 0) + n
    delivered_by_writer = {int(w): v for w, v in summary.get("writers", {}).items()}
    watched = [led for led in ledgers.values() if cid is None or led.conversation_id == cid]
    for wid in sorted(set(delivered_by_writer) | {led.writer_id for led in watched}):
        got = delivered_by_writer.get(wid, {})
        got_w = RangeSet.from_list(got.get("delivered", []))
        got_d = RangeSet.from_list(got.get("deleted", []))
        counts["delivered"] += len(got_w) + len(got_d)
        led = ledgers.get(wid)
        if led is None and wid not in plan_writers:
            foreign = f"writer {wid} is not in the plan"
        elif led is not None and cid is not None and led.conversation_id != cid:
            foreign = f"writer {wid} writes conversation {led.conversation_id}, outside this listener's filter {cid}"
        else:
            foreign = None
        if foreign is not None:
            counts["phantom"] += len(got_w) + len(got_d)
            witnesses.append(_witness("phantom", lid, wid, got_w.first(1), got_d.first(1), foreign))
            continue
        if led is None:  # its ledger never arrived: neither expected nor phantom
            continue
        for keys, got_keys, times, replaced, is_delete in (
            (led.written, got_w, led.times, led.superseded_by, False),
            (led.deleted, got_d, led.delete_times, None, True),
        ):
            possible = keys("ok", "indeterminate")
            must, may = _classify(times, windows, keys("ok"), possible, replaced)
            lost = must.difference(got_keys)
            phantom = got_keys.difference(possible)
            counts["expected"] += len(must)
            counts["may"] += len(may)
            counts["lost"] += len(lost)
            counts["phantom"] += len(phantom)
            what = "delete of row" if is_delete else "wseq"
            for key in lost.first(MAX_WITNESSES):
                ack = _first_ack_ns(times, key)
                witnesses.append(
                    _witness(
                        "lost",
                        lid,
                        wid,
                        [] if is_delete else [key],
                        [key] if is_delete else [],
                        f"{what} {key} acked ok (about {_secs(ack)}) and never delivered",
                    )
                )
            for key in phantom.first(MAX_WITNESSES):
                why = "failed" if key in keys("failed") else "never made"
                witnesses.append(
                    _witness(
                        "phantom",
                        lid,
                        wid,
                        [] if is_delete else [key],
                        [key] if is_delete else [],
                        f"{what} {key} delivered but the write {why}",
                    )
                )
            for second, n in _per_second(times, lost).items():
                timeline[(second, "lost")] = timeline.get((second, "lost"), 0) + n
    return {
        "listener": lid,
        "conversation_id": cid,
        **counts,
        "received": int(summary.get("received", 0)),
        "received_by_op": {op: int(n) for op, n in summary.get("by_op", {}).items()},
        "latency_ms": hist.percentiles_ms(),
        "deletes_without_latency": int(summary.get("deletes_without_latency", 0)),
        "gap_slack_ms": slack_ns / 1e6 if summary.get("disconnects") else None,
        "ready_at": _secs(summary.get("ready_ns")),
        "end_at": _secs(summary.get("end_ns")),
        "_histogram": hist,
        "_witnesses": witnesses,
        "_timeline": timeline,
    }


def _witness(kind: str, lid: str, wid: int, wseqs: list[int], rows: list[int], detail: str) -> dict[str, Any]:
    """A witness of something that was not received as it should be (so it has no receive time)."""
    return {
        "kind": kind,
        "listener": lid,
        "writer": wid,
        "wseq": wseqs[0] if wseqs else None,
        "row_id": row_id(wid, rows[0]) if rows else None,
        "received_at": None,
        "detail": detail,
    }


def _secs(ns: int | None) -> float | None:
    return None if ns is None else ns / 1e9


def connections(summaries: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Listener seconds connected vs meant to be connected, and unexpected disconnects with witnesses.

    Planned time away (a scenario's reconnect) counts in neither; unexpected gaps count as down.
    ``listener_seconds_since_ready`` is the same total counted from each listener's ready time;
    listeners that never became ready are counted in ``listeners_never_ready`` instead.
    """
    up = total = planned_total = since_ready = 0.0
    unexpected = never_ready = 0
    witnesses: list[dict[str, Any]] = []
    for s in summaries:
        created, ready, end = s.get("created_ns"), s.get("ready_ns"), s.get("end_ns")
        if created is None or end is None:
            continue
        gaps = s.get("disconnects", [])
        planned = sum((d["up_ns"] or end) - d["down_ns"] for d in gaps if d.get("expected"))
        down = sum((d["up_ns"] or end) - d["down_ns"] for d in gaps if not d.get("expected"))
        total += (end - created - planned) / 1e9
        planned_total += planned / 1e9
        if ready is not None:
            up += max(0, end - ready - planned - down) / 1e9
            since_ready += max(0, end - ready - planned) / 1e9
        else:
            never_ready += 1
        for d in gaps:
            if d.get("expected"):
                continue
            unexpected += 1
            if len(witnesses) < MAX_WITNESSES_PER_KIND:
                witnesses.append(
                    {
                        "listener": s["listener_id"],
                        "down_at": _secs(d["down_ns"]),
                        "up_at": _secs(d.get("up_ns")),
                        "reason": d.get("reason"),
                        "resumed": bool(d.get("resumed")),
                    }
                )
    return {
        "listener_seconds_up": round(up, 3),
        "listener_seconds_total": round(total, 3),
        "listener_seconds_since_ready": round(since_ready, 3),
        "planned_away_seconds": round(planned_total, 3),
        "unexpected_disconnects": unexpected,
        "listeners_never_ready": never_ready,
        "disconnect_witnesses": witnesses,
    }


def check(
    ledgers: Iterable[WriterLedger | dict[str, Any]],
    listener_summaries: Iterable[dict[str, Any]],
    drain_ns: int,
    plan_writers: Iterable[int] | None = None,
    gap_slack_ns: int = DEFAULT_GAP_SLACK_NS,
    aggregation: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``delivery.json`` structure (see docs/run-folder.md) for one run.

    ``plan_writers`` lists every writer id of the plan; a writer whose ledger is missing
    (its summary never arrived) is neither expected nor phantom. Defaults to the ledgers.
    """
    by_id = {}
    for led in ledgers:
        led = led if isinstance(led, WriterLedger) else WriterLedger.from_dict(led)
        by_id[led.writer_id] = led
    known = set(plan_writers) if plan_writers is not None else set(by_id)
    summaries = sorted(listener_summaries, key=lambda s: s["listener_id"])
    rows = [check_listener(s, by_id, known, drain_ns, gap_slack_ns) for s in summaries]
    totals: dict[str, Any] = {k: sum(r[k] for r in rows) for k in COUNTERS}
    merged = LatencyHistogram()
    witnesses: dict[str, list[dict[str, Any]]] = {}
    timeline: dict[tuple[int, str], int] = {}
    for r in rows:
        merged.merge(r.pop("_histogram"))
        for w in r.pop("_witnesses"):
            kept = witnesses.setdefault(w["kind"], [])
            if len(kept) < MAX_WITNESSES_PER_KIND:
                kept.append(w)
        for key, n in r.pop("_timeline").items():
            timeline[key] = timeline.get(key, 0) + n
    totals["latency_ms"] = merged.percentiles_ms()
    totals["received"] = sum(r["received"] for r in rows)
    by_op: dict[str, int] = dict.fromkeys(("insert", "update", "delete", "snapshot"), 0)
    for r in rows:
        for op, n in r["received_by_op"].items():
            by_op[op] = by_op.get(op, 0) + n
    totals["received_by_op"] = by_op
    deletes_without = sum(r["deletes_without_latency"] for r in rows)
    notes = [
        "late: notifications received in a listener's last drain window; they count as delivered "
        "and their latency is in latency_ms",
        "latency_ms covers inserts and updates (receive time - sent_at); resume snapshot rows are excluded",
    ]
    if deletes_without:
        notes.append(f"{deletes_without} delete notifications carried no commit time and are not in latency_ms")
    return {
        "totals": totals,
        "listeners": rows,
        "witnesses": [w for kind in sorted(witnesses) for w in witnesses[kind]],
        "timeline": [{"t": t, "kind": kind, "count": n} for (t, kind), n in sorted(timeline.items())],
        "connections": connections(summaries),
        "aggregation": aggregation or {},
        "notes": notes,
    }
