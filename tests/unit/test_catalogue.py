"""The scenario catalogue: strict keys and criterion ids at load time, typed extras, one time-bound default."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.orchestration.runner import _run_time_bound
from harness.plan import (
    MAX_SECONDS,
    QUICK_MAX_SECONDS,
    ChurnSettings,
    Extras,
    FlushSettings,
    QuerierSettings,
    RampSettings,
    TargetSpec,
    load_plan,
)
from harness.scenarios.catalogue import build_plan, catalogue, parse_catalogue, resolve
from reports.judge import RULES

TARGET = TargetSpec("kalamdb", "http://127.0.0.1:1", "root", "pw")
GOOD = """
[defaults]
criteria = ["SC-051"]
[scenario."t.one"]
title = "one"
writers = [{ program = [{ op = "insert", count = 1 }], quick = { program = [{ op = "insert", count = 1 }] } }]
listeners = [{ reconnect = { after_changes = 1, away_seconds = 0.5 } }]
"""


def test_the_shipped_catalogue_loads_with_the_judges_criteria() -> None:
    scenarios = catalogue(RULES)
    assert {s.group for s in scenarios.values()} == {"live", "stress", "nemesis"}
    assert all(set(s.criteria) <= set(RULES) for s in scenarios.values())


def test_a_good_file_loads() -> None:
    (scenario,) = parse_catalogue(GOOD, "t.toml", RULES).values()
    assert scenario.criteria == ("SC-051",) and scenario.extras(quick=False) == Extras()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ('flush_every_second = 2\n', "unknown key 'flush_every_second'"),
        ('quick = { max_second = 2 }\n', "unknown key 'max_second'"),
        ('criteria = ["SC-051", "SC-999"]\n', "unknown criterion 'SC-999'"),
        ('criteria = "SC-051"\n', "criteria must be a list"),
        ('ramp = { max_steps = 2, seconds = 1, writers = 1, growth = 2, rate_per_writer = 1, p95_slo_ms = 50 }\n',
         "unknown key 'p95_slo_ms'"),
        ('ramp = { max_steps = 2, seconds = 1, writers = 1, growth = 1, rate_per_writer = 1 }\n',
         "growth must be above 1"),
        ('ramp = { max_steps = 2, seconds = 3, writers = 1, growth = 2, rate_per_writer = 1, settle_seconds = 3 }\n',
         "settle_seconds"),
        ('churn = { open = 2, close = 1, settle = 1 }\n', "unknown key 'settle'"),
        ('server_args = "--fault x"\n', "server_args must be a list of strings"),
        ('max_seconds = 0\n', "max_seconds must be a number >= 1"),
        ('expected = "many"\n', "expected must be an integer"),
    ],
)  # fmt: skip
def test_a_bad_scenario_is_a_one_line_error_at_load(change: str, words: str) -> None:
    with pytest.raises(HarnessError, match=words) as caught:
        parse_catalogue(GOOD + change, "t.toml", RULES)
    assert "\n" not in str(caught.value) and "t.one" in str(caught.value)


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ('count = 1 }], quick', 'cuont = 1 }], quick', "writer 1 step 1: unknown key 'cuont'"),
        ("quick = { program", "quick = { progam", "writer 1 quick: unknown key 'progam'"),
        ("listeners = [{ reconnect", "listeners = [{ conversaton = 1, reconnect", "listener 1: unknown key"),
        ("away_seconds", "away_secs", "reconnect: unknown key 'away_secs'"),
        ('[scenario."t.one"]', 'titel = "x"\n[scenario."t.one"]', "defaults: unknown key 'titel'"),
        ('op = "insert", count = 1 }], quick', 'op = "bump", count = 1 }], quick', "a bump step needs rows"),
        ('op = "insert", count = 1 }], quick', 'op = "bump", rows = 0 }], quick', "rows must be an integer >= 1"),
    ],
)  # fmt: skip
def test_writer_listener_and_step_keys_are_checked(old: str, new: str, words: str) -> None:
    with pytest.raises(HarnessError, match=words):
        parse_catalogue(GOOD.replace(old, new, 1), "t.toml", RULES)


def test_extras_are_typed_for_each_profile() -> None:
    text = GOOD + (
        "queriers = { count = 2, rate = 5 }\nchurn = { open = 4, close = 2 }\nflush_every_seconds = 10\n"
        "ramp = { max_steps = 2, seconds = 3, writers = 1, growth = 2, rate_per_writer = 10 }\n"
        "observe_seconds = 5\nserver_args = ['--memory-limit-mb', '256']\n"
        "quick = { flush_every_seconds = 2, max_seconds = 60 }\n"
    )
    (scenario,) = parse_catalogue(text, "t.toml", RULES).values()
    full, quick = scenario.extras(quick=False), scenario.extras(quick=True)
    assert full.queriers == QuerierSettings(2, 5.0) and full.churn == ChurnSettings(4, 2, 3.0)
    assert full.ramp == RampSettings(2, 3.0, 1, 2.0, 10.0, settle_seconds=1.0)
    assert full.server_args == ("--memory-limit-mb", "256")
    assert (full.flush, quick.flush) == (FlushSettings(10.0, 20.0), FlushSettings(2.0, 20.0))
    assert (full.max_seconds, quick.max_seconds, full.observe_seconds) == (MAX_SECONDS, 60.0, 5.0)
    assert scenario.profile(quick=True)["flush_every_seconds"] == 2  # run.json keeps the keys as written


@pytest.mark.parametrize("quick", [True, False])
def test_one_time_bound_default_serves_the_runner_and_the_plan(quick: bool) -> None:
    (scenario,) = resolve(["live.inserts"], RULES)  # sets no max_seconds
    plan = build_plan(scenario, quick=quick, target=TARGET, run_id="r", run_dir="/tmp/r")
    assert plan.extra.max_seconds == (QUICK_MAX_SECONDS if quick else MAX_SECONDS)
    assert _run_time_bound(plan) == plan.extra.max_seconds


def test_a_plan_with_extras_survives_its_json(tmp_path: Path) -> None:
    (scenario,) = resolve(["stress.degradation"], RULES)
    plan = build_plan(scenario, quick=True, target=TARGET, run_id="r", run_dir="/tmp/r")
    assert plan.extra.ramp is not None and plan.extra.run_dir == "/tmp/r"
    path = tmp_path / "plan.json"
    plan.write(path)
    assert load_plan(path, environ=plan.secret_env()) == plan  # the file without passwords, they by environment


def test_resolve_checks_criteria_against_what_it_is_given() -> None:
    with pytest.raises(HarnessError, match="unknown criterion 'SC-051'"):
        resolve(["live.inserts"], ("SC-060",))
