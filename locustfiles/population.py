"""Which Locust users a plan needs: the extra users' settings from ``plan.extra`` and the total count.

Kept free of Locust and gevent imports, so the runner (an unpatched process) can size
Locust's ``-u`` with :func:`users_needed` from the same numbers the locustfile uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError
from harness.plan import Plan
from locustfiles import ramp

DEFAULT_JOB_TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True, slots=True)
class QuerierSettings:
    """``extra.queriers``: ``count`` QueryUsers, each issuing ``rate`` bounded reads per second while writers run."""

    count: int
    rate: float


@dataclass(frozen=True, slots=True)
class ChurnSettings:
    """``extra.churn``: open ``open`` subscriptions, close ``close`` of them, wait ``settle_seconds``, count again."""

    open: int
    close: int
    settle_seconds: float


@dataclass(frozen=True, slots=True)
class FlushSettings:
    """``extra.flush_every_seconds``: a FlushUser flushing the table that often; jobs polled up to a timeout."""

    every_seconds: float
    job_timeout_seconds: float


def _table(plan: Plan, key: str) -> dict[str, Any] | None:
    raw = plan.extra.get(key)
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise HarnessError(f"scenario {plan.scenario}: {key} must be a table, got {raw!r}")
    return raw


def _number(plan: Plan, label: str, value: Any, minimum: float, integer: bool = False) -> Any:
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if not ok or isinstance(value, bool) or value < minimum:
        kind = "an integer" if integer else "a number"
        raise HarnessError(f"scenario {plan.scenario}: {label} must be {kind} >= {minimum:g}, got {value!r}")
    return int(value) if integer else float(value)


def queriers(plan: Plan) -> QuerierSettings | None:
    """The plan's querier settings, or None when it has none (count 0 counts as none)."""
    raw = _table(plan, "queriers")
    if raw is None:
        return None
    count = _number(plan, "queriers.count", raw.get("count"), 0, integer=True)
    rate = _number(plan, "queriers.rate", raw.get("rate"), 0.001)
    return QuerierSettings(count, rate) if count else None


def churn(plan: Plan) -> ChurnSettings | None:
    """The plan's churn settings, or None when it has none."""
    raw = _table(plan, "churn")
    if raw is None:
        return None
    opened = _number(plan, "churn.open", raw.get("open"), 1, integer=True)
    closed = _number(plan, "churn.close", raw.get("close"), 0, integer=True)
    if closed > opened:
        raise HarnessError(f"scenario {plan.scenario}: churn.close ({closed}) exceeds churn.open ({opened})")
    settle = _number(plan, "churn.settle_seconds", raw.get("settle_seconds", 3.0), 0)
    return ChurnSettings(opened, closed, settle)


def flush(plan: Plan) -> FlushSettings | None:
    """The plan's periodic flush settings, or None when it flushes nothing."""
    every = plan.extra.get("flush_every_seconds")
    if every is None:
        return None
    timeout = plan.extra.get("job_timeout_seconds", DEFAULT_JOB_TIMEOUT_SECONDS)
    return FlushSettings(
        _number(plan, "flush_every_seconds", every, 0.1), _number(plan, "job_timeout_seconds", timeout, 0.1)
    )


def user_counts(plan: Plan) -> dict[str, int]:
    """Locust users per kind: one per listener and writer group, the queriers, one churner, one flusher.

    Also validates every extra-user setting (and the ramp), so a bad scenario fails before Locust starts.
    """
    ramp.settings(plan)
    preload_seconds(plan)
    q = queriers(plan)
    return {
        "listeners": len(plan.listeners),
        "writers": len(plan.writer_groups),
        "queriers": q.count if q else 0,
        "churn": int(churn(plan) is not None),
        "flush": int(flush(plan) is not None),
    }


def preload_seconds(plan: Plan) -> float:
    """``extra.preload_seconds``: how long the server is watched idle, listeners ready, before writers start."""
    return float(_number(plan, "preload_seconds", plan.extra.get("preload_seconds", 0), 0))


def go_timeout(plan: Plan, margin: float) -> float:
    """How long a user waits for the writers' gate: listeners' ready timeout, the preload, ``margin``."""
    return plan.ready_timeout + preload_seconds(plan) + margin


def users_needed(plan: Plan) -> int:
    """Locust ``-u`` for this plan: the sum of :func:`user_counts`."""
    return sum(user_counts(plan).values())
