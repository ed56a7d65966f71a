"""Property-based tests of the user's files: scenario catalogues and criteria files of any content.

Each is read into scenarios (and their plans) or criteria, or refused with a ``HarnessError``, the
one-line error ``lqharness`` prints; never another exception.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import HarnessError
from harness.plan import TargetSpec
from harness.scenarios import catalogue as cat
from reports.criteria import default_tables, load_criteria, merge
from reports.judge import RULES

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TARGET = TargetSpec("kalamdb", "http://127.0.0.1:9", "root", "pw")
KEYS = sorted({*cat.ALL_KEYS, *cat.WRITER_KEYS, *cat.LISTENER_KEYS, *cat.STEP_KEYS, *cat.RECONNECT_KEYS,
               *cat.QUERIER_KEYS, *cat.CHURN_KEYS, *cat.RAMP_KEYS, "unknown"})  # fmt: skip
OPS = ("insert", "update", "delete", "mix", "pause", "explode")

TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=10)  # TOML strings hold no lone surrogates
TOML_SCALAR = (
    st.booleans()
    | st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
    | st.integers(min_value=-3, max_value=300)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
    | st.sampled_from(OPS)
    | st.sampled_from(sorted(RULES))
)
TOML_VALUE: st.SearchStrategy[Any] = st.recursive(
    TOML_SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=4),
    max_leaves=16,
)


def toml(value: Any) -> str:
    """``value`` as a TOML inline value (a string is a basic string, which JSON's escapes are valid in)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        assert math.isfinite(value)
        return repr(value) if any(c in repr(value) for c in ".e") else repr(value) + ".0"
    if isinstance(value, int | str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml(v)}" for k, v in value.items()) + "}"


def _plausible_writer() -> st.SearchStrategy[dict[str, Any]]:
    step = st.fixed_dictionaries({"op": st.sampled_from(OPS)}, optional={k: TOML_SCALAR for k in cat.STEP_KEYS[1:]})
    return st.fixed_dictionaries(
        {"program": st.lists(step, min_size=1, max_size=3)},
        optional={"conversation": TOML_SCALAR, "copies": TOML_SCALAR, "group": TOML_SCALAR, "user": TOML_SCALAR},
    )


SCENARIO = st.fixed_dictionaries(
    {"title": TEXT},
    optional={
        "writers": st.lists(_plausible_writer(), max_size=2) | TOML_VALUE,
        "listeners": st.lists(st.dictionaries(st.sampled_from(cat.LISTENER_KEYS), TOML_VALUE), max_size=2),
        **{k: TOML_VALUE for k in cat.ALL_KEYS if k not in ("title", "writers", "listeners")},
    },
)


def _document(scenario: dict[str, Any]) -> str:
    return '[scenario."fuzz.one"]\n' + "".join(f"{json.dumps(k)} = {toml(v)}\n" for k, v in scenario.items())


@FUZZ
@given(SCENARIO)
def test_any_scenario_table_is_a_plan_or_a_one_line_error(scenario: dict[str, Any]) -> None:
    try:
        parsed = cat.parse_catalogue(_document(scenario), "fuzz.toml", RULES)
        for quick in (False, True):
            cat.build_plan(parsed["fuzz.one"], quick=quick, target=TARGET, run_id="r", run_dir="/tmp/r")
    except HarnessError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(st.text(max_size=200))
def test_any_catalogue_text_parses_or_is_a_one_line_error(text: str) -> None:
    try:
        cat.parse_catalogue(text, "fuzz.toml", RULES)
    except HarnessError:
        pass


def test_the_fuzzer_reaches_valid_scenarios() -> None:
    """The properties above are only worth something if the generator can write a scenario that passes."""
    scenario = {"title": "t", "writers": [{"program": [{"op": "insert", "count": 3}]}], "listeners": [{}]}
    parsed = cat.parse_catalogue(_document(scenario), "fuzz.toml", RULES)
    assert len(cat.build_plan(parsed["fuzz.one"], quick=True, target=TARGET, run_id="r", run_dir="/x").writers) == 1


CRITERIA_OVERRIDE = st.dictionaries(
    st.sampled_from([*default_tables(), "SC-999"]),
    st.dictionaries(TEXT | st.sampled_from(sorted({k for t in default_tables().values() for k in t})),
                    TOML_VALUE, max_size=3)
    | TOML_SCALAR,
    max_size=3,
)  # fmt: skip


@FUZZ
@given(CRITERIA_OVERRIDE)
def test_any_criteria_override_merges_or_is_a_one_line_error(override: dict[str, Any]) -> None:
    try:
        merged = merge(default_tables(), override, "fuzz.toml")
    except HarnessError as exc:
        assert "\n" not in str(exc)
        return
    assert merged.keys() == default_tables().keys()


@pytest.mark.parametrize("text", ["[SC-051", "\x00", "[SC-051]\nmax_lost = 1\nmax_lost = 2\n", "\ufeff= 1"])
def test_unreadable_criteria_files_are_one_line_errors(tmp_path: Any, text: str) -> None:
    path = tmp_path / "criteria.toml"
    path.write_text(text)
    with pytest.raises(HarnessError, match="criteria file"):
        load_criteria(path)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path into ``value``'s tables and arrays."""
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in [(*prefix, k), *_paths(v, (*prefix, k))]]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in [(*prefix, i), *_paths(v, (*prefix, i))]]
    return []


PLAN = cat.build_plan(cat.resolve(["live.reconnect"], RULES)[0], quick=True, target=TARGET, run_id="r", run_dir="/x")
PLAN_DATA = json.loads(PLAN.to_json())


@FUZZ
@given(st.sampled_from(_paths(PLAN_DATA)), TOML_VALUE | st.none())
def test_a_damaged_plan_file_loads_or_is_a_one_line_error(
    tmp_path_factory: Any, path: tuple[Any, ...], value: Any
) -> None:
    """A Locust worker reads plan.json: one value replaced anywhere is a plan or a HarnessError."""
    from harness.plan import load_plan

    data = json.loads(json.dumps(PLAN_DATA))
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    plan_file = tmp_path_factory.mktemp("plan") / "plan.json"
    plan_file.write_text(json.dumps(data))
    try:
        load_plan(plan_file, environ=PLAN.secret_env())
    except HarnessError as exc:
        assert "\n" not in str(exc)
