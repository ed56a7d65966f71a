"""Delivery criteria (SC-051..SC-055, SC-057): what the listeners received, from delivery.json and target.json."""

from __future__ import annotations

from typing import Any

from harness.delivery.anomalies import LEGACY_PHANTOM, PHANTOM, Anomaly, phantom_total
from reports.criteria import Criteria
from reports.measures import (
    aggregation_gap,
    attempted,
    count,
    delivery_totals,
    target_record,
    witnesses,
    write_counts,
)
from reports.network import Network, network
from reports.runfolder import RunFolder
from reports.verdict import FAIL, PASS, Finding, Unsupported, inconclusive, not_applicable

SC051_KINDS: dict[str, frozenset[Anomaly]] = {
    str(Anomaly.LOST): frozenset({Anomaly.LOST}),
    str(Anomaly.DUPLICATE): frozenset({Anomaly.DUPLICATE}),
    str(Anomaly.OUT_OF_ORDER): frozenset({Anomaly.OUT_OF_ORDER}),
    LEGACY_PHANTOM: PHANTOM,
    str(Anomaly.ENDED_EARLY): frozenset({Anomaly.ENDED_EARLY}),
}
"""SC-051's counted keys (each with a ``max_<key>`` limit) and the anomaly kinds each one sums."""


def _sc051_value(totals: dict[str, Any], key: str) -> int:
    return phantom_total(totals) if key == LEGACY_PHANTOM else count(totals, key)


def delivery_complete(folder: RunFolder, cfg: dict[str, Any], criteria: Criteria) -> Finding:
    """SC-051: no lost, duplicate, out-of-order or phantom delivery, no listener that ended early (limits
    in the criteria file); the phantom family's causes are shown one by one."""
    totals = delivery_totals(folder)
    values = {k: _sc051_value(totals, k) for k in SC051_KINDS}
    limits = {k: cfg[f"max_{k}"] for k in SC051_KINDS}
    expected, delivered = count(totals, "expected"), count(totals, "delivered")
    share = f" ({100.0 * min(delivered, expected) / expected:.2f}%)" if expected else ""
    evidence = f"expected {expected}, delivered {delivered}{share}, may {count(totals, 'may')}; " + ", ".join(
        f"{k.replace('_', ' ')} {v}" for k, v in values.items()
    )
    causes = [f"{a.value.replace('_', ' ')} {count(totals, a)}" for a in Anomaly if a in PHANTOM and count(totals, a)]
    if causes:
        evidence += f" ({', '.join(causes)})"
    over = [k for k in SC051_KINDS if values[k] > limits[k]]
    if over:
        kinds = frozenset().union(*(SC051_KINDS[k] for k in over))
        return Finding(FAIL, values, limits, evidence + witnesses(folder, kinds))
    gap = aggregation_gap(folder)
    if gap:
        return inconclusive(f"{gap}; {evidence}", values, limits)
    if expected == 0:
        return inconclusive(f"no listener expected any write, nothing shows delivery works; {evidence}", values, limits)
    scenario_expected = folder.profile.get("expected")
    if cfg["require_scenario_expected"] and isinstance(scenario_expected, int) and expected < scenario_expected:
        return inconclusive(
            f"only {expected} of the scenario's {scenario_expected} changes were acknowledged, so the rest "
            f"were never checked; {evidence}",
            values,
            limits,
        )
    return Finding(PASS, values, limits, evidence)


def _values_check(
    folder: RunFolder, cfg: dict[str, Any], op: str, error_kinds: tuple[Anomaly, ...], what: str
) -> Finding:
    """SC-052/SC-053: no value errors, and some acknowledged ``op`` actually reached a listener to be checked."""
    totals = delivery_totals(folder)
    error_keys = tuple(str(kind) for kind in error_kinds)
    errors = {key: count(totals, key) for key in error_keys}
    limits = {key: cfg[f"max_{key}"] for key in error_keys}
    value, limit = (errors, limits) if len(error_keys) > 1 else (errors[error_keys[0]], limits[error_keys[0]])
    shown = ", ".join(f"{key.replace('_', ' ')} {n}" for key, n in errors.items())
    over = [key for key in error_keys if errors[key] > limits[key]]
    if over:
        return Finding(
            FAIL,
            value,
            limit,
            f"{shown} (allowed {', '.join(str(limits[k]) for k in over)})" + witnesses(folder, error_kinds),
        )
    writes = write_counts(folder)
    tried, acked = attempted(writes, op), writes[("ok", op)]
    if tried == 0:
        return not_applicable(f"the scenario wrote no {op}s (writes.json)", limit)
    if acked == 0:
        return inconclusive(
            f"none of the {tried} {op}(s) written was acknowledged, so none could be checked", value, limit
        )
    gap = aggregation_gap(folder)
    if gap:
        return inconclusive(f"{gap}; {shown}", value, limit)
    by_op = totals.get("received_by_op")
    if not isinstance(by_op, dict) or not isinstance(by_op.get(op), int):
        raise Unsupported(
            f"delivery.json totals carry no received_by_op, so it is unknown whether any {op} was checked"
        )
    if by_op[op] == 0:
        return inconclusive(
            f"{acked} {op}(s) acknowledged but no {op} notification reached a listener, so no {what} was checked",
            value,
            limit,
        )
    return Finding(
        PASS, value, limit, f"{acked} {op}(s) acknowledged, {by_op[op]} {op} notification(s) checked; {shown}"
    )


def update_values(folder: RunFolder, cfg: dict[str, Any], criteria: Criteria) -> Finding:
    """SC-052: updates delivered with the right old values, and every row version with its own content."""
    return _values_check(folder, cfg, "update", (Anomaly.OLD_VALUE, Anomaly.NEW_VALUE), "old or new value")


def delete_flags(folder: RunFolder, cfg: dict[str, Any], criteria: Criteria) -> Finding:
    """SC-053: deletes delivered with ``_deleted`` set and the deleted row's last version as tombstone."""
    return _values_check(folder, cfg, "delete", (Anomaly.DELETE_FLAG, Anomaly.DELETE_VALUE), "delete flag or row")


CHAIN_KINDS = (Anomaly.CHAIN_BREAK, Anomaly.COMMIT_ORDER, Anomaly.MISSING_LINK, Anomaly.VERSION_CONFLICT)


def chain_consistent(folder: RunFolder, cfg: dict[str, Any], criteria: Criteria) -> Finding:
    """CHAIN-1: under contention, each shared row's updates form one chain in commit order at every listener."""
    totals = delivery_totals(folder)
    source = totals.get("chain_order")
    if not isinstance(source, str):
        return not_applicable("no writer bumped a shared row, so there is no chain to check (delivery.json)")
    values = {str(k): count(totals, k) for k in CHAIN_KINDS}
    limits = {str(k): cfg[f"max_{k}"] for k in CHAIN_KINDS}
    shown = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in values.items())
    by_op = totals.get("received_by_op")
    updates = by_op.get("update", 0) if isinstance(by_op, dict) else 0
    evidence = f"{updates} update notification(s) checked against the {source.replace('_', ' ')} order; {shown}"
    over = [k for k in values if values[k] > limits[k]]
    if over:
        return Finding(FAIL, values, limits, evidence + witnesses(folder, frozenset(CHAIN_KINDS)))
    if not updates:
        return inconclusive(f"no update notification reached a listener; {evidence}", values, limits)
    gap = aggregation_gap(folder)
    if gap:
        return inconclusive(f"{gap}; {evidence}", values, limits)
    return Finding(PASS, values, limits, evidence)


def delivery_latency(folder: RunFolder, cfg: dict[str, Any], criteria: Criteria) -> Finding:
    """SC-054: the configured delivery latency percentile within the limit."""
    totals = delivery_totals(folder)
    latency = totals.get("latency_ms")
    key, limit = str(cfg["percentile"]), float(cfg["max_latency_ms"])
    if not isinstance(latency, dict) or not isinstance(latency.get(key), int | float):
        raise Unsupported(f"delivery.json totals carry no latency_ms.{key}")
    n = latency.get("count")
    if isinstance(n, int) and n == 0:
        raise Unsupported("no notification latency was measured (count 0)")
    value = float(latency[key])
    parts = ", ".join(
        f"{k} {float(latency[k]):.1f}" for k in ("p50", "p95", "p99", "max") if isinstance(latency.get(k), int | float)
    )
    evidence = f"{key} {value:.1f} ms (limit {limit:g}); {parts} ms over {n if n is not None else '?'} notifications"
    sources = _latency_sources(totals)
    if sources:
        evidence += f" ({sources})"
    negative = count(latency, "negative")
    if negative:
        evidence += f"; {negative} arrived before they were sent by the clocks (recorded as 0 ms)"
    net = network(folder)
    if net is not None:  # the network's delay is not the target's: judge what is left of the latency
        through = _network_latency(folder, net, key, value, limit, evidence)
        if through.verdict != PASS:
            return through
        evidence = through.evidence
    elif value >= limit:
        return Finding(FAIL, value, limit, evidence)
    gap = aggregation_gap(folder)
    if gap:
        return inconclusive(f"{gap}; {evidence}", value, limit)
    if negative and isinstance(n, int) and negative > cfg["max_negative_fraction"] * n:
        return inconclusive(
            f"sender and receiver clocks disagree, so latency is not measured; {evidence}", value, limit
        )
    small = _below_concurrent_load(folder, cfg, n)
    if small and not sizes_waived(folder):
        return inconclusive(f"{small}; {evidence}", value, limit)
    return Finding(PASS, value, limit, f"{evidence}; {small} {SIZES_WAIVED}" if small else evidence)


SIZES_WAIVED = "but the scenario waives the size minimums (size_minimums = false: it proves its point at its own size)"


def sizes_waived(folder: RunFolder) -> bool:
    """Whether the run's scenario waives the specification's size minimums (run.json ``profile.size_minimums``).

    The nemesis scenarios do: each proves an attribution (what the network did is not the target's) at a
    fixed size far below the specification's 1,000 samples or 100,000 notifications, in either profile.
    """
    return folder.profile.get("size_minimums") is False


LATENCY_SOURCES = {
    "sent_at": "from the row's client send time",
    "commit_time": "deletes from the server's commit time",
    "writer_send_time": "deletes and filter-leaves from the writers' send times",
}


def _latency_sources(totals: dict[str, Any]) -> str:
    """Where the latency samples came from (delivery.json ``latency_sources``), as evidence text; '' if not said."""
    sources = totals.get("latency_sources")
    if not isinstance(sources, dict):
        return ""
    return ", ".join(
        f"{n:,} {LATENCY_SOURCES.get(str(k), str(k))}"
        for k, n in sources.items()
        if isinstance(n, int) and not isinstance(n, bool) and n
    )


def _below_concurrent_load(folder: RunFolder, cfg: dict[str, Any], samples: object) -> str | None:
    """Why a passing SC-054 does not show latency "under concurrent load": too few latency samples or
    writers (``min_latency_samples``, ``min_writers``), or None."""
    need_samples, need_writers = int(cfg["min_latency_samples"]), int(cfg["min_writers"])
    if not isinstance(samples, int):
        return "delivery.json does not say how many latency samples the percentile rests on"
    if samples < need_samples:
        return f"only {samples:,} latency samples (the criterion needs {need_samples:,})"
    writers = (folder.writes or {}).get("writers")
    if not isinstance(writers, dict):
        return "writes.json names no writers, so the load is not known to be concurrent"
    active = sum(1 for w in writers.values() if isinstance(w, dict) and _acknowledged(w.get("ok")) > 0)
    if active < need_writers:
        return f"only {active} writer(s) wrote, not concurrent load (the criterion needs {need_writers})"
    return None


def _acknowledged(ok: object) -> int:
    """Acknowledged writes in one writer's ``ok`` counts (by kind)."""
    if not isinstance(ok, dict):
        return 0
    return sum(v for v in ok.values() if isinstance(v, int) and not isinstance(v, bool))


def _network_latency(folder: RunFolder, net: Network, key: str, value: float, limit: float, evidence: str) -> Finding:
    """SC-054 through a nemesis: the target's share of the latency is ``value`` less what the proxy added.

    Each notification's network delay lies between ``least`` (what windows covering the whole load
    added to every chunk) and ``most`` (the longest the proxy held any chunk on the way), so the
    target's percentile lies between ``value - most`` and ``value - least``: it passes when even the
    upper end is within the limit, fails when even the lower end is over, and is inconclusive between.
    """
    rows = (folder.delivery or {}).get("listeners")
    listeners = {str(r["listener"]) for r in rows if isinstance(r, dict) and "listener" in r} if rows else set()
    span = folder.load_window()
    phases = folder.phases
    end = max((p.end for p in phases), default=span[1]) if span else None
    least = net.least_added_ms(listeners, span[0], end) if span and end is not None else 0.0
    most = max(net.held_ms(listeners), least)
    faults = "; ".join(w.label(folder.t0) for w in net.delaying) or "no delaying fault"
    if net.loop_lag_ms:
        faults += f"; the proxy's loop up to {net.loop_lag_ms:.1f} ms late"
    share = (
        f"the network (nemesis: {faults}) added {least:.1f} to {most:.1f} ms to each notification, "
        f"so without the network the {key} (target and clients) is {max(0.0, value - most):.1f} to "
        f"{max(0.0, value - least):.1f} ms"
    )
    if value - least <= limit:
        return Finding(PASS, value, limit, f"{evidence}; {share}")
    if value - most > limit:
        return Finding(FAIL, value, limit, f"{evidence}; even so, {share}", floor=value - most)
    return inconclusive(
        f"the latency's share outside the network cannot be told apart from the network's: {share}; {evidence}",
        value,
        limit,
    )


def _received_by_subscription(target: dict[str, Any]) -> tuple[dict[str, int], dict[str, str]]:
    """From target.json ``listeners``: subscription id -> notifications received, and each listener's
    current subscription id (listener id -> subscription id)."""
    received: dict[str, int] = {}
    current: dict[str, str] = {}
    listeners = target.get("listeners")
    for lid, record in listeners.items() if isinstance(listeners, dict) else ():
        if not isinstance(record, dict):
            continue
        subs = record.get("subscriptions")
        for sid, n in subs.items() if isinstance(subs, dict) else ():
            if isinstance(n, int):
                received[str(sid)] = n
        if record.get("subscription_id") is not None:
            current[str(lid)] = str(record["subscription_id"])
    return received, current


def changes_counter(folder: RunFolder, cfg: dict[str, Any], criteria: Criteria) -> Finding:
    """SC-055: the target's per-subscription ``changes`` equals what the listener received on it."""
    features = folder.features
    if features is None:
        raise Unsupported("run.json does not list the target's features")
    if "changes_counter" not in features:
        return not_applicable(f"the target has no changes counter (features: {', '.join(sorted(features)) or 'none'})")
    target = target_record(folder)
    live_raw = target.get("live")
    if not isinstance(live_raw, dict) or not live_raw:
        why = f" ({target['error']})" if target.get("error") else ""
        raise Unsupported(f"target.json records no live subscription counters{why}")
    live = {str(k): v for k, v in live_raw.items() if isinstance(v, int) and not isinstance(v, bool)}
    received, current = _received_by_subscription(target)
    if not received:
        raise Unsupported("target.json records no per-subscription receive counts for the listeners")
    matched = {sid: (live[sid], n) for sid, n in received.items() if sid in live}
    gone = sorted(f"{lid} ({sid})" for lid, sid in current.items() if sid not in live)
    note = f"; not in system.live at the end of load: {', '.join(gone[:5])}" if gone else ""
    if not matched:
        raise Unsupported(f"no listener subscription appears in system.live ({len(live)} live){note}")
    wrong = {sid: pair for sid, pair in matched.items() if pair[0] != pair[1]}
    server_total = sum(p[0] for p in matched.values())
    client_total = sum(p[1] for p in matched.values())
    value = {"server_changes": server_total, "received": client_total}
    if wrong:
        shown = "; ".join(f"{sid}: server {s}, received {r}" for sid, (s, r) in list(wrong.items())[:3])
        return Finding(FAIL, value, "equal", f"{len(wrong)} of {len(matched)} subscription(s) differ: {shown}{note}")
    gap = aggregation_gap(folder)
    reasons = [gap] if gap else []
    if gone:
        reasons.append(
            f"{len(gone)} listener subscription(s) not in system.live at the end of load: " + ", ".join(gone[:5])
        )
    unread = sorted(f"{lid} ({sid})" for lid, sid in current.items() if sid in live and sid not in received)
    if unread:
        reasons.append(f"no receive count for {len(unread)} listener subscription(s): {', '.join(unread[:5])}")
    evidence = f"{len(matched)} subscription(s) match, {server_total} changes in all"
    if reasons:
        return inconclusive(f"not every listener can be checked: {'; '.join(reasons)}; {evidence}", value, "equal")
    return Finding(PASS, value, "equal", evidence)


def websocket_uptime(folder: RunFolder, cfg: dict[str, Any], criteria: Criteria) -> Finding:
    """SC-057: listener connections up at least ``min_uptime_pct`` of the time, no unexpected disconnects."""
    delivery_totals(folder)
    conns = (folder.delivery or {}).get("connections")
    if not isinstance(conns, dict):
        raise Unsupported("delivery.json has no connections record")
    up, total = conns.get("listener_seconds_up"), conns.get("listener_seconds_total")
    if not isinstance(up, int | float) or not isinstance(total, int | float) or total <= 0:
        raise Unsupported("delivery.json connections carry no listener time")
    since = "creation"
    if cfg["from_ready"]:
        # The checker's own figure leaves planned time away (scripted reconnects) out.
        ready_total = conns.get("listener_seconds_since_ready")
        if isinstance(ready_total, int | float) and ready_total > 0:
            total, since = ready_total, "first ready"
    drops = count(conns, "unexpected_disconnects")
    excused, excused_s, network_note = _network_disconnects(folder, conns, cfg) if drops else (0, 0.0, "")
    drops -= excused
    total = max(float(total) - excused_s, 1e-9)
    uptime = min(100.0, 100.0 * float(up) / total)
    value = {"uptime_pct": round(uptime, 4), "unexpected_disconnects": drops}
    if excused:
        value["network_disconnects"] = excused
    limits = {
        "min_uptime_pct": cfg["min_uptime_pct"],
        "max_unexpected_disconnects": cfg["max_unexpected_disconnects"],
    }
    evidence = (
        f"listeners up {float(up):.1f} of {float(total):.1f} s since {since} ({uptime:.3f}%), "
        f"{drops} unexpected disconnect(s){network_note}"
    )
    never = count(conns, "listeners_never_ready")
    if never:
        evidence += f", {never} listener(s) never subscribed"
    shown = [w for w in conns.get("disconnect_witnesses") or [] if isinstance(w, dict)][:3] if drops else []
    if shown:
        evidence += "; " + " | ".join(", ".join(f"{k} {v}" for k, v in w.items()) for w in shown)
    ok = uptime >= float(cfg["min_uptime_pct"]) and drops <= int(cfg["max_unexpected_disconnects"])
    if not ok:
        return Finding(FAIL, value, limits, evidence)
    gap = aggregation_gap(folder)
    if gap or never:
        why = gap or "the uptime of a listener that never subscribed cannot be measured"
        return inconclusive(f"{why}; {evidence}", value, limits)
    delivered, need = count(delivery_totals(folder), "delivered"), int(cfg["min_notifications"])
    if delivered < need:
        few = f"only {delivered:,} notifications delivered (the criterion needs {need:,})"
        if not sizes_waived(folder):
            return inconclusive(f"{few}; {evidence}", value, limits)
        evidence += f"; {few} {SIZES_WAIVED}"
    return Finding(PASS, value, limits, evidence)


def _network_disconnects(folder: RunFolder, conns: dict[str, Any], cfg: dict[str, Any]) -> tuple[int, float, str]:
    """Disconnects a network fault caused and the listener recovered from: (count, seconds down, evidence).

    A disconnect is the network's when it happens in a disruptive nemesis window on the listener's
    route (or within ``network_grace_seconds`` after it: a cut is noticed when the window ends), and
    it is excused when the listener was back within ``recover_seconds`` of the window's end. One
    that stayed down longer remains unexpected: reconnecting after the network heals is the client's job.
    """
    net = network(folder)
    if net is None:
        return 0, 0.0, ""
    records = conns.get("disconnects")
    if not isinstance(records, list) or conns.get("disconnects_truncated"):
        raise Unsupported("delivery.json does not list every disconnect, so those the network caused cannot be told")
    grace, recover = float(cfg["network_grace_seconds"]), float(cfg["recover_seconds"])
    excused, down = 0, 0.0
    windows: dict[int, str] = {}
    stayed: list[str] = []
    for d in records:
        if not isinstance(d, dict) or not isinstance(d.get("down_at"), int | float):
            continue
        w = net.disrupting(str(d.get("listener")), float(d["down_at"]), grace)
        if w is None:
            continue
        up_at = d.get("up_at")
        if isinstance(up_at, int | float) and up_at <= w.end + recover:
            excused += 1
            down += float(up_at) - float(d["down_at"])
            windows[w.id] = w.label(folder.t0)
        else:
            back = "never came back" if not isinstance(up_at, int | float) else f"came back {up_at - w.end:.1f} s after"
            stayed.append(f"listener {d.get('listener')} {back} the end of {w.label(folder.t0)}")
    note = ""
    if excused:
        note += f"; {excused} disconnect(s) caused by network faults and recovered within {recover:g} s excused " \
                f"({'; '.join(windows.values())})"  # fmt: skip
    if stayed:
        note += f"; not recovered within {recover:g} s: {'; '.join(stayed[:3])}"
    return excused, down, note
