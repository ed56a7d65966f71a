"""Figure 5 of the harness bench: time and peak memory to merge and judge a large synthetic run.

``build`` writes the inputs of a big run from the project's own types: WRITERS writer ledgers
(``WriterLedger``) of ROWS inserts each, and LISTENERS listener summaries (``ListenerSummary``,
from a ``ListenerTracker`` that observed every row of every writer), so LISTENERS x WRITERS x ROWS
notifications, plus one hour of monitor and generator samples. ``python -m
harness.orchestration.judgebench DIR`` then, in a fresh process, does what the end of a run does:
loads them, runs the checker, writes ``delivery.json`` and ``writes.json`` and judges the folder;
it prints the wall time and its peak RSS.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

from harness.errors import HarnessError

LISTENERS = 100
WRITERS = 100
ROWS = 1_000  # per writer: LISTENERS x WRITERS x ROWS notifications
HOUR = 3600
PAYLOAD = 200
TIME_GOAL_S = 30.0
MEMORY_GOAL = 300 * 1024 * 1024
T0 = 1_700_000_000.0


def build(folder: Path) -> None:
    """Write ``ledgers.json``, ``summaries.json`` and a run folder's run.json and monitor samples."""
    from harness.delivery.identity import insert_row
    from harness.delivery.ledger import WriterLedger
    from harness.delivery.tracker import ListenerTracker, WriterView
    from harness.targets.base import Change, Op, Outcome, WriteResult

    start_ns = int(T0 * 1e9)
    step_ns = HOUR * 10**9 // ROWS
    ledgers = []
    for w in range(1, WRITERS + 1):
        led = WriterLedger(w, 1)
        for n in range(1, ROWS + 1):
            at = start_ns + n * step_ns
            led.record("insert", n, WriteResult(Outcome.OK, at, at + 1_000_000))
        ledgers.append(led.to_dict())
    writers = {w: WriterView(1, "app") for w in range(1, WRITERS + 1)}
    tracker = ListenerTracker("L000", None, PAYLOAD, 10**9, start_ns, writers=writers, user="app")
    tracker.mark_ready(start_ns)
    for n in range(1, ROWS + 1):
        at = start_ns + n * step_ns
        for w in range(1, WRITERS + 1):
            row = insert_row(w, 1, n, n, at // 1000, PAYLOAD)
            tracker.observe(Change(Op.INSERT, row, None, None, at + 2_000_000 + w * 1000, 400))
    tracker.mark_end(start_ns + (HOUR + 10) * 10**9)
    one = tracker.summary().to_dict()
    summaries = [{**one, "listener_id": f"L{i:03d}"} for i in range(LISTENERS)]
    (folder / "ledgers.json").write_bytes(orjson.dumps(ledgers))
    (folder / "summaries.json").write_bytes(orjson.dumps(summaries))
    run = folder / "run"
    run.mkdir()
    load = {"name": "load", "start": T0, "end": T0 + HOUR}
    (run / "run.json").write_bytes(
        orjson.dumps(
            {
                "run_id": "bench",
                "scenario": "bench.judge-scale",
                "profile": {"name": "bench.judge-scale", "quick": False, "target_insert_rate": WRITERS * ROWS / HOUR},
                "target": {"name": "kalamdb", "url": "http://127.0.0.1:9", "features": [], "pid": 1},
                "started_at": T0 - 10,
                "ended_at": T0 + HOUR + 20,
                "status": "completed",
                "error": None,
                "phases": [load],
                "workers": 1,
            }
        )
    )
    monitor = b"".join(
        orjson.dumps(
            {
                "t": T0 + t,
                "pid": 1,
                "alive": True,
                "rss": 100 << 20,
                "uss": 90 << 20,
                "cpu_core_pct": 30.0,
                "cpu_machine_pct": 15.0,
                "threads": 12,
                "fds": 120,
                "conns": {"ESTABLISHED": 110},
                "io_read_bytes": t,
                "io_write_bytes": t,
                "stats": None,
                "live_count": LISTENERS,
            }
        )
        + b"\n"
        for t in range(HOUR + 1)
    )
    (run / "monitor.jsonl").write_bytes(monitor)
    generator = b"".join(
        orjson.dumps({"t": T0 + t, "role": "local", "pid": 2, "cpu_core_pct": 40.0, "rss": 200 << 20})
        + b"\n"
        + orjson.dumps({"t": T0 + t, "kind": "lag", "role": "local", "pid": 2, "loop_lag_ms": 1.0})
        + b"\n"
        for t in range(HOUR + 1)
    )
    (run / "generator.jsonl").write_bytes(generator)


def merge_and_judge(folder: Path) -> dict[str, Any]:
    """Load the inputs, check delivery, write the delivery files, judge; wall seconds and peak RSS."""
    from harness.delivery.checker import check
    from harness.delivery.ledger import WriterLedger, writes_summary
    from harness.runfolder import DELIVERY, WRITES, write_json_atomic
    from reports.criteria import load_criteria
    from reports.judge import evaluate
    from reports.runfolder import load_run_folder

    started = time.perf_counter()
    ledgers = orjson.loads((folder / "ledgers.json").read_bytes())
    summaries = orjson.loads((folder / "summaries.json").read_bytes())
    delivery = check(ledgers, summaries, drain_ns=10**9)
    run = folder / "run"
    write_json_atomic(run / DELIVERY, delivery)
    write_json_atomic(run / WRITES, writes_summary([WriterLedger.from_dict(d) for d in ledgers]))
    merged = time.perf_counter()
    scenario = evaluate(load_run_folder(run), load_criteria(None))
    done = time.perf_counter()
    return {
        "seconds": done - started,
        "merge_seconds": merged - started,
        "judge_seconds": done - merged,
        "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "delivered": delivery["totals"].get("delivered"),
        "lost": delivery["totals"].get("lost"),
        "verdicts": {c["id"]: c["verdict"] for c in scenario["criteria"]},
    }


def judge_scale() -> dict[str, Any]:
    """Build the inputs here, merge and judge them in a fresh process (so its peak RSS is its own)."""
    with tempfile.TemporaryDirectory(prefix="lqh-judgebench-") as tmp:
        started = time.perf_counter()
        build(Path(tmp))
        built = time.perf_counter() - started
        proc = subprocess.run(
            [sys.executable, "-m", "harness.orchestration.judgebench", tmp],
            capture_output=True,
            text=True,
            timeout=600,
        )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-1:] or ["no output"]
        raise HarnessError(f"bench: merge-and-judge failed: {tail[0]}")
    result: dict[str, Any] = json.loads(lines[-1])
    result["build_seconds"] = built
    result["notifications"] = LISTENERS * WRITERS * ROWS
    return result


if __name__ == "__main__":
    print(json.dumps(merge_and_judge(Path(sys.argv[1]))), flush=True)
