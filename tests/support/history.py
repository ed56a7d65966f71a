"""Synthetic run folders for the run-history tests: each with its own run id and start, and a delivery latency."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import orjson

from tests.support.synthetic import Synthetic, write_run

LATENCY = {"p50": 4.0, "p95": 12.0, "p99": 20.0, "max": 45.0, "count": 9000}


def synthetic_run(runs: Path, n: int, p99: float = 20.0) -> Path:
    """A synthetic run folder ``runs/run-<n>`` with its own run id and start, and delivery latency ``p99``."""
    spec = Synthetic(criteria=["SC-051", "SC-054"], totals={"latency_ms": dict(LATENCY, p99=p99)})
    made = write_run(runs.parent / f"scratch-{n}", spec)
    folder = runs / f"run-{n}"
    runs.mkdir(exist_ok=True)
    shutil.move(made, folder)
    record = orjson.loads((folder / "run.json").read_bytes())
    record.update(run_id=f"20240101-0000{n:02d}-abcd", started_at=record["started_at"] + 1000 * n)
    (folder / "run.json").write_bytes(orjson.dumps(record))
    return folder


def regression(folder: Path) -> dict[str, Any]:
    """The REGRESSION criterion of a judged folder's verdict.json."""
    document = orjson.loads((folder / "verdict.json").read_bytes())
    return next(c for c in document["scenarios"][0]["criteria"] if c["id"] == "REGRESSION")
