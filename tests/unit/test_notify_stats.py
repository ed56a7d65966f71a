"""NOTIFY samples added to Locust's statistics in batches give the figures one event per sample gives."""

from __future__ import annotations

import random
from typing import Any

import pytest
from locust import User
from locust import stats as locust_stats
from locust.env import Environment

from locustfiles import notify as notify_module
from locustfiles.notify import NotifyStats


class _Idle(User):
    abstract = True


class _Clock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


def _environment() -> Any:
    env = Environment(user_classes=[_Idle])  # events of its own: two environments must not share the hook
    env.create_local_runner()
    return env


FIELDS = (
    "num_requests",
    "num_failures",
    "total_response_time",
    "min_response_time",
    "max_response_time",
    "total_content_length",
    "response_times",
    "num_reqs_per_sec",
    "last_request_timestamp",
)


def _figures(entry: Any) -> dict[str, Any]:
    out = {k: getattr(entry, k) for k in FIELDS}
    out["response_times"] = dict(entry.response_times)
    out["num_reqs_per_sec"] = dict(entry.num_reqs_per_sec)
    out["total_response_time"] = round(entry.total_response_time, 3)  # a float sum: the order of additions differs
    out["percentiles"] = [entry.get_response_time_percentile(q) for q in (0.5, 0.95, 0.99, 1.0)]
    return out


def test_batched_statistics_equal_one_event_per_notification(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock(1_800_000_000.0)
    monkeypatch.setattr(locust_stats.time, "time", clock)
    monkeypatch.setattr(notify_module.time, "time", clock)
    rng = random.Random(7)
    samples = [
        (rng.choice(("insert", "update", "delete")), rng.choice((0.0, rng.uniform(0, 50_000))), rng.randint(1, 900))
        for _ in range(3000)
    ]
    per_event, batched = _environment(), _environment()
    batcher = NotifyStats(batched, timer=False)
    for name, latency, length in samples:
        clock.now += rng.uniform(0, 0.004)  # about 3000 samples over 6 s: batches end at flushes and at seconds
        per_event.events.request.fire(
            request_type="NOTIFY", name=name, response_time=latency, response_length=length, exception=None, context={}
        )
        batcher.add(name, latency, length)
    batcher.flush()
    assert batcher.pending() == 0
    for name in ("insert", "update", "delete"):
        assert _figures(batched.stats.get(name, "NOTIFY")) == _figures(per_event.stats.get(name, "NOTIFY"))
    assert _figures(batched.stats.total) == _figures(per_event.stats.total)


def test_a_batch_is_added_once_its_time_is_up(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = _Clock(1_800_000_000.0)
    monkeypatch.setattr(notify_module.time, "time", clock)
    env = _environment()
    batcher = NotifyStats(env, flush_seconds=0.2, timer=False)
    batcher.add("insert", 1.5, 10)
    batcher.add("insert", 2.5, 10)
    assert env.stats.total.num_requests == 0 and batcher.pending() == 2
    clock.now += 0.25
    batcher.add("insert", 3.5, 10)  # past the flush interval: the earlier two are added first
    assert env.stats.total.num_requests == 2 and batcher.pending() == 1


def test_failures_are_request_events_with_their_error() -> None:
    env = _environment()
    batcher = NotifyStats(env, timer=False)
    batcher.failure("insert", 4.0, 100, RuntimeError("duplicate"))
    entry = env.stats.get("insert", "NOTIFY")
    assert entry.num_requests == 1 and entry.num_failures == 1
    assert [repr(e.error) for e in env.stats.errors.values()] == ["RuntimeError('duplicate')"]


def test_one_batcher_per_environment() -> None:
    env = _environment()
    first = NotifyStats.of(env)
    try:
        assert NotifyStats.of(env) is first
        assert NotifyStats.of(_environment()) is not first
    finally:
        first.close()
