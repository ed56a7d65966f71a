"""An interactive ramp over the web UI's HTTP API: a plain Locust run whose user count goes up and down while it
runs (POST /swarm, as the form's edit button does). Users beyond the scenario's join as more listeners and
writers, a lower count stops some of each, the checker owes each listener only what was acknowledged while it
was there, and run.json records each count as a step. About 15 s."""

from __future__ import annotations

import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from tests.support.plain_locust import free_port, locust_cmd, locust_env, only_run, read_json

SCENARIO = "stress.interactive"  # quick: 2 writers for 5 s at 10 changes/s each, 2 listeners (4 users)


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=2) as reply:
        return orjson.loads(reply.read())


def _swarm(base: str, users: int) -> None:
    form = urllib.parse.urlencode({"user_count": users, "spawn_rate": 20}).encode()
    with urllib.request.urlopen(urllib.request.Request(f"{base}/swarm", data=form), timeout=5) as reply:
        answer = orjson.loads(reply.read())
    assert answer.get("success") is not False, answer


def _wait(what: str, done: Any, proc: subprocess.Popen[bytes], seconds: float) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"Locust exited while waiting for {what}"
        try:
            found = done()
        except OSError:
            found = None
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {seconds:g} s")


def test_listeners_and_writers_join_and_leave_while_the_run_goes_on(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    runs = tmp_path / "runs"
    cmd = locust_cmd(
        "--scenario", SCENARIO, "--quick", "--autostart", "-u", "4", "-r", "20",
        "--web-host", "127.0.0.1", "--web-port", str(port), "--runs-dir", str(runs),
    )  # fmt: skip
    log = (tmp_path / "locust.out").open("wb")
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=locust_env(), stdout=log, stderr=subprocess.STDOUT)
    try:
        received = lambda: (_get(f"{base}/delivery").get("total") or {}).get("received", 0)  # noqa: E731
        _wait("notifications", lambda: received() >= 10, proc, 25)
        _swarm(base, 10)  # 6 more users: 3 joining listeners and 3 joining writers (weights 2:2)
        _wait("the joiners' notifications", lambda: len(_get(f"{base}/delivery")["listeners"]) >= 5, proc, 10)
        time.sleep(0.5)
        _swarm(base, 6)  # Locust stops 4 users, 2 listeners and 2 writers
        view = _wait("the verdict", lambda: _get(f"{base}/delivery")["verdict"], proc, 30)
        proc.terminate()  # the web UI stays up after the run: Locust's own shutdown keeps the verdict's code
        assert proc.wait(15) == view["exit_code"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        log.close()
    out = (tmp_path / "locust.out").read_text(errors="replace")
    run_dir = only_run(runs)
    delivery, record = read_json(run_dir / "delivery.json"), read_json(run_dir / "run.json")
    totals, aggregation = delivery["totals"], delivery["aggregation"]
    # every counter but these is an anomaly ("late": received in a listener's last drain window, still delivered)
    counts = ("expected", "may", "delivered", "received", "late")
    anomalies = {k: v for k, v in totals.items() if isinstance(v, int) and v and k not in counts}
    assert anomalies == {}, (anomalies, delivery["witnesses"][:5], out[-3000:])
    assert delivery["error"] is None, delivery["error"]
    assert totals["expected"] > 0 and totals["delivered"] >= totals["expected"]
    joined = aggregation["joined_listeners"]
    assert len(joined) == 3 and len(aggregation["joined_writers"]) == 3, aggregation
    assert aggregation["missing_listeners"] == [] and aggregation["missing_writers"] == []
    rows = {r["listener"]: r for r in delivery["listeners"]}
    assert set(rows) == {"L1", "L2", *joined}
    start = min(p["start"] for p in record["phases"] if p["name"] == "load")
    assert all(rows[lid]["ready_at"] > start for lid in joined)  # each joiner became ready during the load
    end = max(r["end_at"] for r in rows.values())
    left = {lid for lid, r in rows.items() if r["end_at"] < end - 1.0}
    assert len(left) == 5 - 3, "Locust stops 2 of the 5 listeners when the count goes down"
    # those that stayed to the end were owed the writes acknowledged from their own ready time; one that was
    # there less than a drain window was owed nothing (whatever reached it counts as "may")
    assert all(rows[lid]["expected"] > 0 for lid in set(joined) - left), rows
    steps = [p for p in record["phases"] if p["name"].startswith("step-")]
    assert [(p["users"], p["listeners"], p["writer_users"]) for p in steps] == [(4, 2, 2), (10, 5, 5), (6, 3, 3)]
    verdict = read_json(run_dir / "verdict.json")
    sc051 = next(c for c in verdict["scenarios"][0]["criteria"] if c["id"] == "SC-051")
    assert sc051["verdict"] == "pass", sc051
