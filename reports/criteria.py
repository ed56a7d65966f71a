"""The judge's thresholds: the packaged defaults (criteria.toml) merged with an optional override file."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from harness.errors import HarnessError

DEFAULTS_FILE = "criteria.toml"


@dataclass(frozen=True, slots=True)
class Criteria:
    """Settings by table name (a criterion id such as ``SC-056``, or ``judge``, ``memory`` ...)."""

    tables: dict[str, dict[str, Any]]
    source: str  # "defaults" or the override file's path

    def __getitem__(self, table: str) -> dict[str, Any]:
        return self.tables[table]

    def title(self, criterion_id: str) -> str:
        return str(self.tables.get(criterion_id, {}).get("title", criterion_id))


def default_tables() -> dict[str, dict[str, Any]]:
    """The packaged defaults as parsed TOML tables."""
    text = resources.files("reports").joinpath(DEFAULTS_FILE).read_text()
    return tomllib.loads(text)


def _same_kind(default: Any, value: Any) -> bool:
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, int | float):
        return isinstance(value, int | float)
    if isinstance(default, list):
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    return isinstance(value, type(default))


def merge(defaults: dict[str, dict[str, Any]], override: dict[str, Any], source: str) -> dict[str, dict[str, Any]]:
    """Defaults with ``override`` applied; unknown tables, keys or wrong types are a HarnessError."""
    merged = {name: dict(table) for name, table in defaults.items()}
    for name, table in override.items():
        if name not in defaults or not isinstance(table, dict):
            known = ", ".join(sorted(defaults))
            raise HarnessError(f"{source}: unknown criteria table [{name}] (known: {known})")
        for key, value in table.items():
            if key not in defaults[name]:
                raise HarnessError(f"{source}: unknown key {key!r} in [{name}] (known: {', '.join(defaults[name])})")
            if not _same_kind(defaults[name][key], value):
                kind = type(defaults[name][key]).__name__
                raise HarnessError(f"{source}: [{name}] {key} must be a {kind}, got {value!r}")
            merged[name][key] = value
    return merged


def load_criteria(path: Path | None = None) -> Criteria:
    """The defaults, overridden by the TOML file at ``path`` when given."""
    defaults = default_tables()
    if path is None:
        return Criteria(defaults, "defaults")
    try:
        override = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise HarnessError(f"cannot read criteria file {path}: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise HarnessError(f"criteria file {path} is not valid TOML: {exc}") from exc
    return Criteria(merge(defaults, override, str(path)), str(path))
