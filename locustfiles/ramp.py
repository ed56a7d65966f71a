"""Ramp runs (``plan.extra.ramp``): the open-ended step load, measured and stopped as it runs.

A ramp is made of ordinary writer streams whose programs begin with a pause of (step index x
step seconds) (``harness.scenarios.catalogue.ramp_writers``), so every writer id is in the plan and
the checker sees every ledger. On the coordinator, ``RampController`` follows the steps
(``step-1``, ``step-2`` ... counted from the load start): it measures each one from Locust's own
statistics after its settle time (writes, failures, write and delivery percentiles) and from the
generator's health (event-loop lag, CPU), writes it as a ``step-<n>`` phase with ``users`` and
``rate`` (computed from the plan's programs, not trusted from settings), judges it
(``harness.ramp_steps.judge_step``) and decides whether the ramp goes on (``next_move``). When it
stops, the coordinator ends the load; the ``ramp`` phase says why it stopped.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import psutil
from locust.stats import calculate_response_time_percentile, diff_response_time_dicts

from harness.plan import Plan, RampSettings, Step
from harness.ramp_steps import RampStop, StepFigures, StepState, judge_step, next_move
from locustfiles.phases import PhaseLog

WRITE_TYPE = "SQL"
NOTIFY_TYPE = "NOTIFY"
SAMPLE_SECONDS = 1.0  # how often the generator's health is sampled during a step's measurement


def _duration(step: Step) -> float:
    if step.seconds is not None:
        return step.seconds
    if step.op == "pause":
        return 0.0
    if step.count is not None and step.rate:
        return step.count / step.rate
    return math.inf


def rate_at(program: tuple[Step, ...], offset: float) -> float | None:
    """Target rate of the writing step in force ``offset`` s after the program starts; None while paused or done.

    A step bounded only by count takes count/rate seconds; an unpaced one counts as rate 0.
    """
    t = 0.0
    for step in program:
        duration = _duration(step)
        if offset < t + duration:
            return None if step.op == "pause" else float(step.rate or 0.0)
        t += duration
    return None


def offered(plan: Plan, offset: float) -> tuple[int, float]:
    """(writer streams writing, their summed target rate) ``offset`` s after the load starts."""
    rates = [r for w in plan.writers if (r := rate_at(w.program, offset)) is not None]
    return len(rates), sum(rates)


@dataclass(frozen=True, slots=True)
class Counts:
    """Cumulative Locust figures of one request type at one moment: requests, failures, response times (ms)."""

    requests: int
    failures: int
    times: dict[int, int]

    def since(self, before: Counts) -> Counts:
        return Counts(
            self.requests - before.requests,
            self.failures - before.failures,
            diff_response_time_dicts(self.times, before.times),
        )

    def percentile(self, fraction: float) -> float:
        total = sum(self.times.values())
        return float(calculate_response_time_percentile(self.times, total, fraction)) if total else math.nan


class Meter(Protocol):
    """What the controller reads: cumulative counts per request type, and the generator's health now."""

    def counts(self, request_type: str) -> Counts: ...

    def generator(self) -> tuple[float | None, float | None]:
        """(event-loop lag in ms, CPU in % of a core) of the busiest process that runs users; None: unknown."""
        ...


class LocustMeter:
    """A ``Meter`` over this Locust runner's statistics (the master's, aggregated from the workers'
    reports, which arrive every few seconds: the settle time keeps a step's window clear of the previous
    step) and the lag and CPU of the processes that run the users."""

    def __init__(self, runner: Any, local_lag: Callable[[], float] | None, worker_lag: dict[str, float]) -> None:
        self.runner = runner
        self.local_lag = local_lag  # this process's lag, when its users run here (in-process)
        self.worker_lag = worker_lag  # each worker's last reported lag (master)
        self._process = psutil.Process()
        self._process.cpu_percent(interval=None)  # the first call only starts the count

    def counts(self, request_type: str) -> Counts:
        requests = failures = 0
        times: dict[int, int] = {}
        for (_, method), entry in list(self.runner.stats.entries.items()):
            if method != request_type:
                continue
            requests += entry.num_requests
            failures += entry.num_failures
            for ms, n in entry.response_times.items():
                times[ms] = times.get(ms, 0) + n
        return Counts(requests, failures, times)

    def generator(self) -> tuple[float | None, float | None]:
        clients = getattr(self.runner, "clients", None)
        if clients is not None:  # a master: its workers run the users
            # a worker's CPU is 0 until its first measurement (Locust takes one every 5 s): not a figure yet
            cpus = [float(c.cpu_usage) for c in clients.values() if c.cpu_usage]
            lags = list(self.worker_lag.values())
            return (max(lags) if lags else None), (max(cpus) if cpus else None)
        lag = self.local_lag() if self.local_lag is not None else None
        return lag, self._process.cpu_percent(interval=None)  # since the last call (Locust's own is 5 s old)


class RampController:
    """Measures, records and judges each ramp step as it ends, and decides when the ramp stops.

    ``tick(now)`` is called often (the coordinator's poll); ``stop`` is set once the ramp is over,
    and the coordinator then ends the load and calls ``finish``.
    """

    def __init__(
        self, plan: Plan, ramp: RampSettings, started_at: float, phases: PhaseLog, meter: Meter, deadline: float
    ) -> None:
        self.plan = plan
        self.ramp = ramp
        self.started_at = started_at
        self.phases = phases
        self.meter = meter
        self.deadline = deadline  # unix time by which the load must end (the run's time bound less its end)
        self.states: list[StepState] = []
        self.stop: RampStop | None = None
        self.stopped_at: float | None = None
        self._mark: tuple[float, Counts, Counts] | None = None  # (time, writes, notifications) after the settle
        self._health: list[tuple[float | None, float | None]] = []
        self._next_sample = 0.0
        self._finished = False

    @property
    def step(self) -> int:
        """The step in progress (0-based)."""
        return len(self.states)

    def _start(self, step: int) -> float:
        return self.started_at + step * self.ramp.seconds

    def tick(self, now: float) -> None:
        """Take the settle mark, sample the generator, or close the step in progress, as ``now`` calls for."""
        if self.stop is not None:
            return
        start = self._start(self.step)
        if self._mark is None and now >= start + self.ramp.settle_seconds:
            self._mark = (now, self.meter.counts(WRITE_TYPE), self.meter.counts(NOTIFY_TYPE))
            self._health, self._next_sample = [], now
        if self._mark is not None and now >= self._next_sample:
            self._health.append(self.meter.generator())
            self._next_sample = now + SAMPLE_SECONDS
        if now >= start + self.ramp.seconds and self._mark is not None:
            self._close(start, now)

    def _close(self, start: float, now: float) -> None:
        assert self._mark is not None
        marked_at, writes0, notify0 = self._mark
        writes, notify = self.meter.counts(WRITE_TYPE).since(writes0), self.meter.counts(NOTIFY_TYPE).since(notify0)
        users, rate = offered(self.plan, (self.step + 0.5) * self.ramp.seconds)
        lags = [lag for lag, _ in self._health if lag is not None]
        cpus = [cpu for _, cpu in self._health if cpu is not None]
        figures = StepFigures(
            asked=rate,
            seconds=now - marked_at,
            writes=writes.requests,
            failures=writes.failures,
            write_p95_ms=writes.percentile(0.95),
            write_p99_ms=writes.percentile(0.99),
            notify=notify.requests,
            notify_p95_ms=notify.percentile(0.95),
            notify_p99_ms=notify.percentile(0.99),
            generator_lag_ms=statistics.median(lags) if lags else None,
            generator_cpu_pct=statistics.median(cpus) if cpus else None,
        )
        state, why = judge_step(figures, self.ramp.slo)
        past = any(s is StepState.BROKE for s in self.states)
        self.phases.write(
            f"step-{self.step + 1}", start, start + self.ramp.seconds, users=users, rate=rate, measured_from=marked_at,
            **figures.to_record(), state=state.value, why=why, past_capacity=past,
        )  # fmt: skip
        self.states.append(state)
        self._mark = None
        stop = next_move(self.states, self.ramp.max_steps, self.ramp.past_capacity_steps)
        if stop is None and self.step >= self.ramp.planned_steps:
            stop = RampStop.MAX_STEPS
        if stop is None and self._start(self.step + 1) > self.deadline:
            stop = RampStop.MAX_TIME
        if stop is not None:
            self.stop, self.stopped_at = stop, now

    def finish(self, now: float) -> None:
        """The load ended: write the ``ramp`` phase with why it stopped (once). A step cut short is not recorded."""
        if self._finished:
            return
        self._finished = True
        self.tick(now)  # a step whose end the load reached (writers whose programs end with it) is closed
        stop = self.stop or (RampStop.MAX_TIME if now >= self.deadline else RampStop.LOAD_ENDED)
        self.phases.write(
            "ramp", self.started_at, self.stopped_at or now, stop=stop.value, steps=len(self.states),
            max_steps=self.ramp.max_steps, past_capacity_steps=self.ramp.past_capacity_steps,
            slo=asdict(self.ramp.slo),
        )  # fmt: skip


def unix_deadline(monotonic_deadline: float) -> float:
    """A ``time.monotonic()`` deadline as unix time."""
    return time.time() + (monotonic_deadline - time.monotonic())
