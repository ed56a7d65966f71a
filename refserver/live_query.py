"""A live query: validate ``SELECT cols|* FROM ns.t [WHERE ...]`` and compile its filter, projection and snapshot SQL.

The filter runs in Python on every change (``exprs``); the same WHERE runs in SQLite for
snapshots, so both see the same rows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import sqlglot
from sqlglot import exp
from sqlglot.errors import SqlglotError

from refserver.catalog import OWNER, ColumnDef, TableDef
from refserver.dialect import READ
from refserver.errors import SqlError
from refserver.exprs import Compiler, Fn
from refserver.sqlite_compile import to_sqlite
from refserver.storage import quote


class LiveQueryError(Exception):
    """A subscription SQL the server refuses; ``code`` is the WebSocket error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(slots=True)
class LiveQuery:
    """A compiled subscription query."""

    table: TableDef
    star: bool
    projection: list[tuple[str, ColumnDef]]  # (row key, column), without _seq/_deleted
    filter: Fn | None
    filter_sql: str  # canonical WHERE text, part of the fan-out group key
    uses_user: bool
    snapshot_sql: str
    last_rows_sql: str
    boundary_sql: str
    names: list[str]  # bound names of the WHERE (``__user``)
    version_key: str = "_seq"  # the row-version column as clients see it (0.7: ``_version``)

    @property
    def schema(self) -> list[dict[str, Any]]:
        """``subscription_ack.schema``: projected columns, or every column with ``_seq``/``_deleted`` for ``*``."""
        cols = self.output_columns if self.star else self.projection
        out = []
        for index, (name, col) in enumerate(cols):
            entry: dict[str, Any] = {"name": name, "data_type": col.ktype.wire, "index": index}
            if col.flags:
                entry["flags"] = col.flags
            out.append(entry)
        return out

    def snapshot_row(self, values: tuple[Any, ...]) -> dict[str, Any]:
        """A snapshot row (from ``snapshot_sql``) as the JSON object the client receives."""
        row: dict[str, Any] = {}
        cols = self.output_columns
        for (key, col), value in zip(cols, values, strict=True):
            row[key] = col.encode(value)
        return row

    @property
    def output_columns(self) -> list[tuple[str, ColumnDef]]:
        """Row keys and columns of snapshot and insert rows: projection (or all) + ``_seq``
        (+ ``_deleted`` for ``*``)."""
        if self.star:
            return [(self.version_key if c.name == "_seq" else c.name, c) for c in self.table.columns]
        return [*self.projection, (self.version_key, self.table.by_name["_seq"])]


def compile_live_query(
    sql: str,
    tables: Mapping[str, TableDef],
    version_key: str = "_seq",
    policy: Callable[[TableDef], str | None] | None = None,
) -> LiveQuery:
    """Parse and validate a subscription's SQL; raises ``LiveQueryError`` with KalamDB's code.

    ``version_key`` names the row-version column in the rows and schema clients get. ``policy``
    gives, for the subscribed table, a condition the subscriber's rows must also meet (0.7's
    row-level policies, ``refserver.policies``), or None.
    """
    try:
        tree = sqlglot.parse_one(sql, read=READ)
    except SqlglotError as exc:
        raise LiveQueryError("INVALID_SQL", f"Invalid SQL: {str(exc).splitlines()[0]}") from None
    if not isinstance(tree, exp.Select):
        raise LiveQueryError("INVALID_SQL", "Live queries must be SELECT statements")
    for clause in ("order", "limit", "offset", "group", "having", "distinct", "with", "joins"):
        if tree.args.get(clause):
            raise LiveQueryError("INVALID_SQL", f"{clause.upper()} is not supported in live queries")
    source = tree.args.get("from_") or tree.args.get("from")
    if source is None or not isinstance(source.this, exp.Table):
        raise LiveQueryError("INVALID_SQL", "Live queries need exactly one table: SELECT ... FROM ns.table")
    node = source.this
    if not node.db:
        raise LiveQueryError("INVALID_SQL", "Live query tables must be namespace-qualified (ns.table)")
    if node.db.lower() == "system":
        raise LiveQueryError("UNSUPPORTED", "System tables cannot be subscribed")
    key = f"{node.db.lower()}.{node.name.lower()}"
    table = tables.get(key)
    if table is None:
        raise LiveQueryError("NOT_FOUND", f"Table '{key}' not found")
    star = False
    projection: list[tuple[str, ColumnDef]] = []
    for proj in tree.expressions:
        if isinstance(proj, exp.Star):
            star = True
            continue
        inner = proj.this if isinstance(proj, exp.Alias) else proj
        if not isinstance(inner, exp.Column):
            raise LiveQueryError("INVALID_SQL", f"Only columns may be projected: {proj.sql()}")
        name = inner.name.lower()
        if name.startswith("_"):
            raise LiveQueryError("INVALID_SQL", f"Column '{name}' cannot be projected in a live query")
        col = table.by_name.get(name)
        if col is None:
            raise LiveQueryError("INVALID_SQL", f"Column '{name}' not found in table '{key}'")
        projection.append((proj.alias if isinstance(proj, exp.Alias) else name, col))
    if star and projection:
        raise LiveQueryError("INVALID_SQL", "Mix of * and columns is not supported in live queries")
    where = tree.args.get("where")
    cond: exp.Expression | None = where.this if where is not None else None
    rule = policy(table) if policy is not None else None
    if rule is not None:
        extra = exp.Paren(this=sqlglot.parse_one(rule, read=READ))
        cond = extra if cond is None else exp.And(this=exp.Paren(this=cond), expression=extra)
    names: list[str] = []
    compiler = Compiler({c.name: c.ktype for c in table.columns})
    try:
        filter_fn = compiler.compile(cond) if cond is not None else None
        condition = to_sqlite(cond, table, names).sql(dialect="sqlite") if cond is not None else "1 = 1"
    except SqlError as exc:
        raise LiveQueryError("INVALID_SQL", exc.message) from None
    live = LiveQuery(
        table,
        star,
        projection,
        filter_fn,
        cond.sql() if cond is not None else "",
        "__user" in names,
        "",
        "",
        "",
        names,
        version_key,
    )
    cols = ", ".join(quote(c.name) for _, c in live.output_columns)
    scope = f"({condition})"
    if table.kind != "STREAM":
        scope += " AND _deleted = 0"
    if table.per_user:
        scope += f" AND {OWNER} = :__owner"
    base = f"FROM {quote(table.key)} WHERE {scope} AND _seq > :__lo"
    live.snapshot_sql = f"SELECT {cols} {base} AND _seq <= :__hi ORDER BY _seq LIMIT :__n"
    live.last_rows_sql = f"SELECT {cols} {base} AND _seq <= :__hi ORDER BY _seq DESC LIMIT :__n"
    live.boundary_sql = f"SELECT MAX(_seq) {base}"
    return live


def options_json(options: dict[str, Any] | None) -> str | None:
    """``system.live.options`` as JSON text (None when the subscription had no options)."""
    return None if options is None else orjson.dumps(options).decode()
