"""The benchmark run behind ``make bench`` / ``lqharness bench``: the reference server's figures,
the load generator's own per-notification cost (the listener tracker's checks) and the harness
section (``harnessbench``: the load generator's capacity beside its goals and ceilings), as Markdown.

The server is started with the one launcher (``harness.orchestration.server``), exactly as
``lqharness run`` starts it; the load and the server measurements are the server's own
benchmark, ``refserver.bench``. Each figure is the median of repeated runs, printed and written
with the machine it was measured on.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import queue
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from harness.errors import HarnessError
from harness.orchestration.layout import from_bench
from harness.orchestration.layout import save as save_capacity
from harness.orchestration.server import start_local_server
from refserver.bench import CONTENT, P99_LIMIT_MS, SUBSCRIBER_PROCS, SUBSCRIBERS, BenchError, measure

ROOT_PASSWORD = "Bench-Root-123"
SERVER_ARGS = ("--heartbeat-timeout", "30")  # the subscribers ping every 3 s; leave room under load
SERVER_START_SECONDS = 30.0
TRACKER_NOTIFICATIONS = 50_000


def tracker_cost(repeats: int, count: int = TRACKER_NOTIFICATIONS) -> dict[str, float]:
    """Median µs of CPU per ``ListenerTracker.observe`` over a clean stream of inserts, then of updates."""
    from harness.delivery.identity import content, insert_row, update_changes
    from harness.delivery.tracker import ListenerTracker
    from harness.targets.base import Change, Op

    now_ns = time.time_ns()
    inserts, updates = [], []
    for n in range(1, count + 1):
        row = insert_row(1, 1, n, n, now_ns // 1000, len(CONTENT))
        inserts.append(Change(Op.INSERT, row, None, n, now_ns + 1_000_000, 400))
        new = {**row, **update_changes(row["id"], 2, count + n, now_ns // 1000, len(CONTENT))}
        old = {"id": row["id"], "version": 1, "wseq": n, "content": content(row["id"], 1, len(CONTENT))}
        updates.append(Change(Op.UPDATE, new, old, count + n, now_ns + 1_000_000, 600))
    out: dict[str, list[float]] = {"insert": [], "update": []}
    for _ in range(repeats):
        tracker = ListenerTracker("bench", None, len(CONTENT), 1_000_000_000)
        for kind, stream in (("insert", inserts), ("update", updates)):
            started = time.process_time()
            for change in stream:
                tracker.observe(change)
            out[kind].append((time.process_time() - started) / count * 1e6)
        if any(tracker.anomalies.values()):
            raise RuntimeError(f"bench stream is not clean: {tracker.anomalies}")
    return {kind: statistics.median(values) for kind, values in out.items()}


def machine() -> dict[str, str]:
    """The machine the figures were measured on, for the report's first table."""
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    return {
        "CPU": model,
        "Cores": str(os.cpu_count()),
        "RAM": f"{psutil.virtual_memory().total / (1 << 30):.1f} GiB",
        "Python": platform.python_version(),
        "OS": f"{platform.system()} {platform.release()}",
        "Date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def run(repeats: int, seconds: float, parts: tuple[str, ...] = ("server", "harness")) -> dict[str, Any]:
    """The measurements of ``parts``; bounded by ``repeats`` and ``seconds`` per run (a few minutes each)."""
    results: dict[str, Any] = {"machine": machine(), "seconds": seconds, "repeats": repeats}
    if "server" in parts:
        results.update(server_run(repeats, seconds))
    if "harness" in parts:
        from harness.orchestration.harnessbench import measure as harness_measure

        results["harness"] = harness_measure(repeats, min(seconds, 3.0))
        saved = save_capacity(from_bench(results["harness"], results["machine"]["Date"]))
        print(f"bench: per-process capacity for the runner written to {saved}", file=sys.stderr, flush=True)
    return results


def server_run(repeats: int, seconds: float) -> dict[str, Any]:
    """The reference server's figures and the tracker's CPU per notification."""
    print("bench: reference server and tracker cost", file=sys.stderr, flush=True)
    with (
        tempfile.TemporaryDirectory(prefix="lqh-bench-") as tmp,
        start_local_server(Path(tmp), SERVER_ARGS, root_password=ROOT_PASSWORD, timeout=SERVER_START_SECONDS) as server,
    ):
        try:
            server_results = measure(server.url, server.ws_url, ROOT_PASSWORD, server.pid, repeats, seconds)
        except (BenchError, OSError) as exc:
            raise HarnessError(f"bench: {exc} (server log: {server.log_path})") from exc
        except queue.Empty as exc:
            raise HarnessError(f"bench: a load process did not report in time (server log: {server.log_path})") from exc
    return {**server_results, "tracker": tracker_cost(repeats)}


def report(results: dict[str, Any]) -> str:
    """The Markdown report: the machine, then the server's section and the harness's, as measured."""
    lines = [
        "# Benchmarks: the reference server and the load generator",
        "",
        "Measured by `make bench` (`lqharness bench`).",
        "",
        "| Machine | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in results["machine"].items()]
    lines.append("")
    if "inserts" in results:
        lines += server_section(results)
    if "harness" in results:
        from harness.orchestration.harnessbench import section

        lines += section(results["harness"], results["repeats"])
    return "\n".join(lines)


def server_section(results: dict[str, Any]) -> list[str]:
    """The reference server's figures and the tracker's cost."""
    ins = results["inserts"]
    fixed = results["fixed"]
    steps = results["steps"]
    rate = statistics.median(r["sent"] / r["seconds"] for r in ins)
    cpu_per_insert = statistics.median(r["server_cpu"] / max(r["sent"], 1) * 1e6 for r in ins)
    cpu_per_note = statistics.median(r["server_cpu"] / max(r["delivered"], 1) * 1e6 for r in fixed)
    good = [s for s in steps if s["good"]]
    lines = [
        "## The reference server",
        "",
        f"Server: `lqharness serve` as a subprocess; load in separate processes (1 writer with a keep-alive "
        f"connection, {SUBSCRIBERS} WebSocket subscribers in {SUBSCRIBER_PROCS} processes). Rows: the harness's "
        f"message row with {len(CONTENT)}-byte content, inserted one per request via `params`. "
        f"Each figure is the median of {len(ins)} runs of {results['seconds']:g} s.",
        "",
        "| Measurement | Result | Goal |",
        "|---|---|---|",
        f"| single-writer HTTP inserts/s | {rate:,.0f} | ≥ 2,500 |",
        f"| server CPU per insert | {cpu_per_insert:,.0f} µs | |",
        f"| 20 subscribers, 1,000 inserts/s: notifications/s delivered | "
        f"{statistics.median(r['notifications_per_s'] for r in fixed):,.0f} | 20,000 |",
        f"| … delivered / expected | {sum(r['delivered'] for r in fixed):,} / "
        f"{sum(r['expected'] for r in fixed):,} | all |",
        f"| … receive latency p50 | {statistics.median(r['p50'] for r in fixed):.2f} ms | |",
        f"| … receive latency p99 | {statistics.median(r['p99'] for r in fixed):.2f} ms | ≤ 20 ms |",
        f"| … server CPU per notification | {cpu_per_note:,.1f} µs | |",
        f"| highest fan-out sustained (p99 ≤ {P99_LIMIT_MS:g} ms, nothing behind) | "
        + (
            f"{good[-1]['notifications_per_s']:,.0f} notifications/s ({good[-1]['rate']:,} inserts/s × 20)"
            if good
            else "none of the steps"
        )
        + " | 20,000 |",
        "",
        "Fan-out steps:",
        "",
        "| inserts/s asked | achieved | notifications/s | delivered/expected | p50 ms | p99 ms | ok |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in steps:
        lines.append(
            f"| {s['rate']:,} | {s['achieved_rate']:,.0f} | {s['notifications_per_s']:,.0f} | "
            f"{s['delivered']:,}/{s['expected']:,} | {s['p50']:.2f} | {s['p99']:.2f} | "
            f"{'yes' if s['good'] else 'no'} |"
        )
    tracker = results.get("tracker")
    if tracker:
        lines += [
            "",
            f"Load generator: CPU per notification checked by one listener's tracker (identity, "
            f"duplicate, order, old and new values, latency), over {TRACKER_NOTIFICATIONS:,} notifications, "
            f"median of {results.get('repeats', len(ins))} runs:",
            "",
            "| Notification | µs each |",
            "|---|---|",
            f"| insert | {tracker['insert']:.1f} |",
            f"| update | {tracker['update']:.1f} |",
        ]
    lines += [
        "",
        "Where the time goes (py-spy profiles of the server under this load, taken while tuning):",
        "",
        "- A single-row insert costs the server the figure above in CPU: about a third in SQLite (one "
        "autocommit transaction in WAL mode; checkpoints run in a background thread), about a third in "
        "aiohttp's request parsing and the response's socket write, the rest in JWT-cache lookup, plan "
        "binding and JSON. A bare aiohttp handler reaches roughly 4,000 requests/s on this machine, which "
        "bounds any single-connection rate here; loopback send syscalls on this VM cost tens of µs each.",
        "- Fan-out serializes each change once per (table, filter, projection) group and splices the "
        "subscription id; most of the remaining cost is one socket write per connection, which the sender "
        "coalesces (frames queued within 2 ms share one write). At the failing step the single server core "
        "is saturated by HTTP handling plus fan-out, so the writer no longer reaches the asked rate.",
        "",
    ]
    return lines
