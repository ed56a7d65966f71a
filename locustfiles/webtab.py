"""The Delivery tab of Locust's web UI and the JSON endpoint behind it (``/delivery`` on the master's web app).

While the run goes, each listener's row shows what its tracker saw on arrival (received,
duplicates, out of order, value errors, latency), fed by the workers' deltas; expected, delivered
and lost need the writers' ledgers, so they appear when the run ended and the checker ran, and
then every number is the checker's, the same as ``delivery.json`` and ``verdict.json``. The load
generator's processes (CPU as Locust measures it, event-loop lag) get a row each, and a
saturated one a warning row at the top. The tab uses Locust's own extension points: the
``extended_tabs`` and ``extended_tables`` template arguments, and ``extended_stats`` added to the
``/stats/requests`` answer the UI polls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
from flask import Response, request
from locust.runners import MasterRunner

from locustfiles.coordinator import Coordinator
from locustfiles.loadgen import saturation

TAB_KEY = "delivery"
ENDPOINT = "/delivery"
VALUE_ERRORS = ("old_value_errors", "new_value_errors", "delete_flag_errors", "delete_value_errors")
COLUMNS = (
    ("name", "Listener"),
    ("expected", "Expected"),
    ("received", "Received"),
    ("delivered", "Delivered"),
    ("lost", "Lost"),
    ("duplicates", "Duplicated"),
    ("out_of_order", "Out of order"),
    ("value_errors", "Value errors"),
    ("p50_ms", "p50 ms"),
    ("p95_ms", "p95 ms"),
    ("p99_ms", "p99 ms"),
    ("note", "Note"),
)


def _row(name: str, counts: dict[str, Any], final: bool) -> dict[str, Any]:
    latency = counts.get("latency_ms") or {}
    return {
        "name": name,
        "expected": counts.get("expected", 0) if final else None,
        "received": counts.get("received", 0),
        "delivered": counts.get("delivered", 0) if final else None,
        "lost": counts.get("lost", 0) if final else None,
        "duplicates": counts.get("duplicates", 0),
        "out_of_order": counts.get("out_of_order", 0),
        "value_errors": sum(int(counts.get(k, 0) or 0) for k in VALUE_ERRORS),
        "p50_ms": latency.get("p50"),
        "p95_ms": latency.get("p95"),
        "p99_ms": latency.get("p99"),
        "note": "final" if final else "live",
    }


def _generator(coordinator: Coordinator) -> list[dict[str, Any]]:
    runner = coordinator.runner
    processes: list[dict[str, Any]] = [{"process": "master" if isinstance(runner, MasterRunner) else "local",
                  "cpu_percent": float(runner.current_cpu_usage), "lag_ms": coordinator.lag.recent_ms()}]  # fmt: skip
    if isinstance(runner, MasterRunner):
        for node_id, worker in sorted(runner.clients.items()):
            processes.append(
                {"process": f"worker {node_id}", "cpu_percent": float(worker.cpu_usage),
                 "lag_ms": coordinator.worker_lag_ms.get(node_id, 0.0)}
            )  # fmt: skip
    for proc in processes:
        proc["saturated"] = saturation(proc["cpu_percent"], proc["lag_ms"])
    return processes


def delivery_view(coordinator: Coordinator | None, verdict: dict[str, Any] | None) -> dict[str, Any]:
    """What the Delivery tab shows: per-listener and total rows, the generator's processes, the verdict."""
    if coordinator is None:
        return {"state": "waiting", "listeners": [], "total": None, "generator": [], "verdict": None, "clocks": {}}
    final = coordinator.delivery
    if final is not None:
        listeners = [_row(str(r["listener"]), r, True) for r in final["listeners"]]
        total = _row("total", final["totals"], True)
    else:
        listeners = [_row(lid, counts, False) for lid, counts in coordinator.live_view.listeners().items()]
        total = _row("total", coordinator.live_view.totals(), False)
    return {
        "state": "finished" if final is not None else "running",
        "listeners": listeners,
        "total": total,
        "generator": _generator(coordinator),
        "verdict": verdict,
        "clocks": coordinator.clocks,
    }


def table_rows(view: dict[str, Any]) -> list[dict[str, Any]]:
    """The tab's table: a warning row when a generator process looks saturated, listeners, total, generator."""
    rows: list[dict[str, Any]] = []
    blank = dict.fromkeys((key for key, _ in COLUMNS), None)
    for proc in view["generator"]:
        if proc["saturated"]:
            rows.append({**blank, "name": "WARNING", "note": f"load generator saturated: {proc['process']}: "
                         f"{proc['saturated']}; latency and throughput are not trustworthy"})  # fmt: skip
    if view["verdict"] is not None:
        rows.append({**blank, "name": "verdict", "note": f"{view['verdict']['verdict']} "
                     f"(exit code {view['verdict']['exit_code']}), {view['verdict']['run_dir']}"})  # fmt: skip
    rows.extend(view["listeners"])
    if view["total"] is not None:
        rows.append(view["total"])
    for proc in view["generator"]:
        rows.append({**blank, "name": proc["process"],
                     "note": f"CPU {proc['cpu_percent']:.0f}%, loop lag {proc['lag_ms']:.0f} ms"})  # fmt: skip
    return rows


def install(web_ui: Any, view: Callable[[], dict[str, Any]]) -> None:
    """Add the Delivery tab and ``/delivery`` to ``web_ui`` (Locust's ``WebUI``); ``view`` builds what they show."""
    web_ui.template_args["extended_tabs"] = [{"title": "Delivery", "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [
        {"key": TAB_KEY, "structure": [{"key": key, "title": title} for key, title in COLUMNS]}
    ]

    def endpoint() -> Response:
        return Response(orjson.dumps(view()), mimetype="application/json")

    web_ui.app.add_url_rule(ENDPOINT, "lqh_delivery", web_ui.auth_required_if_enabled(endpoint))

    @web_ui.app.after_request
    def add_delivery_stats(response: Response) -> Response:
        if request.path != "/stats/requests" or response.mimetype != "application/json":
            return response
        data = orjson.loads(response.get_data())
        data["extended_stats"] = [{"key": TAB_KEY, "data": table_rows(view())}]
        response.set_data(orjson.dumps(data))
        return response
