"""The run-folder contract: the name of every file in a run folder, the values of a run's status and
verdict, and the two ways a file there is written (whole and atomically, or one line appended).

The run folder is the hand-off between the runner, the Locust coordinator, the monitor and the
judge (docs/run-folder.md describes each file's content). Each of them takes the names from here,
so adding a file or a status is one edit. The writer of ``run.json`` is
``harness.orchestration.record.RunRecord``; the reader of the whole folder is ``reports.runfolder``.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson

from harness import exitcodes

RUN_JSON = "run.json"  # runner: config, versions, status, phases
PLAN_JSON = "plan.json"  # runner: the plan the Locust processes load
PHASES = "phases.jsonl"  # Locust coordinator: phases as they end; the runner folds them into run.json
MONITOR = "monitor.jsonl"  # monitor: one server sample per line
MONITOR_LOG = "monitor.log"  # monitor: its stderr
GENERATOR = "generator.jsonl"  # monitor: the load generator's own processes
DATABASE = "database.jsonl"  # monitor: the target's database process tree (Parse's PostgreSQL), summed per sample
LOCUST_CSV_PREFIX = "locust"  # Locust's --csv prefix: it writes <prefix>_stats.csv and the others
STATS = f"{LOCUST_CSV_PREFIX}_stats.csv"
HISTORY = f"{LOCUST_CSV_PREFIX}_stats_history.csv"
LOCUST_LOG = "locust.log"  # Locust's --logfile
LOCUST_OUT = "locust.out"  # Locust processes' stdout and stderr
DELIVERY = "delivery.json"  # Locust coordinator: the checker's output
WRITES = "writes.json"  # Locust coordinator: the writers' ledger summary
TARGET = "target.json"  # Locust coordinator: target-side counters at the end of the load
NEMESIS = "nemesis.jsonl"  # runner (nemesis hook): each network fault window and the proxy's traffic
VERDICT = "verdict.json"  # judge
JUNIT = "junit.xml"  # judge: one testcase per criterion
REPORT = "report.html"  # judge
SERVER = "server"  # the reference server's files are named from this: server.log, server.ready.json, server-data/
PARSE_SERVER_LOG = "parse-server.log"  # --target parse: the Node launcher's output
POSTGRES_LOG = "postgres.log"  # --target parse: the private PostgreSQL cluster's log, kept when it is removed
POSTGRES_DIR = "pg"  # --target parse: the private PostgreSQL cluster while it runs


class RunStatus(StrEnum):
    """``run.json`` ``status``: how far the run got. The judge fails a crashed or unresponsive target, never a
    harness error or an interrupted run."""

    RUNNING = "running"  # written at the start; left behind only by a runner that was killed
    COMPLETED = "completed"  # the load ran to its end and the target was still up
    TARGET_CRASHED = "target_crashed"  # the embedded target exited during the run
    TARGET_UNRESPONSIVE = "target_unresponsive"  # the target stopped answering past the limit; the run was cut
    HARNESS_ERROR = "harness_error"  # the harness could not run the scenario
    INTERRUPTED = "interrupted"  # SIGINT or SIGTERM ended the run early; judged on what it has


class Incident(StrEnum):
    """``run.json`` ``incidents[].kind``: what happened to the target or the harness during the run."""

    TARGET_EXITED = "target_exited"
    TARGET_STOPPED = "target_stopped"  # the embedded server's process is stopped (SIGSTOP)
    TARGET_UNRESPONSIVE = "target_unresponsive"
    TARGET_RESPONSIVE = "target_responsive"  # it answers again after being unresponsive
    TARGET_RESTARTED = "target_restarted"  # its uptime fell: it lost its in-memory state mid-run
    SERVER_RESTART = "server_restart"  # the scenario restarted the embedded server (``server_restart``): planned
    WORKER_LOST = "worker_lost"  # a Locust worker ended before its master
    INTERRUPTED = "interrupted"  # SIGINT or SIGTERM to the runner


class Verdict(StrEnum):
    """A criterion's or a scenario's verdict in ``verdict.json``."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"
    NA = "n/a"  # the criterion does not apply to this target or scenario; ignored when verdicts combine


VERDICT_EXIT_CODES: dict[str, int] = {
    Verdict.PASS: exitcodes.PASS,
    Verdict.FAIL: exitcodes.FAIL,
    Verdict.INCONCLUSIVE: exitcodes.INCONCLUSIVE,
}


def verdict_exit_code(verdict: str) -> int:
    """The exit code a verdict ends ``lqharness run`` or ``judge`` with; anything unknown is inconclusive."""
    return VERDICT_EXIT_CODES.get(verdict, exitcodes.INCONCLUSIVE)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` whole through a temporary file beside it, so a reader never sees half of it."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def dump_json(data: Any) -> bytes:
    """Indented JSON as run-folder files hold it (integer keys and numpy values allowed)."""
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)


def write_json_atomic(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    write_bytes_atomic(path, dump_json(data))


def append_jsonl(path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` as one JSON line and flush it, so a process that dies later keeps it."""
    with path.open("ab") as out:
        out.write(orjson.dumps(record) + b"\n")
        out.flush()
