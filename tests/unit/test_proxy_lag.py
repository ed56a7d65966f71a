"""The proxy's own loop lateness is the network's: a chunk that had arrived may wait that long to be read,
before its hold starts, so the judge widens what the network may have added by it (SC-054)."""

from __future__ import annotations

import time
from pathlib import Path

import orjson

from harness.nemesis.proxy import FaultProxy
from reports.judge import judge_run
from tests.support.synthetic import T0, Synthetic, write_run


def test_the_proxy_reports_how_late_its_loop_woke_at_worst() -> None:
    with FaultProxy("127.0.0.1", 9, ["L1"]) as proxy:
        time.sleep(0.1)
        calm = proxy.worst_lag_ms
        loop = proxy._loop
        assert loop is not None
        loop.call_soon_threadsafe(time.sleep, 0.15)  # something holds the proxy's loop for 150 ms
        time.sleep(0.4)
        assert proxy.worst_lag_ms >= 100.0 > calm


def _sc054(root: Path, loop_lag_ms: float | None) -> dict:
    latency = {"p50": 116.0, "p95": 150.0, "p99": 190.0, "max": 210.0, "count": 5000}
    folder = write_run(root, Synthetic(criteria=["SC-054"], totals={"latency_ms": latency},
                                       profile={"nemesis": [{"fault": "latency"}]}))  # fmt: skip
    window = {"id": 1, "fault": "latency", "start": T0 + 1.0, "routes": ["L1"], "params": {"ms": 100.0}}
    summary = {"kind": "summary", "routes": {"L1": {"s2c": {"max_hold_ms": 120.0}}}}
    if loop_lag_ms is not None:
        summary["loop_lag_ms"] = loop_lag_ms
    records = [{"kind": "begin", **window, "delays": True, "min_delay_ms": {"c2s": 97.0, "s2c": 97.0}}, summary]
    (folder / "nemesis.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    judge_run(folder, quiet=True, report=False)
    doc = orjson.loads((folder / "verdict.json").read_bytes())
    return next(c for c in doc["scenarios"][0]["criteria"] if c["id"] == "SC-054")


def test_a_late_proxy_loop_is_the_networks_share_not_the_targets(tmp_path: Path) -> None:
    # p99 190 ms, holds up to 120 ms: 70 ms surely the target's, a failure
    assert _sc054(tmp_path / "before", None)["verdict"] == "fail"
    # the proxy's loop was up to 40 ms late: the network may have added 160 ms, so 30 ms may be the target's
    found = _sc054(tmp_path / "late", 40.0)
    assert found["verdict"] == "inconclusive", found
    assert "the proxy's loop up to 40.0 ms late" in found["evidence"] and "97.0 to 160.0 ms" in found["evidence"]
