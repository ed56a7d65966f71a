"""Issue 14 end to end: three quick runs of live.high-frequency against the reference server build a
history; a fourth with an injected notification delay fails REGRESSION on delivery latency, with the
baseline, current value, change and band in its evidence, one JUnit testcase per regressed measurement,
and a trend section in its report. Judging it again leaves the history as it was.

The latency limit of SC-054 is relaxed for these runs so a busy machine cannot keep the baseline runs
from passing: the point here is the comparison with the history, not the absolute threshold.
About 30-60 s: four or five quick runs of a few seconds each.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import orjson
import pytest

from reports.history import HistoryStore
from tests.support.verdicts import SMALL_RUN_CRITERIA

ROOT = Path(__file__).resolve().parents[2]
SCENARIO = "live.high-frequency"
DELAY = "delay:ms=20,every=20"  # every 20th notification waits 20 ms: the backlog adds hundreds of ms
MAX_ATTEMPTS = 5  # quick runs allowed for three passing ones


def lqharness(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=240, cwd=ROOT
    )


def newest(out: Path) -> Path:
    return max((p for p in out.iterdir() if p.is_dir()), key=lambda p: p.name)


def criterion(folder: Path, cid: str) -> dict[str, Any]:
    document = orjson.loads((folder / "verdict.json").read_bytes())
    return next(c for c in document["scenarios"][0]["criteria"] if c["id"] == cid)


@pytest.mark.timeout(600)
@pytest.mark.serial
def test_injected_delay_fails_regression_on_delivery_latency(tmp_path: Path) -> None:
    out = tmp_path / "runs"
    loose = tmp_path / "loose.toml"
    # latency judged loosely (a busy machine must not stop the baselines passing) and on a quick run's size
    loose.write_text(SMALL_RUN_CRITERIA.replace("[SC-054]\n", "[SC-054]\nmax_latency_ms = 60000.0\n"))
    passed: list[Path] = []
    for _ in range(MAX_ATTEMPTS):
        result = lqharness("run", SCENARIO, "--quick", "--out", str(out), "--criteria", str(loose))
        assert "REGRESSION" in result.stdout, result.stdout + result.stderr
        folder = newest(out)
        assert criterion(folder, "REGRESSION")["verdict"] == "n/a"  # fewer than three passing runs before it
        if result.returncode == 0:
            passed.append(folder)
        if len(passed) == 3:
            break
    assert len(passed) == 3, f"only {len(passed)} of {MAX_ATTEMPTS} quick runs passed on this machine"

    result = lqharness("run", SCENARIO, "--quick", "--out", str(out), "--criteria", str(loose), "--fault", DELAY)
    slow = newest(out)
    assert result.returncode == 1, result.stdout + result.stderr
    found = criterion(slow, "REGRESSION")
    assert found["verdict"] == "fail", found
    regressed = {m["name"]: m for m in found["metrics"] if m["regressed"]}
    assert "delivery_p99_ms" in regressed, found["evidence"]

    baseline_p99 = [orjson.loads((f / "delivery.json").read_bytes())["totals"]["latency_ms"]["p99"] for f in passed]
    current_p99 = orjson.loads((slow / "delivery.json").read_bytes())["totals"]["latency_ms"]["p99"]
    p99 = regressed["delivery_p99_ms"]
    median = statistics.median(baseline_p99)
    assert p99["baseline"] == pytest.approx(median) and p99["current"] == pytest.approx(current_p99)
    assert p99["band"] == pytest.approx(3 * statistics.median(abs(v - median) for v in baseline_p99), abs=1e-5)
    assert p99["change_pct"] == pytest.approx(100 * (current_p99 - median) / median, abs=0.01)
    assert p99["change_pct"] > 15 and current_p99 - median > p99["band"]
    assert "the median of the last 3 comparable passing runs" in found["evidence"]
    assert (
        "delivery latency p99 (delivery_p99_ms): baseline" in found["evidence"]
        and "noise band ±" in (found["evidence"])
    )
    assert criterion(slow, "SC-054")["verdict"] == "pass"  # the absolute limit holds; only the history catches it

    cases = {c.get("name"): c for c in ET.parse(slow / "junit.xml").getroot().iter("testcase")}
    assert cases["REGRESSION delivery_p99_ms"].find("failure") is not None
    html = (slow / "report.html").read_text()
    assert 'id="trend"' in html and 'id="fig-trend"' in html
    assert "baseline: the median of the last 3 comparable passing runs" in html and "regressed" in html

    with HistoryStore(out / "history.sqlite") as store:
        before = [r.to_dict() for r in store.runs(SCENARIO)]
    assert before[-1]["run_id"] == slow.name.split(f"-{SCENARIO}")[0] and before[-1]["verdict"] == "fail"
    assert lqharness("judge", str(slow), "--quiet").returncode == 1
    listed = lqharness("history", SCENARIO, "--history", str(out / "history.sqlite"), "--json")
    assert listed.returncode == 0 and orjson.loads(listed.stdout) == before
