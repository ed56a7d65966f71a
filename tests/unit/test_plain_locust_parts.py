"""The parts of plain ``locust -f`` runs that need no Locust process: clock offsets, the harness's options,
the Delivery tab's rows, interactive user-count steps and the generator's saturation warning."""

from argparse import Namespace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from harness.errors import HarnessError
from locustfiles import clock, loadgen, options, webtab
from locustfiles.aggregation import LiveView
from locustfiles.coordinator import Coordinator


def test_the_clock_offset_comes_from_the_shortest_round_trip() -> None:
    # the worker's clock is 2 s behind the master's; the slow ping's answer sits off-centre
    fast = clock.Sample(sent=100.0, master=102.005, received=100.01)
    slow = clock.Sample(sent=101.0, master=103.3, received=101.5)
    offset = clock.estimate([slow, fast])
    assert offset is not None and offset.samples == 2
    assert offset.offset_s == pytest.approx(2.0) and offset.rtt_s == pytest.approx(0.01)
    assert clock.estimate([]) is None


def _parsed(**overrides: Any) -> Namespace:
    base = {"scenario": "live.inserts", "target": "ref", "target_url": None, "target_user": "root",
            "target_password_file": None, "quick": True, "runs_dir": "runs", "criteria": None,
            "history": None}  # fmt: skip
    return Namespace(**{**base, **overrides})


def test_session_options_come_from_locusts_parsed_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(options.PASSWORD_ENV, raising=False)
    opts = options.session_options(_parsed(), workers=2)
    assert opts.scenario == "live.inserts" and opts.workers == 2 and opts.run.target == "ref" and opts.run.quick
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    remote = options.session_options(_parsed(target_url="http://db:8080", target_password_file=str(secret)), 0)
    assert remote.run.target == "kalamdb" and remote.run.password == "s3cret"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"scenario": None}, "no scenario"),
        ({"target": "kalamdb"}, "needs --target-url"),
        ({"target_url": "http://db:8080"}, "needs the admin password"),
        ({"criteria": "/nonexistent.toml"}, "criteria file not found"),
    ],
)
def test_a_wrong_option_is_a_harness_error(overrides: dict[str, Any], message: str, monkeypatch) -> None:
    monkeypatch.delenv(options.PASSWORD_ENV, raising=False)
    with pytest.raises(HarnessError, match=message):
        options.session_options(_parsed(**overrides), workers=0)


def _coordinator(delivery: dict[str, Any] | None, cpu: float = 5.0, lag: float = 1.0) -> Any:
    view = LiveView()
    view.add({"L1": {"received": 3, "duplicates": 1, "old_value_errors": 2, "latency": _hist([4.0, 6.0])}})
    return SimpleNamespace(
        delivery=delivery, live_view=view, clocks={}, worker_lag_ms={},
        runner=SimpleNamespace(current_cpu_usage=cpu), lag=SimpleNamespace(recent_ms=lambda: lag),
    )  # fmt: skip


def _hist(ms: list[float]) -> Any:
    from harness.delivery.latency import LatencyHistogram

    hist = LatencyHistogram()
    for value in ms:
        hist.record_us(int(value * 1000))
    return hist.encode()


def test_the_tab_shows_live_counts_then_the_checkers_numbers() -> None:
    live = webtab.delivery_view(_coordinator(None), None)
    assert live["state"] == "running" and live["total"]["expected"] is None  # known only once the checker ran
    assert live["listeners"][0] | {"p50_ms": None, "p95_ms": None, "p99_ms": None} == {
        "name": "L1", "expected": None, "received": 3, "delivered": None, "lost": None, "duplicates": 1,
        "out_of_order": 0, "value_errors": 2, "p50_ms": None, "p95_ms": None, "p99_ms": None, "note": "live",
    }  # fmt: skip
    totals = {"expected": 10, "delivered": 9, "lost": 1, "duplicates": 0, "out_of_order": 0, "received": 9,
              "latency_ms": {"p50": 3.0, "p95": 5.0, "p99": 6.0}}  # fmt: skip
    final = {"totals": totals, "listeners": [{**totals, "listener": "L1"}]}
    verdict = {"verdict": "fail", "exit_code": 1, "run_dir": "runs/x"}
    done = webtab.delivery_view(_coordinator(final), verdict)
    rows = {row["name"]: row for row in webtab.table_rows(done)}
    assert rows["total"]["lost"] == 1 and rows["total"]["note"] == "final" and rows["L1"]["expected"] == 10
    assert rows["verdict"]["note"].startswith("fail (exit code 1)")
    assert rows["local"]["note"] == "CPU 5%, loop lag 1 ms" and "WARNING" not in rows
    orjson.dumps(done)  # the endpoint's answer is plain JSON


def test_a_saturated_generator_gets_a_warning_row() -> None:
    rows = webtab.table_rows(webtab.delivery_view(_coordinator(None, cpu=97.0, lag=150.0), None))
    assert rows[0]["name"] == "WARNING" and "CPU 97% >= 90%" in rows[0]["note"] and "loop lag 150 ms" in rows[0]["note"]
    assert loadgen.saturation(10.0, 5.0) is None


def test_user_count_changes_during_the_load_become_steps(tmp_path: Path) -> None:
    phases: list[tuple[str, float, float, dict[str, Any]]] = []
    fake = SimpleNamespace(
        _user_counts=[
            (t, n, {"listeners": n - 1, "writer_users": 1})
            for t, n in [(5.0, 4), (12.0, 8), (12.5, 8), (20.0, 2), (40.0, 9)]
        ],
        phases=SimpleNamespace(write=lambda name, start, end, **extra: phases.append((name, start, end, extra))),
    )
    Coordinator._write_user_steps(fake, 10.0, 30.0)  # type: ignore[arg-type]
    assert phases == [
        ("step-1", 10.0, 12.0, {"users": 4, "listeners": 3, "writer_users": 1}),
        ("step-2", 12.0, 20.0, {"users": 8, "listeners": 7, "writer_users": 1}),
        ("step-3", 20.0, 30.0, {"users": 2, "listeners": 1, "writer_users": 1}),
    ]
    phases.clear()
    fake._user_counts = [(5.0, 4, {})]  # one count all along: not a ramp
    Coordinator._write_user_steps(fake, 10.0, 30.0)  # type: ignore[arg-type]
    assert phases == []
