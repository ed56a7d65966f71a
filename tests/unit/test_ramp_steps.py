"""The open-ended ramp: its schedule, each step's state, when it stops, and the DEGRADATION verdict on recorded steps.

The step rule (``harness.ramp_steps``) is one definition for the coordinator (to stop the ramp)
and the judge (to judge the recorded figures); the DEGRADATION and SC-060 cases run the judge on
synthetic run folders whose ``step-<n>`` phases carry hand-built figures.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import orjson
import pytest

from harness.plan import RampSettings, TargetSpec
from harness.ramp_steps import RampStop, StepFigures, StepSlo, StepState, judge_step, next_move
from harness.scenarios.catalogue import build_plan, ramp_writers, resolve
from locustfiles import ramp
from locustfiles.phases import PhaseLog
from reports.criteria import load_criteria
from reports.judge import RULES, judge_run
from tests.support.synthetic import DEFAULT_PHASES, Synthetic, write_run

SLO = StepSlo()
HELD, BROKE, GEN, FAILED = StepState.HELD, StepState.BROKE, StepState.GENERATOR, StepState.SERVER_FAILED


def figures(asked: float = 200.0, per_s: float | None = None, **kw: Any) -> StepFigures:
    """A 15 s step measurement: ``per_s`` writes/s achieved (default: as asked), healthy, fast, no errors."""
    writes = round((asked if per_s is None else per_s) * 15)
    base: dict[str, Any] = {
        "asked": asked, "seconds": 15.0, "writes": writes, "failures": 0, "write_p95_ms": 8.0,
        "write_p99_ms": 12.0, "notify": writes * 5, "notify_p95_ms": 10.0, "notify_p99_ms": 15.0,
        "generator_lag_ms": 5.0, "generator_cpu_pct": 40.0,
    }  # fmt: skip
    return StepFigures(**{**base, **kw})


# --- one step's state ---------------------------------------------------------------------------


def test_a_step_holds_when_fast_error_free_and_at_the_asked_rate() -> None:
    assert judge_step(figures(per_s=191), SLO) == (HELD, "191 of 200 writes/s asked")  # 95.5% >= 95%


@pytest.mark.parametrize(
    ("kw", "why"),
    [
        ({"notify_p95_ms": 51.0}, "delivery p95 51 ms > 50 ms"),
        ({"write_p95_ms": 101.0}, "write p95 101 ms > 100 ms"),
        ({"failures": 31}, "errors 1.0% > 1%"),  # 31 of 3,000
        ({"writes": 2820}, "188 of 200 writes/s asked: the server's answers held the writers back"),
    ],
)
def test_a_step_breaks_on_latency_errors_or_a_shortfall_with_a_healthy_generator(kw: dict[str, Any], why: str) -> None:
    assert judge_step(figures(**kw), SLO) == (BROKE, why)


def test_a_saturated_generator_makes_a_missed_slo_its_own_and_a_held_one_stands() -> None:
    state, why = judge_step(figures(notify_p95_ms=300.0, generator_lag_ms=10.0), SLO)
    assert (
        state is GEN
        and why == "delivery p95 300 ms > 50 ms, but the generator was saturated (event-loop lag 10 ms >= 10 ms)"
    )
    state, why = judge_step(figures(per_s=100, generator_cpu_pct=95.0), SLO)
    assert state is GEN and why.endswith("(CPU 95% >= 90% of a core)") and why.startswith("100 of 200 writes/s")
    # the lag only adds latency and takes rate away: a step that held anyway held
    assert judge_step(figures(generator_lag_ms=80.0, generator_cpu_pct=99.0), SLO)[0] is HELD
    # a shortfall without the generator's health known cannot be the server's
    unknown = figures(per_s=100, generator_lag_ms=None, generator_cpu_pct=None)
    assert judge_step(unknown, SLO) == (GEN, "100 of 200 writes/s asked, and the generator's health is unknown")


def test_errors_are_the_servers_whatever_the_generator_and_no_success_is_a_failed_server() -> None:
    assert judge_step(figures(failures=600, generator_lag_ms=500.0), SLO)[0] is BROKE
    assert judge_step(figures(failures=3000), SLO) == (FAILED, "no write succeeded (3000 completed, 3000 failed)")
    assert judge_step(figures(writes=0, notify=0), SLO)[0] is FAILED


def test_step_figures_survive_the_phase_record() -> None:
    fig = figures(notify_p95_ms=math.nan, generator_cpu_pct=None)
    back = StepFigures.from_record(orjson.loads(orjson.dumps(fig.to_record())))
    assert back is not None and math.isnan(back.notify_p95_ms) and back.generator_cpu_pct is None
    assert back.writes == fig.writes and back.writes_per_s == pytest.approx(200.0)
    assert StepFigures.from_record({"users": 4, "rate": 400}) is None  # an interactive step: no figures


def test_the_coordinator_stops_by_the_judges_default_slo() -> None:
    assert StepSlo() == StepSlo.from_report(load_criteria(None)["report"])


# --- when the ramp stops ------------------------------------------------------------------------


def test_the_ramp_goes_on_while_the_slo_holds_and_stops_at_max_steps() -> None:
    assert next_move([], 5, 2) is None
    assert next_move([HELD] * 4, 5, 2) is None
    assert next_move([HELD] * 5, 5, 2) is RampStop.MAX_STEPS


def test_past_the_first_break_the_ramp_runs_its_past_capacity_steps_then_stops() -> None:
    assert next_move([HELD, HELD, HELD, BROKE], 10, 2) is None
    assert next_move([HELD, HELD, HELD, BROKE, BROKE], 10, 2) is None
    assert next_move([HELD, HELD, HELD, BROKE, BROKE, HELD], 10, 2) is RampStop.SLO_BROKE
    assert next_move([HELD, BROKE], 10, 0) is RampStop.SLO_BROKE
    # the steps past capacity run even when the break came at the last step that may hold the SLO
    assert next_move([HELD, HELD, BROKE], 3, 1) is None


def test_a_failed_server_or_a_saturated_generator_stops_the_ramp_at_once() -> None:
    assert next_move([HELD, FAILED], 10, 2) is RampStop.SERVER_FAILED
    assert next_move([HELD, BROKE, FAILED], 10, 2) is RampStop.SERVER_FAILED
    assert next_move([HELD, HELD, GEN], 10, 2) is RampStop.GENERATOR
    assert next_move([HELD, BROKE, GEN], 10, 2) is RampStop.SLO_BROKE  # capacity found; beyond unmeasured


# --- the schedule ---------------------------------------------------------------------------------


def test_writers_grow_geometrically_and_always_by_one_at_least() -> None:
    settings = RampSettings(max_steps=10, seconds=20, writers=2, growth=1.5, rate_per_writer=100)
    assert [settings.writers_at(k) for k in range(settings.planned_steps)] == [
        2, 3, 4, 7, 10, 15, 23, 34, 51, 77, 115, 173,
    ]  # fmt: skip
    slow = RampSettings(max_steps=3, seconds=5, writers=1, growth=1.1, rate_per_writer=10)
    assert [slow.writers_at(k) for k in range(4)] == [1, 2, 3, 4]


def test_ramp_writers_start_one_step_after_another_and_run_to_the_last_planned_step() -> None:
    settings = RampSettings(max_steps=2, seconds=10, writers=1, growth=2, rate_per_writer=50, past_capacity_steps=1)
    writers = ramp_writers(settings, 5)
    assert [w.writer_id for w in writers] == [5, 6, 7, 8]
    assert [[(s.op, s.seconds) for s in w.program] for w in writers] == [
        [("insert", 30.0)], [("pause", 10.0), ("insert", 20.0)],
        [("pause", 20.0), ("insert", 10.0)], [("pause", 20.0), ("insert", 10.0)],
    ]  # fmt: skip


@pytest.mark.parametrize("quick", [True, False])
def test_the_catalogue_degradation_plan_offers_each_steps_rate(quick: bool) -> None:
    (scenario,) = resolve(["stress.degradation"], RULES)
    plan = build_plan(scenario, quick=quick, target=TargetSpec("kalamdb", "http://x", "u", "p"), run_id="r", run_dir="")
    settings = plan.extra.ramp
    assert settings is not None and len(plan.writer_groups) == len(plan.writers)
    for k in range(settings.planned_steps):
        users, rate = ramp.offered(plan, (k + 0.5) * settings.seconds)
        assert users == settings.writers_at(k) and rate == users * settings.rate_per_writer
    # the full ramp may run all its steps inside the run's time bound
    assert settings.planned_steps * settings.seconds < plan.extra.max_seconds


# --- the coordinator's controller ---------------------------------------------------------------


class FakeMeter:
    """Counts that grow at the rate a test sets, with latencies and the generator's health it sets."""

    def __init__(self) -> None:
        self.writes = self.failures = self.notify = 0
        self.write_ms, self.notify_ms = 8, 10
        self.health: tuple[float | None, float | None] = (5.0, 40.0)

    def run(self, seconds: float, writes_per_s: float) -> None:
        self.writes += round(seconds * writes_per_s)
        self.notify += round(seconds * writes_per_s)

    def counts(self, request_type: str) -> ramp.Counts:
        n = self.writes if request_type == ramp.WRITE_TYPE else self.notify
        ms = self.write_ms if request_type == ramp.WRITE_TYPE else self.notify_ms
        return ramp.Counts(n, self.failures if request_type == ramp.WRITE_TYPE else 0, {ms: n} if n else {})

    def generator(self) -> tuple[float | None, float | None]:
        return self.health


def _controller(tmp_path: Path, deadline: float = 1e9) -> tuple[ramp.RampController, FakeMeter, PhaseLog]:
    (scenario,) = resolve(["stress.degradation"], RULES)
    plan = build_plan(scenario, quick=False, target=TargetSpec("kalamdb", "http://x", "u", "p"), run_id="r", run_dir="")
    assert plan.extra.ramp is not None
    meter, log = FakeMeter(), PhaseLog(str(tmp_path))
    return ramp.RampController(plan, plan.extra.ramp, 1000.0, log, meter, deadline), meter, log


def _drive(controller: ramp.RampController, meter: FakeMeter, until: float, rate: Any, slow_from: int = 99) -> None:
    """Tick every 0.5 s from the ramp's start to ``until``, the server taking ``rate(step)`` writes/s."""
    t = controller.started_at
    while t < until and controller.stop is None:
        step = controller.step
        if step >= slow_from:
            meter.notify_ms = 80
        meter.run(0.5, rate(step))
        t += 0.5
        controller.tick(t)


def test_the_controller_records_each_step_and_stops_two_steps_past_the_break(tmp_path: Path) -> None:
    controller, meter, log = _controller(tmp_path)
    asked = [200.0, 300.0, 400.0, 700.0, 1000.0, 1500.0]
    _drive(controller, meter, 1000.0 + 20 * 12, lambda k: asked[k] if k < len(asked) else 1500.0, slow_from=3)
    assert controller.stop is RampStop.SLO_BROKE and controller.states == [HELD, HELD, HELD, BROKE, BROKE, BROKE]
    controller.finish(controller.stopped_at or 0.0)
    steps = [p for p in log.written if p["name"].startswith("step-")]
    assert [p["name"] for p in steps] == [f"step-{n}" for n in range(1, 7)]
    one, four = steps[0], steps[3]
    assert (one["start"], one["end"], one["measured_from"]) == (1000.0, 1020.0, 1005.0)  # 5 s settle
    assert one["writes_per_s"] == pytest.approx(200.0) and one["state"] == "held" and not one["past_capacity"]
    assert four["state"] == "broke" and four["why"] == "delivery p95 80 ms > 50 ms" and not four["past_capacity"]
    assert steps[4]["past_capacity"] and steps[5]["past_capacity"]
    (end,) = [p for p in log.written if p["name"] == "ramp"]
    assert end["stop"] == "slo-broke" and end["steps"] == 6 and end["slo"]["notify_p95_ms"] == 50.0


def test_the_controller_stops_when_the_generator_saturates_or_time_runs_out(tmp_path: Path) -> None:
    controller, meter, log = _controller(tmp_path / "gen")
    _drive(controller, meter, 1000.0 + 45, lambda k: 200.0 * 1.5**k)
    meter.health, meter.notify_ms = (15.0, 60.0), 70  # slower deliveries, with the generator lagging
    _drive(controller, meter, 1000.0 + 300, lambda k: 200.0 * 1.5**k)
    assert controller.stop is RampStop.GENERATOR and controller.states == [HELD, HELD, GEN]
    timed, meter, log = _controller(tmp_path / "time", deadline=1000.0 + 50)
    _drive(timed, meter, 1000.0 + 300, lambda k: [200.0, 300.0, 400.0][k])
    assert timed.stop is RampStop.MAX_TIME and len(timed.states) == 2  # step 3 would end past the deadline


# --- the DEGRADATION and SC-060 verdicts on recorded steps ---------------------------------------


def _ramp_run(tmp_path: Path, steps: list[StepFigures], stop: str, **kwargs: Any) -> dict[str, Any]:
    """Judge a synthetic ramp run whose steps carry ``steps``' figures (20 s each from +10 s); the verdicts by id."""
    phases = list(DEFAULT_PHASES[:2])
    start, states = 10.0, []
    for i, fig in enumerate(steps):
        state, why = judge_step(fig, SLO)
        phases.append(
            (
                f"step-{i + 1}", start, start + 20, {"users": i + 2, "rate": fig.asked, **fig.to_record(),
                "state": state.value, "why": why, "past_capacity": BROKE in states},
            )
        )  # fmt: skip
        states.append(state)
        start += 20
    phases += [("ramp", 10.0, start, {"stop": stop}), ("load", 10.0, start, {}), ("drain", start, start + 5, {})]
    run_dir = write_run(tmp_path, Synthetic(criteria=["SC-060", "DEGRADATION"], phases=phases, **kwargs))
    judge_run(run_dir, None, quiet=True, report=False)
    document = orjson.loads((run_dir / "verdict.json").read_bytes())
    return {c["id"]: c for c in document["scenarios"][0]["criteria"]}


RATES = [200.0, 300.0, 400.0, 700.0, 1000.0, 1500.0]


def test_the_slo_breaking_at_step_4_gives_step_3s_rate_as_the_capacity(tmp_path: Path) -> None:
    steps = [figures(a) for a in RATES[:3]]
    steps += [figures(700, 640, write_p95_ms=30.0, notify_p95_ms=70.0), figures(1000, 650, write_p95_ms=60.0)]
    steps += [figures(1500, 660, write_p95_ms=120.0, notify_p95_ms=400.0)]
    found = _ramp_run(tmp_path, steps, "slo-broke")["DEGRADATION"]
    assert found["verdict"] == "pass", found["evidence"]
    assert found["value"]["capacity_writes_per_s"] == pytest.approx(400.0) and found["value"]["first_break"] == "step-4"
    assert found["evidence"].startswith(
        "capacity = 400 writes/s (step-3, the last step whose SLO held); the SLO broke at step-4 (delivery p95 "
        "70 ms > 50 ms, 640 of 700 writes/s asked: the server's answers held the writers back); past it: slower "
        "answers (write p95 30 -> 60 -> 120 ms, delivery p95 70 -> 10 -> 400 ms, throughput 640 -> 650 -> 660 "
        "writes/s, no errors"
    )


def test_errors_past_capacity_are_degradation_not_an_sc060_failure(tmp_path: Path) -> None:
    steps = [figures(a) for a in RATES[:3]] + [figures(700, 690, failures=600), figures(1000, 700, failures=3000)]
    found = _ramp_run(tmp_path, steps, "slo-broke")
    assert found["DEGRADATION"]["verdict"] == "pass" and "errors (" in found["DEGRADATION"]["evidence"]
    assert "errors up to 28.6%" in found["DEGRADATION"]["evidence"]
    # the synthetic history has no failure: what matters is that SC-060 leaves out the steps past capacity
    assert found["SC-060"]["verdict"] == "pass" and "past it (step-5" in found["SC-060"]["evidence"]


def test_a_generator_that_saturated_first_leaves_capacity_unknown(tmp_path: Path) -> None:
    steps = [figures(a) for a in RATES[:3]] + [figures(700, 500, generator_cpu_pct=97.0)]
    found = _ramp_run(tmp_path, steps, "generator-saturated")["DEGRADATION"]
    assert found["verdict"] == "inconclusive" and found["value"]["capacity_writes_per_s"] is None
    assert found["evidence"].startswith(
        "the ramp stopped before the server reached capacity: 500 of 700 writes/s asked, but the generator was "
        "saturated (CPU 97% >= 90% of a core) at step-4"
    )
    assert "the generator's as much as the server's; capacity >= 400 writes/s;" in found["evidence"]


def test_a_ramp_that_stops_at_its_first_step_says_why(tmp_path: Path) -> None:
    lagging = _ramp_run(tmp_path / "gen", [figures(200, 150, generator_lag_ms=30.0)], "generator-saturated")
    assert lagging["DEGRADATION"]["verdict"] == "inconclusive"
    assert "150 of 200 writes/s asked, but the generator was saturated" in lagging["DEGRADATION"]["evidence"]
    one = _ramp_run(tmp_path / "one", [figures(200)], "load-ended")["DEGRADATION"]
    assert one["verdict"] == "inconclusive" and one["evidence"].startswith("only 1 ramp step(s) measured (need 2)")


def test_max_steps_with_the_slo_holding_is_inconclusive_with_a_lower_bound(tmp_path: Path) -> None:
    found = _ramp_run(tmp_path, [figures(a) for a in RATES], "max-steps")["DEGRADATION"]
    assert found["verdict"] == "inconclusive" and found["value"]["held_writes_per_s"] == pytest.approx(1500.0)
    assert found["evidence"].startswith(
        "the ramp reached its last step with the SLO holding, before the server reached capacity: "
        "capacity >= 1500 writes/s"
    )


def test_a_break_at_the_first_step_measures_no_capacity(tmp_path: Path) -> None:
    found = _ramp_run(tmp_path, [figures(200, notify_p95_ms=90.0), figures(300)], "slo-broke")["DEGRADATION"]
    assert found["verdict"] == "inconclusive" and "the SLO broke at the first step (step-1" in found["evidence"]


def test_a_server_that_stops_serving_or_crashes_fails(tmp_path: Path) -> None:
    steps = [figures(a) for a in RATES[:3]] + [figures(700, 0, writes=0, notify=0)]
    found = _ramp_run(tmp_path / "failed", steps, "server-failed")["DEGRADATION"]
    assert found["verdict"] == "fail" and found["evidence"].startswith("the server stopped serving writes at step-4")
    steps = [figures(a) for a in RATES[:3]] + [figures(700, 600, notify_p95_ms=90.0), figures(1000, 600)]
    crashed = _ramp_run(tmp_path / "crash", steps, "slo-broke", crash_at=95.0)
    assert crashed["DEGRADATION"]["verdict"] == "fail" and crashed["SC-060"]["verdict"] == "fail"
    assert "during or after step-5 (past capacity)" in crashed["DEGRADATION"]["evidence"]
    unresponsive = _ramp_run(
        tmp_path / "stall", steps, "load-ended", status="target_unresponsive", error="no answer for 31 s (limit 30 s)"
    )["DEGRADATION"]
    assert unresponsive["verdict"] == "fail"
    assert unresponsive["evidence"] == (
        "the server stopped answering during the ramp during or after step-5 (past capacity): no answer for 31 s "
        "(limit 30 s)"
    )
