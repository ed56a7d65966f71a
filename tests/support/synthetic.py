"""Synthetic run folders for the judge and report tests.

``write_run`` writes every file of docs/run-folder.md from a ``Synthetic`` description:
a healthy 100 s load phase by default, with knobs for memory shape, crashes, generator
saturation, delivery anomalies, ramp steps and missing or truncated files. The default run
is smaller than the specification's sizes (SC-056's 300 s of load, SC-057's 100,000
notifications); ``spec_size`` describes one that reaches them.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

T0 = 1_700_000_000.0
MIB = 1024 * 1024
ALL_CRITERIA = [
    "SC-051", "SC-052", "SC-053", "SC-054", "SC-055", "SC-056", "SC-057", "SC-058", "SC-059", "SC-060",
    "CPU-1000", "CONN-RELEASE", "JOBS", "MEM-BOUND",
]  # fmt: skip
PERCENTILES = ["50%", "66%", "75%", "80%", "90%", "95%", "98%", "99%", "99.9%", "99.99%", "100%"]
STATS_COLUMNS = [
    "Type", "Name", "Request Count", "Failure Count", "Median Response Time", "Average Response Time",
    "Min Response Time", "Max Response Time", "Average Content Size", "Requests/s", "Failures/s", *PERCENTILES,
]  # fmt: skip
HISTORY_COLUMNS = [
    "Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", *PERCENTILES, "Total Request Count",
    "Total Failure Count", "Total Median Response Time", "Total Average Response Time", "Total Min Response Time",
    "Total Max Response Time", "Total Average Content Size",
]  # fmt: skip
DEFAULT_PHASES: list[tuple[str, float, float, dict[str, Any]]] = [
    ("setup", 0.0, 5.0, {}),
    ("subscribe", 5.0, 10.0, {}),
    ("load", 10.0, 110.0, {}),
    ("drain", 110.0, 115.0, {}),
    ("observe", 115.0, 190.0, {}),
]


def ramp_phases(p95_per_step: list[float], seconds: float = 20.0) -> list[tuple[str, float, float, dict[str, Any]]]:
    """setup/subscribe, then one ``step-<n>`` per entry (users 10, 20, ...), then drain. The steps carry no
    figures of their own (the judge measures them from the history), and each asks 100 writes/s, which the
    synthetic writers reach."""
    phases = DEFAULT_PHASES[:2]
    start = 10.0
    for i, _ in enumerate(p95_per_step, 1):
        phases.append((f"step-{i}", start, start + seconds, {"users": 10 * i, "rate": 100}))
        start += seconds
    phases.append(("drain", start, start + 5.0, {}))
    return phases


@dataclass
class Synthetic:
    """What a synthetic run looks like; times are seconds from the run start ``T0``."""

    scenario: str = "stress.synthetic"
    criteria: list[str] = field(default_factory=lambda: list(ALL_CRITERIA))
    phases: list[tuple[str, float, float, dict[str, Any]]] = field(default_factory=lambda: list(DEFAULT_PHASES))
    profile: dict[str, Any] = field(default_factory=dict)
    status: str = "completed"
    error: str | None = None
    features: list[str] = field(default_factory=lambda: ["changes_counter", "flush", "resume", "stats"])
    rss_mib: Callable[[float], float] = lambda t: 100.0
    uss: bool = True
    cpu_machine_pct: Callable[[float], float] = lambda t: 30.0
    crash_at: float | None = None  # samples stop here, then one alive:false sample
    samples_until: float | None = None  # default: end of the last phase
    generator_cpu: Callable[[float], float] = lambda t: 40.0
    totals: dict[str, Any] = field(default_factory=dict)  # overrides of delivery.json totals
    timeline: list[dict[str, Any]] = field(default_factory=list)
    witnesses: list[dict[str, Any]] = field(default_factory=list)
    connections: dict[str, Any] = field(default_factory=dict)
    writes: dict[str, int] = field(default_factory=lambda: {"insert": 6000, "update": 2000, "delete": 1000})
    server_changes: int = 9000
    received: int = 9000
    jobs: dict[str, str] = field(default_factory=lambda: {"job-1": "completed", "job-2": "completed"})
    released: dict[str, Any] = field(
        default_factory=lambda: {
            "closed": 50,
            "before": {"live": 60, "sockets": 61},
            "after": {"live": 10, "sockets": 11},
        }
    )
    query_p95_ms: float = 120.0
    notify_p95_ms: Callable[[float], float] = lambda t: 12.0
    sql_failures: int = 0
    omit: set[str] = field(default_factory=set)
    writers: int = 2  # writers in writes.json; the writes are split evenly between them


SPEC_PHASES: list[tuple[str, float, float, dict[str, Any]]] = [
    ("setup", 0.0, 5.0, {}),
    ("subscribe", 5.0, 10.0, {}),
    ("load", 10.0, 320.0, {}),
    ("drain", 320.0, 325.0, {}),
    ("observe", 325.0, 400.0, {}),
]


def spec_size(**overrides: Any) -> Synthetic:
    """A healthy run at the specification's size: 310 s of load, 105,000 notifications, two writers."""
    writes = {"insert": 80_000, "update": 15_000, "delete": 10_000}
    up = {"listener_seconds_up": 310.0, "listener_seconds_total": 312.0, "listener_seconds_since_ready": 310.0}
    settings: dict[str, Any] = {
        "phases": list(SPEC_PHASES), "writes": writes, "server_changes": 105_000, "received": 105_000,
        "connections": up, **overrides,
    }  # fmt: skip
    return Synthetic(**settings)


def _monitor_rows(s: Synthetic, end: float) -> list[dict[str, Any]]:
    rows = []
    until = s.crash_at if s.crash_at is not None else (s.samples_until if s.samples_until is not None else end)
    t = 0.0
    while t <= until + 1e-9:
        rss = s.rss_mib(t) + 0.3 * math.sin(t)
        load = any(name in ("load",) or name.startswith("step-") for name, a, b, _ in s.phases if a <= t <= b)
        conns = {"ESTABLISHED": 61 if load else 11, "TIME_WAIT": 2}
        rows.append(
            {
                "t": T0 + t, "pid": 4242, "alive": True, "rss": int(rss * MIB),
                "uss": int((rss - 10) * MIB) if s.uss else None,
                "cpu_core_pct": None if t == 0 else 2 * s.cpu_machine_pct(t),
                "cpu_machine_pct": None if t == 0 else s.cpu_machine_pct(t),
                "threads": 12, "fds": 80 + (50 if load else 0), "conns": conns,
                "io_read_bytes": int(t * 1000), "io_write_bytes": int(t * 2000), "stats": None,
                "live_count": 60 if load else 10,
            }
        )  # fmt: skip
        t += 1.0
    if s.crash_at is not None:
        rows.append({"t": T0 + s.crash_at + 1.0, "pid": 4242, "alive": False, "rss": None, "uss": None,
                     "cpu_core_pct": None, "cpu_machine_pct": None, "threads": None, "fds": None,
                     "conns": {"TIME_WAIT": 5}, "io_read_bytes": None, "io_write_bytes": None,
                     "stats": None, "live_count": None})  # fmt: skip
    return rows


def _generator_rows(s: Synthetic, end: float) -> list[dict[str, Any]]:
    rows = []
    for i in range(int(end) + 1):
        t = float(i)
        rows.append({"t": T0 + t, "role": "master", "pid": 5000, "cpu_core_pct": 5.0, "rss": 80 * MIB})
        rows.append({"t": T0 + t, "role": "worker", "pid": 5001, "cpu_core_pct": s.generator_cpu(t), "rss": 90 * MIB})
    return rows


def _load_span(s: Synthetic) -> tuple[float, float]:
    spans = [(a, b) for name, a, b, _ in s.phases if name == "load" or name.startswith("step-")]
    return min(a for a, _ in spans), max(b for _, b in spans)


def _requests(s: Synthetic) -> list[tuple[str, str, int, int, float]]:
    """(type, name, count, failures, p95) per Locust row."""
    total = s.writes["insert"] + s.writes["update"] + s.writes["delete"]
    return [
        ("NOTIFY", "delivery", total, 0, s.notify_p95_ms(_load_span(s)[0])),
        ("SQL", "insert", s.writes["insert"], s.sql_failures, 8.0),
        ("SQL", "update", s.writes["update"], 0, 9.0),
        ("SQL", "delete", s.writes["delete"], 0, 9.0),
        ("QUERY", "select recent", 500, 0, s.query_p95_ms),
    ]


def _write_stats(path: Path, s: Synthetic) -> None:
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(STATS_COLUMNS)
        total = failures = 0
        for kind, name, n, failed, p95 in _requests(s):
            total, failures = total + n, failures + failed
            pct = [
                p95 / 2,
                p95 * 0.6,
                p95 * 0.7,
                p95 * 0.8,
                p95 * 0.9,
                p95,
                p95 * 1.1,
                p95 * 1.2,
                p95 * 1.5,
                p95 * 2,
                p95 * 2,
            ]
            out.writerow([kind, name, n, failed, p95 / 2, p95 / 2, 1, p95 * 2, 200, n / 100, failed / 100, *pct])
        out.writerow(["", "Aggregated", total, failures, 10, 10, 1, 500, 200, total / 100, 0, *["N/A"] * 11])


def _write_history(path: Path, s: Synthetic) -> None:
    start, end = _load_span(s)
    rows = _requests(s)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(HISTORY_COLUMNS)
        cumulative = [0] * len(rows)
        cum_fail = [0] * len(rows)
        for i in range(int(start), int(end) + 1):
            t = float(i)
            for j, (kind, name, n, failed, p95) in enumerate(rows):
                rate = n / (end - start)
                cumulative[j] += int(rate)
                cum_fail[j] += int(failed / (end - start))
                if kind == "NOTIFY":
                    p95 = s.notify_p95_ms(t)
                pct = [p95 / 2] * 5 + [p95] + [p95 * 1.2] * 5
                out.writerow([int(T0 + t), 10, kind, name, f"{rate:.2f}", "0.00", *pct, cumulative[j], cum_fail[j],
                              p95 / 2, p95 / 2, 1, p95 * 2, 200])  # fmt: skip
            out.writerow([int(T0 + t), 10, "", "Aggregated", "100.00", "0.00", *[10] * 11, sum(cumulative),
                          sum(cum_fail), 10, 10, 1, 100, 200])  # fmt: skip


def write_run(root: Path, s: Synthetic | None = None) -> Path:
    """Write a complete synthetic run folder under ``root`` and return its path."""
    s = s or Synthetic()
    folder = root / f"20240101-000000-{s.scenario}"
    folder.mkdir(parents=True)
    end = max(b for _, _, b, _ in s.phases)
    ops = s.writes
    total = ops["insert"] + ops["update"] + ops["delete"]

    def dump(name: str, data: Any) -> None:
        if name not in s.omit:
            (folder / name).write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))

    def dump_lines(name: str, rows: list[dict[str, Any]]) -> None:
        if name not in s.omit:
            (folder / name).write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))

    dump("run.json", {
        "run_id": "20240101-000000-abcd", "scenario": s.scenario,
        "profile": {"name": s.scenario, "title": "synthetic", "quick": True, "criteria": s.criteria,
                    "expected": total, "target_insert_rate": 60, "memory_limit_mb": 512, "churn_closed": 50,
                    **s.profile},
        "target": {"name": "kalamdb", "url": "http://127.0.0.1:9", "features": s.features, "pid": 4242},
        "versions": {"harness": "0.1.0", "python": "3.11", "locust": "2.47"},
        "started_at": T0, "ended_at": T0 + end + 2, "status": s.status, "error": s.error,
        "phases": [{"name": n, "start": T0 + a, "end": T0 + b, **extra} for n, a, b, extra in s.phases],
        "workers": 1,
    })  # fmt: skip
    dump_lines("monitor.jsonl", _monitor_rows(s, end))
    dump_lines("generator.jsonl", _generator_rows(s, end))
    totals = {
        "expected": total, "may": 0, "delivered": total, "lost": 0, "duplicates": 0, "out_of_order": 0,
        "phantom": 0, "old_value_errors": 0, "new_value_errors": 0, "delete_flag_errors": 0,
        "received_by_op": {"insert": s.writes["insert"], "update": s.writes["update"], "delete": s.writes["delete"]},
        "latency_ms": {"p50": 4.0, "p95": 12.0, "p99": 20.0, "max": 45.0, "count": total},
        **s.totals,
    }  # fmt: skip
    dump("delivery.json", {
        "totals": totals,
        "listeners": [{"listener": "L1", "conversation_id": None, **totals, "received": s.received,
                       "ready_at": T0 + 10.0, "end_at": T0 + 110.0}],
        "witnesses": s.witnesses,
        "timeline": s.timeline,
        "connections": {"listener_seconds_up": 100.0, "listener_seconds_total": 102.0,
                        "listener_seconds_since_ready": 100.0, "unexpected_disconnects": 0,
                        "disconnect_witnesses": [], **s.connections},
        "aggregation": {"workers_expected": 1, "summaries_expected": 2, "summaries_received": 2, "timed_out": False,
                        "missing_listeners": [], "missing_writers": []},
        "error": None,
    })  # fmt: skip
    zero = dict.fromkeys(ops, 0)
    shares = [
        {op: n // s.writers + (n % s.writers if w == 0 else 0) for op, n in ops.items()} for w in range(s.writers)
    ]
    dump("writes.json", {
        "writers": {str(w + 1): {"conversation_id": w + 1, "ok": share, "failed": zero, "indeterminate": zero,
                                 "errors": []} for w, share in enumerate(shares)},
        "totals": {"ok": dict(ops), "failed": zero, "indeterminate": zero},
    })  # fmt: skip
    dump("target.json", {
        "live": {"lqh_L1_1": s.server_changes, "other-client": 7}, "jobs": s.jobs,
        "stats": {"active_connections": "11"}, "released": s.released, "error": None,
        "listeners": {"L1": {"subscription_id": "lqh_L1_1", "subscriptions": {"lqh_L1_1": s.received},
                             "received": s.received}},
    })  # fmt: skip
    if "locust_stats.csv" not in s.omit:
        _write_stats(folder / "locust_stats.csv", s)
    if "locust_stats_history.csv" not in s.omit:
        _write_history(folder / "locust_stats_history.csv", s)
    return folder


def truncate(path: Path, fraction: float) -> None:
    """Cut a file to ``fraction`` of its bytes, mid-line, as a run that died would leave it."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
