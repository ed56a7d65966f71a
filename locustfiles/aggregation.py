"""Aggregation on the coordinator: the live view from tracker deltas, and the run folder's end files.

Workers send compact tracker deltas on Locust's report cycle (``LiveView``); at the end
the coordinator runs the checker over every final summary and writes ``delivery.json``,
``writes.json`` and ``target.json`` into the run folder.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.delivery.checker import check
from harness.delivery.contention import Commit
from harness.delivery.latency import LatencyHistogram
from harness.delivery.ledger import WriterLedger, writes_summary
from harness.plan import Plan
from harness.runfolder import DELIVERY, TARGET, WRITES, write_json_atomic
from locustfiles.messages import ListenerFinal

log = logging.getLogger("lqharness")


class _Counts:
    """One listener's running counters and latency histogram."""

    def __init__(self) -> None:
        self.counters: dict[str, int] = {}
        self.latency = LatencyHistogram()

    def add(self, delta: dict[str, Any]) -> None:
        """Fold in one delta; its latency is HDR-encoded (a worker's report) or a histogram (this process's)."""
        for key, value in delta.items():
            if key == "latency":
                self.latency.merge(value if isinstance(value, LatencyHistogram) else LatencyHistogram.decode(value))
            else:
                self.counters[key] = self.counters.get(key, 0) + int(value)


class LiveView:
    """Running counts per listener while the run goes (received, anomalies, latency), fed by tracker deltas.

    Deltas arrive keyed by listener id (``UserLink.delta``), from workers on Locust's report cycle or
    from this process's users; the Delivery tab and ``delivery.json`` ``aggregation.live_view`` read it.
    """

    def __init__(self) -> None:
        self._listeners: dict[str, _Counts] = {}

    def add(self, deltas: dict[str, dict[str, Any]]) -> None:
        """Add one batch of per-listener deltas."""
        for listener_id, delta in deltas.items():
            self._listeners.setdefault(listener_id, _Counts()).add(delta)

    def listeners(self) -> dict[str, dict[str, Any]]:
        """Each listener's counts so far, with its latency percentiles (ms), by listener id."""
        return {
            lid: {**c.counters, "latency_ms": c.latency.percentiles_ms()} for lid, c in sorted(self._listeners.items())
        }

    def totals(self) -> dict[str, Any]:
        """The counts of every listener summed, with the merged latency percentiles (ms)."""
        total = _Counts()
        for counts in self._listeners.values():
            total.add({**counts.counters, "latency": counts.latency})
        return {**total.counters, "latency_ms": total.latency.percentiles_ms()}


def write_outputs(
    plan: Plan,
    ledgers: list[dict[str, Any]],
    listener_finals: list[ListenerFinal],
    target_side: dict[str, Any],
    aggregation: dict[str, Any],
    errors: list[str],
    features: Iterable[str],
) -> dict[str, Any]:
    """Run the checker and write ``delivery.json``, ``writes.json``, ``target.json``; return the delivery.

    ``features`` are the target's: they say what its resume promises (docs/excuse-rule.md).
    """
    commits = target_side.get("commits")
    commit_log = None
    if commits is not None:
        commit_log = [Commit(key, version, (w, s), position) for position, (key, version, w, s) in enumerate(commits)]
    delivery = check(
        ledgers,
        [final.summary for final in listener_finals],
        drain_ns=int(plan.drain_seconds * 1e9),
        plan_writers=[w.writer_id for w in plan.writers] + list(aggregation.get("joined_writers") or ()),
        aggregation=aggregation,
        features=features,
        commit_log=commit_log,
    )
    delivery["error"] = "; ".join(errors) if errors else None
    target: dict[str, Any] = {
        "live": target_side.get("live"),
        "stats": target_side.get("stats"),
        "jobs": target_side.get("jobs") or {},
        "released": target_side.get("released"),
        **{k: target_side[k] for k in ("churn_error", "flush") if k in target_side},
        "listeners": {
            final.listener_id: {
                "subscription_id": final.subscription_id,
                "subscriptions": final.subscriptions,
                "received": final.summary["received"],
                "snapshot_rows": final.summary["by_op"].get("snapshot", 0),
            }
            for final in sorted(listener_finals, key=lambda f: f.listener_id)
        },
        "error": target_side.get("error"),
        **({"commit_log_updates": len(commits)} if commits is not None else {}),
    }
    run_dir = plan.extra.run_dir
    if not run_dir:
        log.warning("plan has no run_dir: delivery results are not written")
        return delivery
    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / DELIVERY, delivery)
    write_json_atomic(folder / WRITES, writes_summary([WriterLedger.from_dict(d) for d in ledgers]))
    write_json_atomic(folder / TARGET, target)
    return delivery
