"""The scenario catalogue: scenario definitions read from ``harness/scenarios/*.toml``.

There is one definition per scenario; ``lqharness run``, ``make nightly`` and the pytest
integration tests all build their run plans from it.
"""

from __future__ import annotations

import secrets
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from harness.errors import HarnessError
from harness.plan import ListenerSpec, Plan, ReconnectSpec, Step, TargetSpec, WriterSpec
from harness.targets.base import TableKind

CATALOGUE_FILES = ("live.toml", "stress.toml")
APP_USER = "lqh_app"


@dataclass(frozen=True, slots=True)
class Scenario:
    """One scenario as the catalogue defines it (already merged with its file's defaults)."""

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
    extra: dict[str, Any] = field(default_factory=dict)
    quick: dict[str, Any] = field(default_factory=dict)

    def profile(self, quick: bool) -> dict[str, Any]:
        """The parameters of this run (recorded in run.json): the full or the quick profile."""
        extra = {**self.extra, **(self.quick if quick else {})}
        return {
            "name": self.name,
            "title": self.title,
            "quick": quick,
            "expected": self.expected,
            "criteria": list(self.criteria),
            "table_type": self.table_type,
            "payload_bytes": self.payload_bytes,
            "drain_seconds": self.quick_drain_seconds if quick else self.drain_seconds,
            **extra,
        }


_KNOWN_KEYS = {
    "title", "expected", "criteria", "table_type", "payload_bytes", "drain_seconds",
    "quick_drain_seconds", "writers", "listeners", "quick",
}  # fmt: skip


def _load_file(filename: str) -> dict[str, Scenario]:
    text = resources.files("harness.scenarios").joinpath(filename).read_text()
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise HarnessError(f"scenario catalogue {filename} is not valid TOML: {exc}") from exc
    defaults = data.get("defaults", {})
    out: dict[str, Scenario] = {}
    for name, raw in data.get("scenario", {}).items():
        merged = {**defaults, **raw}
        out[name] = Scenario(
            name=name,
            title=merged["title"],
            group=name.split(".", 1)[0],
            expected=merged.get("expected"),
            criteria=tuple(merged.get("criteria", ())),
            table_type=merged.get("table_type", "USER"),
            payload_bytes=int(merged.get("payload_bytes", 200)),
            drain_seconds=float(merged.get("drain_seconds", 5.0)),
            quick_drain_seconds=float(merged.get("quick_drain_seconds", merged.get("drain_seconds", 5.0))),
            writers=tuple(merged.get("writers", ())),
            listeners=tuple(merged.get("listeners", ())),
            extra={k: v for k, v in merged.items() if k not in _KNOWN_KEYS},
            quick=dict(merged.get("quick", {})),
        )
    return out


def catalogue() -> dict[str, Scenario]:
    """Every scenario by name, in catalogue order."""
    out: dict[str, Scenario] = {}
    for filename in CATALOGUE_FILES:
        if resources.files("harness.scenarios").joinpath(filename).is_file():
            out.update(_load_file(filename))
    return out


def resolve(names: list[str]) -> list[Scenario]:
    """Scenarios for names or group names (``live`` = every ``live.*``), in catalogue order."""
    all_scenarios = catalogue()
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
    profile = scenario.profile(quick)
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
        drain_seconds=profile["drain_seconds"],
        extra={**{k: v for k, v in profile.items() if k not in ("name", "title")}, "run_dir": run_dir},
    )
