"""Ramp runs (``plan.extra.ramp``): the step schedule and each step's offered load, as ``step-<n>`` phases.

A ramp is made of ordinary writer streams whose programs begin with a pause of
(step index x step seconds), so every writer id is in the plan and the checker sees every
ledger. This module only names the steps (``step-1`` .. ``step-<steps>``, counted from the
load start) and reports each one's ``users`` (writer streams writing) and ``rate`` (their
summed target inserts/s), computed from the plan's programs rather than trusted from settings.
"""

from __future__ import annotations

import math

from harness.plan import Plan, RampSettings, Step
from locustfiles.phases import PhaseLog


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


class RampClock:
    """Writes each ``step-<n>`` phase to the phase log once it is over, counting from the load start."""

    def __init__(self, plan: Plan, ramp: RampSettings, started_at: float, phases: PhaseLog) -> None:
        self.plan = plan
        self.ramp = ramp
        self.started_at = started_at
        self.phases = phases
        self.written = 0

    def tick(self, now: float, final: bool = False) -> None:
        """Write the steps that ended by ``now``; with ``final`` (the load ended) also the one in progress.

        The last step lasts until the load ends, so it is written only by the final tick.
        """
        while self.written < self.ramp.steps:
            n = self.written
            last = n == self.ramp.steps - 1
            start = self.started_at + n * self.ramp.seconds
            end = start + self.ramp.seconds
            if start >= now or (not final and (end > now or last)):
                return
            if final:
                end = now if last else min(end, now)
            users, rate = offered(self.plan, (n + 0.5) * self.ramp.seconds)
            self.phases.write(f"step-{n + 1}", start, end, users=users, rate=rate)
            self.written += 1
