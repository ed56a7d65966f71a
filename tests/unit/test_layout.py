"""The runner's process layout: a plan one Locust process cannot hold is spread over workers, and said so."""

from __future__ import annotations

from harness.orchestration.layout import DEFAULT, advise, load_of
from harness.plan import Plan, TargetSpec
from harness.scenarios.catalogue import build_plan, resolve
from reports.judge import RULES

TARGET = TargetSpec("kalamdb", "http://127.0.0.1:1", "root", "pw")


def _plan(name: str, quick: bool = True) -> Plan:
    return build_plan(resolve([name], RULES)[0], quick=quick, target=TARGET, run_id="r", run_dir="/tmp/r")


def test_a_light_plan_stays_in_one_process() -> None:
    assert advise(_plan("live.inserts"), 0, 2).workers == 0 and not advise(_plan("live.inserts"), 0, 2).notes


def test_notifications_count_each_writer_once_per_listener_that_sees_it() -> None:
    writes, notifications, listeners = load_of(_plan("stress.writers-listeners"))
    assert listeners == 20 and notifications == writes * 20


def test_a_heavy_plan_is_spread_and_the_runner_says_why() -> None:
    plan = _plan("stress.degradation", quick=False)
    assert load_of(plan)[1] > DEFAULT.notifications
    layout = advise(plan, 0, 8)
    assert layout.workers >= 2 and "spreading the users over" in layout.notes[0]


def test_a_machine_with_too_few_cores_is_named() -> None:
    layout = advise(_plan("stress.degradation", quick=False), 0, 2)
    assert layout.workers == 2 and any("this machine has 2 cores" in n for n in layout.notes)


def test_an_explicit_worker_count_is_kept_and_a_short_one_is_named() -> None:
    plan = _plan("stress.degradation", quick=False)
    short = advise(plan, 1, 8)
    assert short.workers == 1 and "the plan needs" in short.notes[0]
    assert advise(_plan("live.inserts"), 3, 8) == advise(_plan("live.inserts"), 3, 8)
    assert advise(_plan("live.inserts"), 3, 8).workers == 3
