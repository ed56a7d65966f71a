"""SC-054 states where its latency samples came from (delivery.json ``latency_sources``)."""

from __future__ import annotations

from pathlib import Path

import orjson

from reports.judge import judge_run
from tests.support.synthetic import Synthetic, write_run


def _sc054(run_dir: Path) -> dict:
    judge_run(run_dir, None, quiet=True, report=False)
    doc = orjson.loads((run_dir / "verdict.json").read_bytes())
    return next(c for c in doc["scenarios"][0]["criteria"] if c["id"] == "SC-054")


def test_sc054_evidence_names_each_latency_source(tmp_path: Path) -> None:
    latency = {"p50": 4.0, "p95": 12.0, "p99": 20.0, "max": 45.0, "count": 9000}
    sources = {"sent_at": 8000, "writer_send_time": 1000}
    run_dir = write_run(
        tmp_path, Synthetic(criteria=["SC-054"], totals={"latency_ms": latency, "latency_sources": sources})
    )
    found = _sc054(run_dir)
    assert found["verdict"] == "pass"
    assert (
        "8,000 from the row's client send time, 1,000 deletes and filter-leaves from the writers' send times"
        in (found["evidence"])
    )
