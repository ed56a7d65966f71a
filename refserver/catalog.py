"""Table definitions: KalamDB's table kinds, options and system columns, validated from CREATE TABLE."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from refserver.dialect import ColumnSpec, CreateTable
from refserver.errors import SqlError
from refserver.values import BIGINT, BOOLEAN, KType, coercer, encoder, is_auto_id_type, ktype

NAME_RE = re.compile(r"^[A-Za-z0-9_]+$")
RESERVED_NAMESPACES = {"system", "sys", "root", "kalamdb", "kalam", "main"}
SYSTEM_COLUMNS = ("_seq", "_deleted")
OWNER = "_owner"
ACCESS_LEVELS = ("PUBLIC", "PRIVATE", "RESTRICTED", "DBA")
_OPTIONS = {
    "TYPE": None,
    "STORAGE_ID": None,
    "USE_USER_STORAGE": ("USER",),
    "FLUSH_POLICY": None,
    "DELETED_RETENTION_HOURS": None,
    "TTL_SECONDS": ("STREAM",),
    "ACCESS_LEVEL": ("SHARED",),
}
_FLUSH_POLICY = re.compile(r"^(rows:\d+|interval:\d+|rows:\d+,interval:\d+)$")


@dataclass(slots=True)
class ColumnDef:
    """One column as stored: its type and converters, not-null, default."""

    name: str
    ktype: KType
    not_null: bool = False
    primary_key: bool = False
    default: exp.Expression | None = None
    auto_id: bool = False
    coerce: Callable[[Any], Any] = field(init=False)
    encode: Callable[[Any], Any] = field(init=False)

    def __post_init__(self) -> None:
        self.coerce = coercer(self.ktype)
        self.encode = encoder(self.ktype)

    @property
    def flags(self) -> list[str]:
        """KalamDB schema flags: ``pk``, ``nn``, ``uq``."""
        if self.primary_key:
            return ["pk", "nn", "uq"]
        return ["nn"] if self.not_null else []


@dataclass(slots=True)
class TableDef:
    """A user-visible table: namespace, name, kind (USER, SHARED, STREAM), columns, options."""

    namespace: str
    name: str
    kind: str
    columns: list[ColumnDef]
    options: dict[str, Any]
    create_sql: str
    created_at: int
    by_name: dict[str, ColumnDef] = field(init=False)
    user_columns: list[ColumnDef] = field(init=False)  # without _seq/_deleted
    required: list[str] = field(init=False)  # NOT NULL user columns

    def __post_init__(self) -> None:
        self.by_name = {c.name: c for c in self.columns}
        self.user_columns = [c for c in self.columns if not c.name.startswith("_")]
        self.required = [c.name for c in self.user_columns if c.not_null]

    @property
    def key(self) -> str:
        """``ns.name``: the user-facing name and, quoted, the SQLite table name."""
        return f"{self.namespace}.{self.name}"

    @property
    def pk(self) -> ColumnDef:
        return next(c for c in self.columns if c.primary_key)

    @property
    def per_user(self) -> bool:
        """USER and STREAM tables are partitioned by the authenticated user."""
        return self.kind in ("USER", "STREAM")

    @property
    def access_level(self) -> str | None:
        if self.kind != "SHARED":
            return None
        return str(self.options.get("ACCESS_LEVEL", "PRIVATE")).upper()

    def readable_by(self, role: str) -> bool:
        """Whether a role may read (or subscribe to) this table under its ACCESS_LEVEL."""
        if self.kind != "SHARED" or role in ("dba", "system"):
            return True
        level = self.access_level
        return level == "PUBLIC" or (level in ("PRIVATE", "RESTRICTED") and role == "service")


def check_name(name: str, what: str) -> str:
    """Identifiers are ``[A-Za-z0-9_]``; returns the name lower-cased as KalamDB stores it."""
    if not NAME_RE.match(name):
        raise SqlError("INVALID_SQL", f"Invalid {what} name '{name}': use letters, digits and '_'")
    return name.lower()


def build_table(plan: CreateTable, namespace: str, created_at: int) -> TableDef:
    """Validate a CREATE TABLE plan the way KalamDB does and build its definition."""
    options = {k.upper(): v for k, v in plan.options.items()}
    declared = str(options.get("TYPE", "")).upper() or None
    if plan.kind and declared and plan.kind != declared:
        raise SqlError("INVALID_SQL", f"Table type {plan.kind} conflicts with TYPE='{declared}'")
    kind = plan.kind or declared or "SHARED"
    if kind not in ("USER", "SHARED", "STREAM"):
        raise SqlError("INVALID_SQL", f"Unknown table type '{kind}'")
    for key in options:
        if key not in _OPTIONS:
            raise SqlError("INVALID_SQL", f"Unknown table option '{key}'")
        allowed = _OPTIONS[key]
        if allowed is not None and kind not in allowed:
            raise SqlError("INVALID_SQL", f"Option {key} is only valid for {'/'.join(allowed)} tables")
    if kind == "STREAM" and "TTL_SECONDS" not in options:
        raise SqlError("INVALID_SQL", "STREAM tables require TTL_SECONDS")
    if "FLUSH_POLICY" in options and not _FLUSH_POLICY.match(str(options["FLUSH_POLICY"]).replace(" ", "")):
        raise SqlError("INVALID_SQL", f"Invalid FLUSH_POLICY '{options['FLUSH_POLICY']}'")
    if "ACCESS_LEVEL" in options:
        level = str(options["ACCESS_LEVEL"]).upper()
        if level not in ACCESS_LEVELS:
            raise SqlError("INVALID_SQL", f"Invalid ACCESS_LEVEL '{options['ACCESS_LEVEL']}'")
    name = check_name(plan.name, "table")
    columns = [_column(spec) for spec in plan.columns]
    seen: set[str] = set()
    for col in columns:
        if col.name in seen:
            raise SqlError("INVALID_SQL", f"Duplicate column '{col.name}'")
        seen.add(col.name)
    for pk_name in plan.table_pk:
        pk_col = next((c for c in columns if c.name == pk_name.lower()), None)
        if pk_col is None:
            raise SqlError("INVALID_SQL", f"PRIMARY KEY column '{pk_name}' does not exist")
        pk_col.primary_key = True
    pks = [c for c in columns if c.primary_key]
    if len(pks) != 1:
        raise SqlError("INVALID_SQL", f"{kind} tables need a single-column PRIMARY KEY")
    pks[0].not_null = True
    columns.append(ColumnDef("_seq", BIGINT, not_null=True))
    if kind != "STREAM":
        columns.append(ColumnDef("_deleted", BOOLEAN, not_null=True))
    return TableDef(namespace, name, kind, columns, options, plan.sql, created_at)


def _column(spec: ColumnSpec) -> ColumnDef:
    name = check_name(spec.name, "column")
    if name in SYSTEM_COLUMNS or name == OWNER:
        raise SqlError("INVALID_SQL", f"Column name '{name}' is reserved")
    kt = ktype(spec.type_name, spec.type_params)
    auto = spec.auto_id or is_auto_id_type(spec.type_name)
    default = spec.default
    if isinstance(default, exp.Anonymous) and default.name.upper() == "SNOWFLAKE_ID":
        auto, default = True, None
    return ColumnDef(name, kt, spec.not_null, spec.primary_key, default, auto)
