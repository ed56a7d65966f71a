"""The ramp's step record and its rules: what one ``step-<n>`` measured, whether it held the SLO, when to stop.

One definition read by both sides: the Locust coordinator judges each step as it ends to decide
whether the open-ended ramp goes on (``next_move``), and the judge judges the recorded figures
again with its own thresholds (``reports.degradation``), so a re-judged run with other thresholds
classifies its steps by the same rule. Pure: no Locust, no gevent, no I/O.

A step's state:

- ``held``: the SLO held and the generator drove the rate it asked for;
- ``broke``: the server missed the SLO: the delivery or write p95 over its limit, the error ratio
  over its limit, or (with the generator healthy) the writers got less than the asked rate because
  the server's answers came back too slowly (closed-loop writers wait for each answer);
- ``generator``: the step missed the SLO while the generator itself was saturated (event-loop lag
  or CPU over its limit), or fell short of the asked rate without the generator's health known:
  the latencies and the rate it measured are its own as much as the server's, so the step says
  nothing of the server;
- ``server-failed``: not one write succeeded during the step (the server stopped answering).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from typing import Any


class StepState(StrEnum):
    HELD = "held"
    BROKE = "broke"
    GENERATOR = "generator"
    SERVER_FAILED = "server-failed"


class RampStop(StrEnum):
    """Why the ramp stopped (the ``ramp`` phase's ``stop``)."""

    SLO_BROKE = "slo-broke"  # the SLO broke, and the steps past capacity ran
    SERVER_FAILED = "server-failed"
    GENERATOR = "generator-saturated"
    MAX_STEPS = "max-steps"  # every step held the SLO
    MAX_TIME = "max-time"  # the run's time bound came before the next step could run
    LOAD_ENDED = "load-ended"  # the load ended otherwise (Locust stopped the test, the writers ended)


@dataclass(frozen=True, slots=True)
class StepSlo:
    """The thresholds a step is judged by (criteria.toml ``[report]``; the runner hands them to the ramp)."""

    notify_p95_ms: float = 50.0
    write_p95_ms: float = 100.0
    max_error_ratio: float = 0.01
    min_rate_fraction: float = 0.95  # achieved / asked writes per second below this is a shortfall
    # the step's median of the busiest user process's worst event-loop lateness over the last 5 s (LagSampler)
    generator_lag_ms: float = 10.0
    generator_cpu_pct: float = 90.0  # median CPU (% of one core) of the busiest generator process

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> StepSlo:
        """The SLO of criteria.toml's ``[report]`` table."""
        return cls(
            notify_p95_ms=float(report["slo_p95_ms"]),
            write_p95_ms=float(report["slo_write_p95_ms"]),
            max_error_ratio=float(report["slo_max_error_ratio"]),
            min_rate_fraction=float(report["slo_min_rate_fraction"]),
            generator_lag_ms=float(report["generator_lag_ms"]),
            generator_cpu_pct=float(report["generator_cpu_pct"]),
        )

    def describe(self) -> str:
        return (
            f"delivery p95 <= {self.notify_p95_ms:g} ms, write p95 <= {self.write_p95_ms:g} ms, "
            f"errors <= {self.max_error_ratio:.0%}, >= {self.min_rate_fraction:.0%} of the asked rate"
        )


@dataclass(frozen=True, slots=True)
class StepFigures:
    """What one step measured over its measurement window (the step less its settle time).

    Latencies in ms, NaN when nothing was measured; generator figures None when unknown.
    """

    asked: float  # writes/s the step's writers were asked for
    seconds: float  # length of the measurement window
    writes: int  # writes completed in the window (ok or failed)
    failures: int
    write_p95_ms: float
    write_p99_ms: float
    notify: int  # notifications delivered in the window
    notify_p95_ms: float
    notify_p99_ms: float
    generator_lag_ms: float | None = None
    generator_cpu_pct: float | None = None

    @property
    def writes_per_s(self) -> float:
        return self.writes / self.seconds if self.seconds > 0 else 0.0

    @property
    def notify_per_s(self) -> float:
        return self.notify / self.seconds if self.seconds > 0 else 0.0

    @property
    def error_ratio(self) -> float:
        return self.failures / self.writes if self.writes else 0.0

    def to_record(self) -> dict[str, Any]:
        """The figures as a ``step-<n>`` phase's fields (NaN as None, rounded)."""
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if isinstance(value, float):
                value = None if math.isnan(value) else round(value, 3)
            out[key] = value
        out["writes_per_s"] = round(self.writes_per_s, 1)
        out["notify_per_s"] = round(self.notify_per_s, 1)
        out["error_ratio"] = round(self.error_ratio, 6)
        return out

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> StepFigures | None:
        """The figures of a step phase's fields, or None when the phase carries none (an older or interactive run)."""
        values: dict[str, Any] = {f.name: record.get(f.name) for f in fields(cls)}
        if any(values[n] is None for n in ("asked", "seconds", "writes", "failures", "notify")):
            return None

        def ms(name: str) -> float:
            return math.nan if values[name] is None else float(values[name])

        def health(name: str) -> float | None:
            return None if values[name] is None else float(values[name])

        try:
            return cls(
                asked=float(values["asked"]),
                seconds=float(values["seconds"]),
                writes=int(values["writes"]),
                failures=int(values["failures"]),
                write_p95_ms=ms("write_p95_ms"),
                write_p99_ms=ms("write_p99_ms"),
                notify=int(values["notify"]),
                notify_p95_ms=ms("notify_p95_ms"),
                notify_p99_ms=ms("notify_p99_ms"),
                generator_lag_ms=health("generator_lag_ms"),
                generator_cpu_pct=health("generator_cpu_pct"),
            )
        except (TypeError, ValueError):
            return None


def judge_step(fig: StepFigures, slo: StepSlo) -> tuple[StepState, str]:
    """The step's state under ``slo`` and why, in one line.

    As the judge treats a lagging generator elsewhere (criteria.toml ``[generator]``): its lag and CPU only
    matter for a step that would break on latency or rate, since they only add latency and take rate
    away; a step that held, held. Errors are the server's answers, whatever the generator's state.
    """
    if fig.writes - fig.failures <= 0 and fig.asked > 0:
        return StepState.SERVER_FAILED, f"no write succeeded ({fig.writes} completed, {fig.failures} failed)"
    if fig.error_ratio > slo.max_error_ratio:
        return StepState.BROKE, f"errors {fig.error_ratio:.1%} > {slo.max_error_ratio:.0%}"
    broke = []
    if not math.isnan(fig.notify_p95_ms) and fig.notify_p95_ms > slo.notify_p95_ms:
        broke.append(f"delivery p95 {fig.notify_p95_ms:.0f} ms > {slo.notify_p95_ms:g} ms")
    if not math.isnan(fig.write_p95_ms) and fig.write_p95_ms > slo.write_p95_ms:
        broke.append(f"write p95 {fig.write_p95_ms:.0f} ms > {slo.write_p95_ms:g} ms")
    reached = f"{fig.writes_per_s:.0f} of {fig.asked:.0f} writes/s asked"
    short = fig.asked > 0 and fig.writes_per_s < slo.min_rate_fraction * fig.asked
    if short:
        broke.append(reached)
    if not broke:
        return StepState.HELD, reached
    saturated = []
    if fig.generator_lag_ms is not None and fig.generator_lag_ms >= slo.generator_lag_ms:
        saturated.append(f"event-loop lag {fig.generator_lag_ms:.0f} ms >= {slo.generator_lag_ms:g} ms")
    if fig.generator_cpu_pct is not None and fig.generator_cpu_pct >= slo.generator_cpu_pct:
        saturated.append(f"CPU {fig.generator_cpu_pct:.0f}% >= {slo.generator_cpu_pct:g}% of a core")
    if saturated:
        return StepState.GENERATOR, f"{', '.join(broke)}, but the generator was saturated ({', '.join(saturated)})"
    if short and fig.generator_lag_ms is None and fig.generator_cpu_pct is None:
        return StepState.GENERATOR, f"{', '.join(broke)}, and the generator's health is unknown"
    if short:
        broke[-1] = f"{reached}: the server's answers held the writers back"
    return StepState.BROKE, ", ".join(broke)


def next_move(states: list[StepState], max_steps: int, past_capacity_steps: int) -> RampStop | None:
    """Whether the ramp stops after the steps judged so far (``states``, in order), and why; None: go on.

    The ramp grows until the SLO breaks, the server fails or the generator saturates, and at most
    ``max_steps`` steps holding it; after the first break it runs ``past_capacity_steps`` more steps
    (unless the server fails or the generator saturates there) so the report can say how the
    server degraded past capacity.
    """
    if not states:
        return None
    last = states[-1]
    if last is StepState.SERVER_FAILED:
        return RampStop.SERVER_FAILED
    broke_at = next((i for i, s in enumerate(states) if s is StepState.BROKE), None)
    if broke_at is None:
        if last is StepState.GENERATOR:
            return RampStop.GENERATOR
        return RampStop.MAX_STEPS if len(states) >= max_steps else None
    if last is StepState.GENERATOR:
        return RampStop.SLO_BROKE  # past capacity the generator gave out: nothing more to learn
    return RampStop.SLO_BROKE if len(states) - 1 - broke_at >= past_capacity_steps else None
