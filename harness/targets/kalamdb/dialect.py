"""KalamDB's SQL dialect: the statement text the driver sends, built from the interface's values.

The one place where ``TableKind``, ``ColumnType`` and ``Eq`` become KalamDB words
(``USER``/``SHARED`` tables, ``BIGINT``/``INT``/``TEXT``, a ``WHERE`` clause) and where
impersonation (``EXECUTE AS USER``) is written. Pure and free of I/O, so it is unit-tested
as text. Values go as ``$n`` parameters where KalamDB allows them; identifiers are validated
and literals quoted where they must be inlined (subscriptions and DDL take no parameters).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from harness.targets.base import ColumnType, Eq, Schema, TableKind, TargetError

__all__ = [
    "COLUMN_TYPES",
    "TABLE_TYPES",
    "count_sql",
    "create_namespace_sql",
    "create_table_sql",
    "create_user_sql",
    "delete_sql",
    "flush_sql",
    "identifier",
    "insert_sql",
    "job_status_sql",
    "live_page_sql",
    "qualified",
    "quote_literal",
    "recent_sql",
    "rows_sql",
    "set_password_sql",
    "stats_sql",
    "subscription_sql",
    "update_sql",
]

COLUMN_TYPES: Mapping[ColumnType, str] = {
    ColumnType.INT64: "BIGINT",
    ColumnType.INT32: "INT",
    ColumnType.TEXT: "TEXT",
}
TABLE_TYPES: Mapping[TableKind, str] = {TableKind.USER: "USER", TableKind.SHARED: "SHARED"}
_IDENTIFIER = re.compile(r"[A-Za-z0-9_]+")


def identifier(name: str) -> str:
    """Return ``name`` if it is a valid KalamDB identifier, else raise (keeps SQL text injection-free)."""
    if not _IDENTIFIER.fullmatch(name):
        raise TargetError(f"invalid identifier {name!r}: only letters, digits and _ are allowed")
    return name


def qualified(schema: Schema) -> str:
    """``namespace.table`` of ``schema`` as validated identifiers."""
    return f"{identifier(schema.namespace)}.{identifier(schema.table)}"


def quote_literal(value: str) -> str:
    """A SQL string literal with embedded quotes doubled."""
    return "'" + value.replace("'", "''") + "'"


def _literal(value: int | str) -> str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise TargetError(f"filter value {value!r}: only integers and text can be compared")
    return str(value) if isinstance(value, int) else quote_literal(value)


def _filter(schema: Schema, row_filter: Eq | None) -> str:
    """`` WHERE column = literal`` for ``row_filter`` (empty for None); the column must be the schema's."""
    if row_filter is None:
        return ""
    if schema.column(row_filter.column) is None:
        raise TargetError(f"filter on {row_filter.column!r}, which is not a column of {schema.qualified}")
    return f" WHERE {identifier(row_filter.column)} = {_literal(row_filter.value)}"


def _as_user(schema: Schema, sql: str, user: str | None) -> str:
    """``sql`` run as ``user``: impersonation on per-user tables; shared rows look the same to every user."""
    if user is None or schema.table_type is not TableKind.USER:
        return sql
    return f"EXECUTE AS USER {quote_literal(user)} ({sql})"


def subscription_sql(schema: Schema, row_filter: Eq | None) -> str:
    """The live query of a listener: every column of the rows matching ``row_filter``."""
    return f"SELECT * FROM {qualified(schema)}{_filter(schema, row_filter)}"


def recent_sql(schema: Schema, row_filter: Eq | None, limit: int, as_user: str | None = None) -> str:
    """The ``limit`` rows with the highest keys among those matching ``row_filter``, highest first."""
    sql = (
        f"SELECT * FROM {qualified(schema)}{_filter(schema, row_filter)}"
        f" ORDER BY {identifier(schema.key)} DESC LIMIT {int(limit)}"
    )
    return _as_user(schema, sql, as_user)


def count_sql(schema: Schema, as_user: str | None = None) -> str:
    """The number of rows, as one column ``n``."""
    return _as_user(schema, f"SELECT COUNT(*) AS n FROM {qualified(schema)}", as_user)


def rows_sql(schema: Schema, row_filter: Eq | None, limit: int | None) -> str:
    """A session's own rows matching ``row_filter``, at most ``limit`` (else the server's cap)."""
    sql = f"SELECT * FROM {qualified(schema)}{_filter(schema, row_filter)}"
    return sql if limit is None else f"{sql} LIMIT {int(limit)}"


def insert_sql(table: str, columns: Sequence[str]) -> str:
    cols = ", ".join(identifier(c) for c in columns)
    marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    return f"INSERT INTO {table} ({cols}) VALUES ({marks})"


def update_sql(table: str, key: str, columns: Sequence[str]) -> str:
    sets = ", ".join(f"{identifier(c)} = ${i}" for i, c in enumerate(columns, 1))
    return f"UPDATE {table} SET {sets} WHERE {identifier(key)} = ${len(columns) + 1}"


def bump_sql(table: str, key: str, columns: Sequence[str], counter: str) -> str:
    """An UPDATE that sets ``columns`` and increments ``counter`` in one statement (the server picks its value)."""
    sets = ", ".join(f"{identifier(c)} = ${i}" for i, c in enumerate(columns, 1))
    bumped = identifier(counter)
    return f"UPDATE {table} SET {bumped} = {bumped} + 1, {sets} WHERE {identifier(key)} = ${len(columns) + 1}"


def delete_sql(table: str, key: str) -> str:
    return f"DELETE FROM {table} WHERE {identifier(key)} = $1"


def _option_value(value: Any) -> str:
    text = str(value)
    if re.fullmatch(r"-?\d+", text) or text.upper() in ("TRUE", "FALSE"):
        return text
    return quote_literal(text)


def create_namespace_sql(schema: Schema) -> str:
    return f"CREATE NAMESPACE IF NOT EXISTS {identifier(schema.namespace)}"


def create_table_sql(schema: Schema, options: Mapping[str, Any] | None = None) -> str:
    """``CREATE <USER|SHARED> TABLE IF NOT EXISTS ns.t (...) [WITH (...)]`` for ``schema``.

    ``options`` are KalamDB table options by name (``flush_policy``, ``deleted_retention_hours``, ...).
    """
    cols = []
    for c in schema.columns:
        parts = [identifier(c.name), COLUMN_TYPES[c.type]]
        if c.not_null:
            parts.append("NOT NULL")
        if c.primary_key:
            parts.append("PRIMARY KEY")
        cols.append(" ".join(parts))
    sql = f"CREATE {TABLE_TYPES[schema.table_type]} TABLE IF NOT EXISTS {qualified(schema)} ({', '.join(cols)})"
    if options:
        opts = ", ".join(f"{identifier(k).upper()} = {_option_value(v)}" for k, v in options.items())
        sql += f" WITH ({opts})"
    return sql


READ_POLICY = "lqh_read"


def read_policy_sql(schema: Schema) -> str:
    """0.7: the row-level policy that lets every role read (and subscribe to) the harness's SHARED table."""
    return f"CREATE POLICY {READ_POLICY} ON {qualified(schema)} FOR SELECT TO PUBLIC USING (true)"


def create_user_sql(user: str, password: str) -> str:
    return f"CREATE USER {quote_literal(user)} WITH PASSWORD {quote_literal(password)} ROLE user"


def set_password_sql(user: str, password: str) -> str:
    return f"ALTER USER {quote_literal(user)} SET PASSWORD {quote_literal(password)}"


def flush_sql(schema: Schema) -> str:
    return f"STORAGE FLUSH TABLE {qualified(schema)}"


def live_page_sql(after: str | None, page: int) -> str:
    """One page of ``system.live`` ordered by ``live_id``, starting after the ``after`` id."""
    where = f" WHERE live_id > {quote_literal(after)}" if after is not None else ""
    return f"SELECT live_id, subscription_id, changes FROM system.live{where} ORDER BY live_id LIMIT {page}"


def job_status_sql(job_id: str) -> str:
    return f"SELECT status FROM system.jobs WHERE job_id = {quote_literal(job_id)}"


def stats_sql(page: int) -> str:
    return f"SELECT metric_name, metric_value FROM system.stats LIMIT {page}"
