"""The scenario catalogue: scenario definitions read from ``harness/scenarios/*.toml``.

There is one definition per scenario; ``lqharness run``, ``make nightly`` and the pytest
integration tests all build their run plans from it. Loading checks every scenario as
``reports.criteria`` checks an override file: an unknown key, a value of the wrong kind or
an unknown criterion id is a one-line HarnessError before any run starts. The settings
beyond writers and listeners become the plan's typed ``Extras``, parsed here once.
"""

from __future__ import annotations

import secrets
import tomllib
from collections.abc import Callable, Collection
from dataclasses import dataclass, field, replace
from importlib import resources
from typing import Any

from harness.errors import HarnessError
from harness.nemesis.schedule import Schedule, parse_schedule
from harness.plan import (
    DEFAULT_JOB_TIMEOUT_SECONDS,
    DEFAULT_SETTLE_SECONDS,
    MAX_SECONDS,
    QUICK_MAX_SECONDS,
    ChurnSettings,
    Extras,
    FlushSettings,
    ListenerSpec,
    Plan,
    QuerierSettings,
    RampSettings,
    ReconnectSpec,
    Step,
    TargetSpec,
    WriterSpec,
)
from harness.targets.base import TableKind

CATALOGUE_FILES = ("live.toml", "stress.toml", "nemesis.toml")
APP_USER = "lqh_app"

SCENARIO_KEYS = (
    "title", "expected", "criteria", "table_type", "payload_bytes", "drain_seconds", "quick_drain_seconds",
    "writers", "listeners", "quick", "nemesis", "requires", "server_restart", "size_minimums",
)  # fmt: skip
EXTRAS_KEYS = (
    "queriers", "churn", "flush_every_seconds", "job_timeout_seconds", "ramp", "preload_seconds", "observe_seconds",
    "release_seconds", "warmup_seconds", "target_insert_rate", "memory_limit_mb", "server_args",
    "max_seconds",
)  # fmt: skip
ALL_KEYS = (*SCENARIO_KEYS, *EXTRAS_KEYS)
WRITER_KEYS = ("copies", "conversation", "group", "program", "user", "quick")
LISTENER_KEYS = ("copies", "conversation", "user", "reconnect")
STEP_KEYS = ("op", "count", "seconds", "rate", "weights", "rows", "to")
RECONNECT_KEYS = ("after_changes", "away_seconds", "resume")
QUERIER_KEYS = ("count", "rate")
CHURN_KEYS = ("open", "close", "settle_seconds")
STEP_OPS = ("insert", "update", "delete", "mix", "pause", "bump", "move")
RAMP_KEYS = ("max_steps", "seconds", "writers", "growth", "rate_per_writer", "past_capacity_steps", "settle_seconds")
RAMP_REQUIRED = RAMP_KEYS[:5]


@dataclass(frozen=True, slots=True)
class Scenario:
    """One scenario as the catalogue defines it (already merged with its file's defaults and validated)."""

    name: str
    title: str
    group: str
    expected: int | None
    criteria: tuple[str, ...]
    table_type: str
    payload_bytes: int
    drain_seconds: float
    quick_drain_seconds: float
    writers: tuple[dict[str, Any], ...]
    listeners: tuple[dict[str, Any], ...]
    settings: dict[str, Any] = field(default_factory=dict)  # the other keys, as written
    quick: dict[str, Any] = field(default_factory=dict)
    full_extras: Extras = field(default_factory=Extras)  # ``settings`` parsed
    quick_extras: Extras = field(default_factory=Extras)  # ``settings`` with ``quick`` applied, parsed
    nemesis: Schedule = field(default_factory=Schedule)  # network faults between the harness and the target
    requires: tuple[str, ...] = ()  # target features the scenario is about: without one, the judge says n/a
    server_restart: float | None = None  # seconds after the listeners are ready the embedded server restarts
    # False: the scenario proves correctness or attribution at its own fixed size, so the judge does not
    # apply the specification's size minimums (SC-054's samples and writers, SC-057's notifications)
    size_minimums: bool = True

    def extras(self, quick: bool) -> Extras:
        """The typed settings of the full or the quick profile."""
        return self.quick_extras if quick else self.full_extras

    def profile(self, quick: bool) -> dict[str, Any]:
        """The parameters of this run (recorded in run.json): the full or the quick profile."""
        settings = {**self.settings, **(self.quick if quick else {})}
        return {
            "name": self.name,
            "title": self.title,
            "quick": quick,
            "expected": self.expected,
            "criteria": list(self.criteria),
            "table_type": self.table_type,
            "payload_bytes": self.payload_bytes,
            "drain_seconds": self.quick_drain_seconds if quick else self.drain_seconds,
            **settings,
            **({"nemesis": self.nemesis.to_list()} if self.nemesis.faults else {}),
            **({"requires": list(self.requires)} if self.requires else {}),
            **({"server_restart": {"at": self.server_restart}} if self.server_restart is not None else {}),
            **({} if self.size_minimums else {"size_minimums": False}),
        }


def _check_keys(where: str, raw: Any, known: Collection[str]) -> dict[str, Any]:
    """``raw`` as a table whose keys are all ``known``; else a one-line HarnessError naming ``where``."""
    if not isinstance(raw, dict):
        raise HarnessError(f"{where} must be a table, got {raw!r}")
    for key in raw:
        if key not in known:
            raise HarnessError(f"{where}: unknown key {key!r} (known: {', '.join(known)})")
    return raw


def _number(where: str, label: str, value: Any, minimum: float, integer: bool = False) -> Any:
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    if not ok or isinstance(value, bool) or value < minimum:
        kind = "an integer" if integer else "a number"
        raise HarnessError(f"{where}: {label} must be {kind} >= {minimum:g}, got {value!r}")
    return int(value) if integer else float(value)


def _optional(where: str, raw: dict[str, Any], key: str, minimum: float) -> float | None:
    return None if raw.get(key) is None else _number(where, key, raw[key], minimum)


def _queriers(where: str, raw: Any) -> QuerierSettings | None:
    """The querier settings, or None when there are none (count 0 counts as none)."""
    table = _check_keys(f"{where}: queriers", raw, QUERIER_KEYS)
    count = _number(where, "queriers.count", table.get("count"), 0, integer=True)
    rate = _number(where, "queriers.rate", table.get("rate"), 0.001)
    return QuerierSettings(count, rate) if count else None


def _churn(where: str, raw: Any) -> ChurnSettings:
    table = _check_keys(f"{where}: churn", raw, CHURN_KEYS)
    opened = _number(where, "churn.open", table.get("open"), 1, integer=True)
    closed = _number(where, "churn.close", table.get("close"), 0, integer=True)
    if closed > opened:
        raise HarnessError(f"{where}: churn.close ({closed}) exceeds churn.open ({opened})")
    settle = _number(where, "churn.settle_seconds", table.get("settle_seconds", DEFAULT_SETTLE_SECONDS), 0)
    return ChurnSettings(opened, closed, settle)


def _flush(where: str, raw: dict[str, Any]) -> FlushSettings | None:
    every = raw.get("flush_every_seconds")
    if every is None:
        return None
    timeout = raw.get("job_timeout_seconds", DEFAULT_JOB_TIMEOUT_SECONDS)
    return FlushSettings(
        _number(where, "flush_every_seconds", every, 0.1), _number(where, "job_timeout_seconds", timeout, 0.1)
    )


def _ramp(where: str, raw: Any) -> RampSettings:
    table = _check_keys(f"{where}: ramp", raw, RAMP_KEYS)
    missing = [key for key in RAMP_REQUIRED if key not in table]
    if missing:
        raise HarnessError(f"{where}: ramp needs {', '.join(RAMP_REQUIRED)} (missing {', '.join(missing)})")
    label = f"{where}: ramp"
    seconds = _number(label, "seconds", table["seconds"], 0.5)
    settle = _number(label, "settle_seconds", table.get("settle_seconds", min(5.0, seconds / 3)), 0)
    if settle >= seconds:
        raise HarnessError(f"{label}: settle_seconds ({settle:g}) must be shorter than a step ({seconds:g} s)")
    growth = _number(label, "growth", table["growth"], 1)
    if growth <= 1:
        raise HarnessError(f"{label}: growth must be above 1 (the offered rate grows every step), got {growth:g}")
    return RampSettings(
        max_steps=_number(label, "max_steps", table["max_steps"], 1, integer=True),
        seconds=seconds,
        writers=_number(label, "writers", table["writers"], 1, integer=True),
        growth=growth,
        rate_per_writer=_number(label, "rate_per_writer", table["rate_per_writer"], 0.001),
        past_capacity_steps=_number(label, "past_capacity_steps", table.get("past_capacity_steps", 2), 0, integer=True),
        settle_seconds=settle,
    )


def ramp_writers(ramp: RampSettings, first_id: int) -> list[WriterSpec]:
    """The writer streams of a ramp, from writer id ``first_id``: the ones step k adds pause k steps, then
    insert at ``rate_per_writer`` until the last planned step ends (the coordinator ends the load earlier
    when the ramp stops). Every id is in the plan, so the checker sees every ledger."""
    out: list[WriterSpec] = []
    total = ramp.planned_steps * ramp.seconds
    before = 0
    for k in range(ramp.planned_steps):
        now = ramp.writers_at(k)
        start = k * ramp.seconds
        insert = Step("insert", seconds=total - start, rate=ramp.rate_per_writer)
        program = (insert,) if k == 0 else (Step("pause", seconds=start), insert)
        for _ in range(now - before):
            writer_id = first_id + len(out)
            out.append(WriterSpec(writer_id=writer_id, conversation_id=writer_id, program=program))
        before = now
    return out


def _server_args(where: str, raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
        raise HarnessError(f"{where}: server_args must be a list of strings, got {raw!r}")
    return tuple(raw)


def parse_extras(where: str, raw: dict[str, Any], *, quick: bool) -> Extras:
    """The typed settings of one profile; an unknown key or a bad value is a one-line HarnessError."""
    _check_keys(where, raw, EXTRAS_KEYS)
    return Extras(
        max_seconds=_number(
            where, "max_seconds", raw.get("max_seconds", QUICK_MAX_SECONDS if quick else MAX_SECONDS), 1
        ),
        queriers=None if raw.get("queriers") is None else _queriers(where, raw["queriers"]),
        churn=None if raw.get("churn") is None else _churn(where, raw["churn"]),
        flush=_flush(where, raw),
        ramp=None if raw.get("ramp") is None else _ramp(where, raw["ramp"]),
        preload_seconds=_number(where, "preload_seconds", raw.get("preload_seconds", 0), 0),
        observe_seconds=_number(where, "observe_seconds", raw.get("observe_seconds", 0), 0),
        release_seconds=_optional(where, raw, "release_seconds", 0),
        warmup_seconds=_optional(where, raw, "warmup_seconds", 0),
        target_insert_rate=_optional(where, raw, "target_insert_rate", 0),
        memory_limit_mb=_optional(where, raw, "memory_limit_mb", 1),
        server_args=_server_args(where, raw.get("server_args", [])),
    )


def _kind(where: str, label: str, value: Any, kind: type) -> None:
    """A one-line error unless ``value`` is a ``kind`` (a bool is no number)."""
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise HarnessError(f"{where}: {label} must be a {'table' if kind is dict else kind.__name__}, got {value!r}")


def _check_values(where: str, table: dict[str, Any], checks: dict[str, Callable[[str, Any], Any]]) -> None:
    """Run the check of each key ``table`` has (the keys themselves are checked by ``_check_keys``)."""
    for key, check in checks.items():
        if table.get(key) is not None:
            check(key, table[key])


def _check_step(where: str, step: dict[str, Any]) -> None:
    if step.get("op") not in STEP_OPS:
        raise HarnessError(f"{where}: op must be one of {', '.join(STEP_OPS)}, got {step.get('op')!r}")
    weights = step.get("weights")
    if weights is not None:
        _kind(where, "weights", weights, dict)
        for op, weight in weights.items():
            _number(where, f"weights.{op}", weight, 0)
    _check_values(
        where,
        step,
        {
            "count": lambda k, v: _number(where, k, v, 0, integer=True),
            "seconds": lambda k, v: _number(where, k, v, 0),
            "rate": lambda k, v: _number(where, k, v, 0.001),
            "rows": lambda k, v: _number(where, k, v, 1, integer=True),
            "to": lambda k, v: _number(where, k, v, 0, integer=True),
        },
    )
    if step["op"] == "bump" and "rows" not in step:
        raise HarnessError(f"{where}: a bump step needs rows (how many shared rows it spreads over)")
    if (step["op"] == "move") != ("to" in step):
        raise HarnessError(f"{where}: `to` (the conversation a row moves to) belongs to a move step, and only to one")


def _check_program(where: str, program: Any) -> None:
    if not isinstance(program, list) or not program:
        raise HarnessError(f"{where}: program must be a non-empty list of steps, got {program!r}")
    for n, step in enumerate(program, 1):
        _check_keys(f"{where} step {n}", step, STEP_KEYS)
        _check_step(f"{where} step {n}", step)


def _check_placement(where: str, table: dict[str, Any]) -> None:
    """The keys writers and listeners share: how many copies, which conversation, which user (and group)."""
    _check_values(
        where,
        table,
        {
            "copies": lambda k, v: _number(where, k, v, 0, integer=True),
            "conversation": lambda k, v: _number(where, k, v, 0, integer=True),
            "user": lambda k, v: _kind(where, k, v, str),
            "group": lambda k, v: _kind(where, k, v, str),
        },
    )


def _check_writers(where: str, writers: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(writers, list):
        raise HarnessError(f"{where}: writers must be a list of tables, got {writers!r}")
    for n, writer in enumerate(writers, 1):
        entry = f"{where} writer {n}"
        _check_keys(entry, writer, WRITER_KEYS)
        _check_program(entry, writer.get("program"))
        _check_placement(entry, writer)
        quick = _check_keys(f"{entry} quick", writer.get("quick", {}), [k for k in WRITER_KEYS if k != "quick"])
        _check_placement(f"{entry} quick", quick)
        if "program" in quick:
            _check_program(f"{entry} quick", quick["program"])
    return tuple(writers)


def _check_listeners(where: str, listeners: Any) -> tuple[dict[str, Any], ...]:
    if not isinstance(listeners, list):
        raise HarnessError(f"{where}: listeners must be a list of tables, got {listeners!r}")
    for n, listener in enumerate(listeners, 1):
        entry = f"{where} listener {n}"
        _check_keys(entry, listener, LISTENER_KEYS)
        _check_placement(entry, listener)
        if listener.get("reconnect") is not None:
            reconnect = _check_keys(f"{entry} reconnect", listener["reconnect"], RECONNECT_KEYS)
            _number(f"{entry} reconnect", "after_changes", reconnect.get("after_changes"), 1, integer=True)
            _number(f"{entry} reconnect", "away_seconds", reconnect.get("away_seconds"), 0)
            if reconnect.get("resume") is not None:
                _kind(f"{entry} reconnect", "resume", reconnect["resume"], bool)
    return tuple(listeners)


def _criteria(where: str, raw: Any, criterion_ids: Collection[str]) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(c, str) for c in raw):
        raise HarnessError(f"{where}: criteria must be a list of criterion ids, got {raw!r}")
    for cid in raw:
        if cid not in criterion_ids:
            raise HarnessError(f"{where}: unknown criterion {cid!r} (known: {', '.join(criterion_ids)})")
    return tuple(raw)


def _requires(where: str, raw: Any) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(f, str) and f for f in raw):
        raise HarnessError(f"{where}: requires must be a list of target feature names, got {raw!r}")
    return tuple(raw)


def _scenario(name: str, merged: dict[str, Any], criterion_ids: Collection[str], filename: str) -> Scenario:
    where = f"scenario {name} ({filename})"
    if not isinstance(merged.get("title"), str):
        raise HarnessError(f"{where}: needs a title")
    settings = {k: v for k, v in merged.items() if k not in SCENARIO_KEYS}
    quick = _check_keys(f"{where}: quick", merged.get("quick", {}), EXTRAS_KEYS)
    drain = _number(where, "drain_seconds", merged.get("drain_seconds", 5.0), 0)
    return Scenario(
        name=name,
        title=merged["title"],
        group=name.split(".", 1)[0],
        expected=None if merged.get("expected") is None else _number(where, "expected", merged["expected"], 0, True),
        criteria=_criteria(where, merged.get("criteria", []), criterion_ids),
        table_type=merged.get("table_type", "USER"),
        payload_bytes=_number(where, "payload_bytes", merged.get("payload_bytes", 200), 0, integer=True),
        drain_seconds=drain,
        quick_drain_seconds=_number(where, "quick_drain_seconds", merged.get("quick_drain_seconds", drain), 0),
        writers=_check_writers(where, merged.get("writers", [])),
        listeners=_check_listeners(where, merged.get("listeners", [])),
        settings=settings,
        quick=dict(quick),
        full_extras=parse_extras(where, settings, quick=False),
        quick_extras=parse_extras(f"{where} quick", {**settings, **quick}, quick=True),
        nemesis=parse_schedule(where, merged.get("nemesis"), _listener_ids(merged)),
        requires=_requires(where, merged.get("requires", [])),
        server_restart=_server_restart(where, merged.get("server_restart")),
        size_minimums=_flag(where, "size_minimums", merged.get("size_minimums", True)),
    )


def _server_restart(where: str, raw: Any) -> float | None:
    """``server_restart = { at = S }``: restart the embedded server S seconds after the listeners are ready."""
    if raw is None:
        return None
    table = _check_keys(f"{where}: server_restart", raw, ("at",))
    if "at" not in table:
        raise HarnessError(f"{where}: server_restart needs at (seconds after the listeners are ready)")
    return float(_number(f"{where}: server_restart", "at", table["at"], 0))


def _flag(where: str, label: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise HarnessError(f"{where}: {label} must be true or false, got {value!r}")
    return value


def _listener_ids(merged: dict[str, Any]) -> tuple[str, ...]:
    """The listener ids ``build_plan`` gives a scenario's listeners: L1..Ln in order, copies expanded."""
    listeners = merged.get("listeners", [])
    n = sum(c if isinstance(c := raw.get("copies", 1), int) else 1 for raw in listeners if isinstance(raw, dict))
    return tuple(f"L{i}" for i in range(1, n + 1))


def parse_catalogue(text: str, filename: str, criterion_ids: Collection[str]) -> dict[str, Scenario]:
    """The scenarios of one catalogue file's ``text`` (a ``[defaults]`` table and ``[scenario."<name>"]`` tables)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HarnessError(f"scenario catalogue {filename} is not valid TOML: {exc}") from exc
    _check_keys(f"scenario catalogue {filename}", data, ("defaults", "scenario"))
    defaults = _check_keys(f"scenario catalogue {filename}: defaults", data.get("defaults", {}), ALL_KEYS)
    scenarios = data.get("scenario", {})
    if not isinstance(scenarios, dict):
        raise HarnessError(f"scenario catalogue {filename}: scenario must be a table of scenarios, got {scenarios!r}")
    out: dict[str, Scenario] = {}
    for name, raw in scenarios.items():
        table = _check_keys(f"scenario {name} ({filename})", raw, ALL_KEYS)
        out[name] = _scenario(name, {**defaults, **table}, criterion_ids, filename)
    return out


def catalogue(criterion_ids: Collection[str]) -> dict[str, Scenario]:
    """Every scenario by name, in catalogue order, each checked against the known keys and ``criterion_ids``.

    The criterion ids are the judge's (``reports.judge.RULES``); the caller passes them, since
    this package may not import ``reports``. A bad scenario is a one-line HarnessError here,
    before any run starts.
    """
    out: dict[str, Scenario] = {}
    for filename in CATALOGUE_FILES:
        if resources.files("harness.scenarios").joinpath(filename).is_file():
            text = resources.files("harness.scenarios").joinpath(filename).read_text()
            out.update(parse_catalogue(text, filename, criterion_ids))
    return out


def resolve(names: list[str], criterion_ids: Collection[str]) -> list[Scenario]:
    """Scenarios for names or group names (``live`` = every ``live.*``), in catalogue order."""
    all_scenarios = catalogue(criterion_ids)
    chosen: list[Scenario] = []
    for name in names:
        if name in all_scenarios:
            matches = [all_scenarios[name]]
        else:
            matches = [s for s in all_scenarios.values() if s.group == name]
        if not matches:
            groups = sorted({s.group for s in all_scenarios.values()})
            raise HarnessError(
                f"unknown scenario or group {name!r} (groups: {', '.join(groups)}; see `lqharness list`)"
            )
        chosen.extend(s for s in matches if s not in chosen)
    return chosen


def _steps(program: list[dict[str, Any]]) -> tuple[Step, ...]:
    return tuple(Step(**step) for step in program)


def _table_kind(scenario: Scenario) -> TableKind:
    """The scenario's ``table_type`` as a table kind; a one-line error names the scenario."""
    try:
        return TableKind.parse(scenario.table_type)
    except ValueError as exc:
        raise HarnessError(f"scenario {scenario.name}: {exc}") from None


def build_plan(scenario: Scenario, *, quick: bool, target: TargetSpec, run_id: str, run_dir: str) -> Plan:
    """Expand a scenario into the concrete run plan the Locust users execute."""
    writers: list[WriterSpec] = []
    groups: dict[str, list[int]] = {}
    for raw in scenario.writers:
        spec = {**raw, **(raw.get("quick", {}) if quick else {})}
        for _ in range(int(spec.get("copies", 1))):
            writer_id = len(writers) + 1
            writers.append(
                WriterSpec(
                    writer_id=writer_id,
                    conversation_id=int(spec.get("conversation", writer_id)),
                    program=_steps(spec["program"]),
                    user=spec.get("user"),
                )
            )
            groups.setdefault(spec.get("group") or f"w{writer_id}", []).append(writer_id)
    ramp = scenario.extras(quick).ramp
    if ramp is not None:
        for ramp_writer in ramp_writers(ramp, len(writers) + 1):
            writers.append(ramp_writer)
            groups[f"w{ramp_writer.writer_id}"] = [ramp_writer.writer_id]
    listeners: list[ListenerSpec] = []
    for raw in scenario.listeners:
        for _ in range(int(raw.get("copies", 1))):
            reconnect = raw.get("reconnect")
            listeners.append(
                ListenerSpec(
                    listener_id=f"L{len(listeners) + 1}",
                    conversation_id=raw.get("conversation"),
                    user=raw.get("user"),
                    reconnect=ReconnectSpec(**reconnect) if reconnect else None,
                )
            )
    slug = scenario.name.replace(".", "_").replace("-", "_")
    return Plan(
        run_id=run_id,
        scenario=scenario.name,
        target=target,
        namespace="lqh",
        table=f"{slug}_{run_id.replace('-', '_')}"[:60],
        table_type=_table_kind(scenario),
        app_user=APP_USER,
        app_password="Lqh-" + secrets.token_hex(8),
        payload_bytes=scenario.payload_bytes,
        writers=tuple(writers),
        listeners=tuple(listeners),
        writer_groups=tuple(tuple(g) for g in groups.values()),
        drain_seconds=scenario.quick_drain_seconds if quick else scenario.drain_seconds,
        extra=replace(scenario.extras(quick), run_dir=run_dir),
    )
