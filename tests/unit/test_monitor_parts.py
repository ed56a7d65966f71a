"""Monitor building blocks: roles, the JSON-lines writer, the stats poller, the loop's schedule."""

from __future__ import annotations

import itertools
import math
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import psutil
import pytest

from monitors import loop
from monitors.generator import role_of
from monitors.jsonl import JsonlWriter
from monitors.loop import StopReason, run_monitor
from monitors.sampler import ProcessSampler
from monitors.stats import StatsPoller


@pytest.mark.parametrize(
    ("cmdline", "role"),
    [
        (["locust", "-f", "x.py", "--worker", "--master-host", "127.0.0.1"], "worker"),
        (["/venv/bin/python", "/venv/bin/locust", "--master", "--expect-workers", "2"], "master"),
        (["python", "-m", "harness.cli", "run", "-f", "locustfiles/users.py"], "local"),
        (["python", "-m", "harness.cli", "serve", "--master"], None),
        ([], None),
    ],
)
def test_role_of_command_lines(cmdline: list[str], role: str | None) -> None:
    assert role_of(cmdline) == role


def test_jsonl_writer_appends_complete_lines(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "monitor.jsonl"
    writer = JsonlWriter(path, fsync_every=0.0)
    writer.write({"t": 1.5, "conns": {"ESTABLISHED": 2}, "stats": None})
    assert path.read_bytes().endswith(b"\n")  # flushed before close
    writer.close()
    writer.close()
    again = JsonlWriter(path)
    again.write({"t": 2.5})
    again.close()
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines()]
    assert rows == [{"t": 1.5, "conns": {"ESTABLISHED": 2}, "stats": None}, {"t": 2.5}]


class FlakyAdmin:
    """Fails its first stats call, then answers; counts sessions closed."""

    instances: list[FlakyAdmin] = []

    def __init__(self) -> None:
        self.closed = False
        FlakyAdmin.instances.append(self)

    def stats(self) -> dict[str, str] | None:
        if len(FlakyAdmin.instances) == 1:
            raise ConnectionError("connection reset")
        return {"active_connections": "4"}

    def live_subscriptions(self) -> dict[str, int] | None:
        return None  # a target without a changes counter

    def close(self) -> None:
        self.closed = True


def _wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


@pytest.mark.timeout(10)
def test_stats_poller_reconnects_after_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    FlakyAdmin.instances = []
    poller = StatsPoller(FlakyAdmin, interval=0.05)
    assert poller.latest() == (None, None)
    poller.start()
    try:
        _wait_for(lambda: poller.latest()[0] is not None)
    finally:
        poller.stop()
    assert poller.latest() == ({"active_connections": "4"}, None)
    assert FlakyAdmin.instances[0].closed
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "lqharness monitor: target statistics unavailable: connection reset",
        "lqharness monitor: target statistics available again",
    ]


class FreezingAdmin:
    """Answers until ``freeze`` is set, then blocks until ``release`` is set."""

    def __init__(self) -> None:
        self.freeze = threading.Event()
        self.release = threading.Event()

    def stats(self) -> dict[str, str] | None:
        if self.freeze.is_set():
            self.release.wait(10)
        return {"memory": "1"}

    def live_subscriptions(self) -> dict[str, int] | None:
        return {"a": 1}

    def close(self) -> None:
        pass


@pytest.mark.timeout(10)
def test_stats_turn_null_when_the_target_stalls() -> None:
    admin = FreezingAdmin()
    poller = StatsPoller(lambda: admin, interval=0.05, stale_after=0.3)
    poller.start()
    try:
        _wait_for(lambda: poller.latest() == ({"memory": "1"}, 1))
        admin.freeze.set()
        _wait_for(lambda: poller.latest() == (None, None))
    finally:
        admin.release.set()
        poller.stop()


class FakeClock:
    """The loop's monotonic clock, advanced only by sample costs and by waits that wake up late
    by a known jitter (what a busy scheduler does), so the schedule can be checked exactly."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.jitters = itertools.cycle([0.0, 0.013, 0.004, 0.047, 0.0, 0.021])
        self.late: list[float] = []  # the jitter of each wake-up, in order

    def monotonic(self) -> float:
        return self.now

    def wait(self, seconds: float) -> bool:
        jitter = next(self.jitters)
        self.late.append(jitter)
        self.now += seconds + jitter
        return False  # never stopped


class SlowSampler(ProcessSampler):
    """A real sampler of this process whose every third sample overruns the interval by costing 0.22 s
    of the fake clock; it records when each sample starts and ends on that clock."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(psutil.Process())
        self.clock = clock
        self.calls: list[tuple[float, float, bool]] = []  # (start, end, slow)

    def sample(self) -> dict[str, Any]:
        begin = self.clock.now
        slow = len(self.calls) % 3 == 2
        self.clock.now += 0.22 if slow else 0.002
        record = super().sample()
        self.calls.append((begin, self.clock.now, slow))
        return record


@pytest.mark.timeout(10)
def test_loop_keeps_a_drift_free_schedule_and_skips_missed_ticks(tmp_path: Path, monkeypatch) -> None:
    """Each sample after an on-time one starts on the 0.1 s grid, late by exactly its wake-up's jitter
    (lateness never accumulates); after an overrun the next sample takes the first grid tick after it,
    so exactly the ticks it covered are skipped."""
    clock = FakeClock()
    monkeypatch.setattr(loop, "time", SimpleNamespace(monotonic=clock.monotonic))
    sampler = SlowSampler(clock)
    out = JsonlWriter(tmp_path / "m.jsonl")
    reason = run_monitor(sampler, out, 0.1, SimpleNamespace(wait=clock.wait), duration=2.0)  # type: ignore[arg-type]
    out.close()
    assert reason is StopReason.DURATION
    origin = sampler.calls[0][0]
    ticks = [round((begin - origin) / 0.1) for begin, _, _ in sampler.calls]
    wakes = iter(clock.late)
    for (_, end, slow), (begin, _, _), tick, previous in zip(
        sampler.calls, sampler.calls[1:], ticks[1:], ticks, strict=False
    ):
        late = begin - origin - tick * 0.1
        assert late == pytest.approx(next(wakes), abs=1e-9), f"sample {tick} starts {late * 1000:+.1f} ms off"
        if slow:
            assert tick == math.floor((end - origin) / 0.1) + 1, (previous, tick, end - origin)
        else:
            assert tick == previous + 1, ticks
    assert len(sampler.calls) >= 12 and any(slow for _, _, slow in sampler.calls[:-1])


@pytest.mark.timeout(10)
def test_loop_returns_at_once_when_stopped(tmp_path: Path) -> None:
    out = JsonlWriter(tmp_path / "m.jsonl")
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()
    started = time.monotonic()
    reason = run_monitor(ProcessSampler(psutil.Process()), out, 5.0, stop)
    out.close()
    assert reason is StopReason.STOPPED
    assert time.monotonic() - started < 2.0
