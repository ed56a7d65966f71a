"""The SQL -> SQLite compiler: a parsed KalamDB statement becomes one SQLite statement and a plan to run it.

SELECT keeps its projection typed (for the response schema), reads only live rows of the caller
(soft delete and per-user owner as an added filter), orders by primary key by default and bounds
LIMIT; INSERT becomes an upsert that revives a soft-deleted key; UPDATE and DELETE select the
matching rows first so that the engine can publish each change.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlglot import exp

from refserver.catalog import OWNER, TableDef
from refserver.dialect import LITERAL_BASE
from refserver.errors import SqlError
from refserver.exprs import Compiler, EvalContext, Fn, parameter_number
from refserver.storage import quote
from refserver.system_tables import EPHEMERAL, SYSTEM_TABLES
from refserver.values import BIGINT, BOOLEAN, DOUBLE, TEXT, KType, infer_type

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


@dataclass(slots=True)
class OutputColumn:
    """Output column of a SELECT: name, type (None: inferred from values) and encoder."""

    name: str
    ktype: KType | None
    flags: list[str]


@dataclass(slots=True)
class SelectPlan:
    sql: str
    names: list[str]  # bound names used (p1.., l0.., __owner, __limit)
    outputs: list[OutputColumn]
    limit: exp.Expression | None
    refresh: str | None  # ephemeral system table to refresh first


@dataclass(slots=True)
class InsertPlan:
    table: TableDef
    sql: str
    rows: list[list[tuple[str, Fn]]]
    order: list[str]  # user columns in SQLite parameter order
    defaults: list[tuple[str, Callable[[EvalContext], Any]]]


@dataclass(slots=True)
class ModifyPlan:
    table: TableDef
    select: str
    names: list[str]
    sets: list[tuple[str, Fn, Callable[[Any], Any]]] = field(default_factory=list)
    update_sql: str = ""


def from_table(tree: exp.Select) -> exp.Table | None:
    source = tree.args.get("from_") or tree.args.get("from")
    if source is None:
        return None
    if tree.args.get("joins") or not isinstance(source.this, exp.Table):
        raise SqlError("INVALID_SQL", "Only single-table SELECTs are supported")
    return source.this


def target_table(tree: exp.Expression) -> exp.Table:
    if isinstance(tree, exp.Select):
        table = from_table(tree)
        if table is None:
            raise SqlError("INVALID_SQL", "Statement has no table")
        return table
    node = tree.this
    if isinstance(node, exp.Schema):
        node = node.this
    if not isinstance(node, exp.Table):
        raise SqlError("INVALID_SQL", "Statement has no table")
    return node


def table_key(node: exp.Table, namespace: str) -> str:
    """``ns.table`` of a table node, memoized in the node's meta (sqlglot accessors are slow)."""
    memo = node.meta.get("kdb_keys")
    if memo is None:
        memo = node.meta["kdb_keys"] = {}
    key = memo.get(namespace)
    if key is None:
        key = memo[namespace] = f"{(node.db or namespace).lower()}.{node.name.lower()}"
    return key


def is_system(node: exp.Table) -> bool:
    return (node.db or "").lower() == "system"


def _bind_name(n: int) -> str:
    return f"l{n - LITERAL_BASE}" if n >= LITERAL_BASE else f"p{n}"


def bind_values(names: list[str], ctx: EvalContext, owner: str) -> dict[str, Any]:
    binds: dict[str, Any] = {}
    for name in names:
        if name == "__owner":
            binds[name] = owner
        elif name == "__user":
            binds[name] = ctx.user
        elif name[0] == "l":
            binds[name] = ctx.literals[int(name[1:])]
        elif name[0] == "p":
            binds[name] = ctx.bound(int(name[1:]))
    return binds


def refuse_subqueries(node: exp.Expression) -> None:
    """Refuse a query nested anywhere in ``node`` (itself excepted).

    Only the statement's own table is scoped to the caller's rows; a nested SELECT would read the
    SQLite table underneath as it is, every user's rows included.
    """
    for inner in node.find_all(exp.Query, exp.Subquery):
        if inner is not node:
            raise SqlError("INVALID_SQL", "Subqueries are not supported")


def to_sqlite(node: exp.Expression, table: TableDef | None, names: list[str]) -> exp.Expression:
    """Rewrite parameters to named placeholders and strip column qualifiers; refuse hidden columns and subqueries."""
    refuse_subqueries(node)

    def rewrite(n: exp.Expression) -> exp.Expression:
        number = parameter_number(n)
        if number is not None:
            name = _bind_name(number)
            if name not in names:
                names.append(name)
            return exp.Placeholder(this=name)
        if isinstance(n, exp.Column):
            if n.name.lower() == OWNER:
                raise SqlError("SQL_EXECUTION_ERROR", f"Column '{n.name}' not found")
            if table is not None and n.name.lower() not in table.by_name and not isinstance(n.this, exp.Star):
                raise SqlError("SQL_EXECUTION_ERROR", f"Column '{n.name}' not found in table '{table.key}'")
            return exp.column(n.name.lower(), quoted=True)
        if isinstance(n, exp.CurrentUser):
            if "__user" not in names:
                names.append("__user")
            return exp.Placeholder(this="__user")
        return n

    return node.transform(rewrite, copy=True)


_Columns = dict[str, tuple[str, KType, list[str]]]  # name -> (name, type, flags) of the source's columns


def compile_select(tree: exp.Select, table: TableDef | None, system: str | None) -> SelectPlan:
    """A SELECT over a user table (``table``), a system table (``system``) or no table at all."""
    tree = tree.copy()
    names: list[str] = []
    if tree.args.get("with"):
        raise SqlError("INVALID_SQL", "WITH is not supported")
    by_name = _source_columns(table, system)
    outputs = _typed_projections(tree, by_name)
    limit = tree.args.get("limit")
    limit_expr = limit.expression if limit is not None else None
    rewritten = to_sqlite(tree, table, names)
    assert isinstance(rewritten, exp.Select)  # only leaves are rewritten
    tree = rewritten
    if system:
        _check_system_columns(tree, by_name, system)
    source = tree.args.get("from_")
    if source is not None:
        target = table.key if table is not None else system
        source.set("this", exp.Table(this=exp.to_identifier(target, quoted=True)))
    if table is not None:
        tree = _live_rows_of_caller(tree, table, names)
    if source is not None:
        tree.set("limit", exp.Limit(expression=exp.Placeholder(this="__limit")))
        names.append("__limit")
    sql = tree.sql(dialect="sqlite")
    return SelectPlan(sql, names, outputs, limit_expr, system if system in EPHEMERAL else None)


def _source_columns(table: TableDef | None, system: str | None) -> _Columns:
    """The columns a SELECT may name: the table's, the system table's, or none (a SELECT without FROM)."""
    if table is not None:
        return {c.name: (c.name, c.ktype, c.flags) for c in table.columns}
    return {c: (c, t, []) for c, t in SYSTEM_TABLES.get(system or "", [])}


def _typed_projections(tree: exp.Select, by_name: _Columns) -> list[OutputColumn]:
    """Expand ``*`` in place and type each output column (its name, KalamDB type and flags)."""
    projections: list[exp.Expression] = []
    for proj in tree.expressions:
        if isinstance(proj, exp.Star) or (isinstance(proj, exp.Column) and isinstance(proj.this, exp.Star)):
            projections.extend(exp.column(name) for name in by_name)
        else:
            projections.append(proj)
    outputs: list[OutputColumn] = []
    for proj in projections:
        inner = proj.this if isinstance(proj, exp.Alias) else proj
        if isinstance(proj, exp.Alias | exp.Column):
            name = proj.alias_or_name.lower() if isinstance(proj, exp.Column) else proj.alias
        else:
            name = proj.sql(dialect="postgres").lower()
        ktype, flags = _output_type(inner, by_name)
        outputs.append(OutputColumn(name, ktype, flags if isinstance(proj, exp.Column) else []))
    tree.set("expressions", projections)
    return outputs


def _check_system_columns(tree: exp.Expression, by_name: _Columns, system: str) -> None:
    """A system table has no catalogue entry, so ``to_sqlite`` cannot check its column names: check here."""
    for col in tree.find_all(exp.Column):
        if col.name not in by_name:
            raise SqlError("SQL_EXECUTION_ERROR", f"Column '{col.name}' not found in table '{system}'")


def _live_rows_of_caller(tree: exp.Select, table: TableDef, names: list[str]) -> exp.Select:
    """Add the soft-delete and owner filter, and the default order by primary key (unless aggregating)."""
    extra = "_deleted = 0" if table.kind != "STREAM" else "1 = 1"
    condition = (
        exp.and_(exp.condition(extra), exp.condition(f"{OWNER} = :__owner")) if table.per_user else exp.condition(extra)
    )
    where = tree.args.get("where")
    tree.set("where", exp.Where(this=exp.and_(exp.paren(where.this), condition) if where else condition))
    if table.per_user and "__owner" not in names:
        names.append("__owner")
    aggregate = tree.find(exp.AggFunc) is not None or tree.args.get("group") is not None
    if not tree.args.get("order") and not aggregate:
        tree = tree.order_by(exp.column(table.pk.name, quoted=True))
    return tree


def _output_type(
    node: exp.Expression, by_name: Mapping[str, tuple[str, KType, list[str]]]
) -> tuple[KType | None, list[str]]:
    if isinstance(node, exp.Column):
        col = by_name.get(node.name.lower())
        return (col[1], col[2]) if col else (None, [])
    if isinstance(node, exp.Count):
        return BIGINT, []
    if isinstance(node, exp.Max | exp.Min):
        inner, _ = _output_type(node.this, by_name)
        return inner, []
    if isinstance(node, exp.Sum):
        inner, _ = _output_type(node.this, by_name)
        return (BIGINT if inner is not None and inner.sqlite == "INTEGER" else DOUBLE), []
    if isinstance(node, exp.Avg):
        return DOUBLE, []
    if isinstance(node, exp.Boolean):
        return BOOLEAN, []
    return None, []


def limit_value(node: exp.Expression | None, ctx: EvalContext) -> int:
    if node is None:
        return DEFAULT_LIMIT
    number = parameter_number(node)
    value: Any = ctx.bound(number) if number is not None else (node.this if isinstance(node, exp.Literal) else None)
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise SqlError("INVALID_SQL", f"Invalid LIMIT: {node.sql()}") from None
    return max(0, min(limit, MAX_LIMIT))


def first_type(rows: list[tuple[Any, ...]], index: int) -> KType:
    for row in rows:
        if row[index] is not None:
            return infer_type(row[index])
    return TEXT


def compile_insert(tree: exp.Insert, table: TableDef) -> InsertPlan:
    target = tree.this
    if isinstance(target, exp.Schema):
        names = [e.name.lower() for e in target.expressions]
    else:
        names = [c.name for c in table.user_columns]
    for name in names:
        if name not in table.by_name or name.startswith("_"):
            raise SqlError("SQL_EXECUTION_ERROR", f"Column '{name}' not found in table '{table.key}'")
    if len(set(names)) != len(names):
        raise SqlError("SQL_EXECUTION_ERROR", "Duplicate column in INSERT")
    values = tree.expression
    if not isinstance(values, exp.Values):
        raise SqlError("INVALID_SQL", "INSERT needs VALUES (...)")
    compiler = Compiler({c.name: c.ktype for c in table.columns})
    rows: list[list[tuple[str, Fn]]] = []
    for tup in values.expressions:
        items = tup.expressions if isinstance(tup, exp.Tuple) else [tup]
        if len(items) != len(names):
            raise SqlError("SQL_EXECUTION_ERROR", f"INSERT has {len(names)} columns but {len(items)} values")
        row = []
        for name, item in zip(names, items, strict=True):
            col = table.by_name[name]
            fn = compiler.compile(item)
            row.append((name, _coerced(fn, col.coerce)))
        rows.append(row)
    defaults: list[tuple[str, Callable[[EvalContext], Any]]] = []
    for col in table.user_columns:
        if col.auto_id:
            defaults.append((col.name, lambda ctx: ctx.ids.next()))
        elif col.default is not None:
            fn = _coerced(compiler.compile(col.default), col.coerce)
            defaults.append((col.name, _constant_default(fn)))
    order = [c.name for c in table.user_columns]
    cols = ", ".join([OWNER, *(quote(c) for c in order), "_seq"])
    marks = ", ".join("?" for _ in range(len(order) + 2))
    name = quote(table.key)
    if table.kind == "STREAM":
        sql = f"INSERT OR IGNORE INTO {name} ({cols}) VALUES ({marks})"
    else:
        updates = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in [*order, "_seq"])
        sql = (
            f"INSERT INTO {name} ({cols}) VALUES ({marks}) ON CONFLICT ({OWNER}, {quote(table.pk.name)}) "
            f"DO UPDATE SET {updates}, _deleted = 0 WHERE {name}._deleted = 1"
        )
    return InsertPlan(table, sql, rows, order, defaults)


def _constant_default(fn: Fn) -> Callable[[EvalContext], Any]:
    """A column's DEFAULT expression, evaluated without a row."""
    return lambda ctx: fn({}, ctx)


def _coerced(fn: Fn, coerce: Callable[[Any], Any]) -> Fn:
    return lambda row, ctx: coerce(fn(row, ctx))


def compile_modify(tree: exp.Update | exp.Delete, table: TableDef) -> ModifyPlan:
    where = tree.args.get("where")
    verb = "UPDATE" if isinstance(tree, exp.Update) else "DELETE"
    if where is None:
        raise SqlError("SQL_EXECUTION_ERROR", f"{verb} requires a WHERE clause")
    names: list[str] = []
    condition = to_sqlite(where.this, table, names)
    extra = "" if table.kind == "STREAM" else " AND _deleted = 0"
    owner = f" AND {OWNER} = :__owner" if table.per_user else ""
    if table.per_user:
        names.append("__owner")
    cols = ", ".join(quote(c.name) for c in table.columns)
    select = (
        f"SELECT rowid, {cols} FROM {quote(table.key)} WHERE ({condition.sql(dialect='sqlite')}){extra}{owner} "
        f"ORDER BY _seq"
    )
    plan = ModifyPlan(table, select, names)
    if isinstance(tree, exp.Update):
        compiler = Compiler({c.name: c.ktype for c in table.columns})
        for assignment in tree.expressions:
            if not isinstance(assignment, exp.EQ) or not isinstance(assignment.this, exp.Column):
                raise SqlError("INVALID_SQL", f"Unsupported SET item: {assignment.sql()}")
            name = assignment.this.name.lower()
            col = table.by_name.get(name)
            if col is None or name.startswith("_"):
                raise SqlError("SQL_EXECUTION_ERROR", f"Column '{name}' not found in table '{table.key}'")
            if col.primary_key:
                raise SqlError("SQL_EXECUTION_ERROR", f"Primary key column '{name}' cannot be updated")
            plan.sets.append((name, compiler.compile(assignment.expression), col.coerce))
        sets = ", ".join(f"{quote(name)} = ?" for name, _, _ in plan.sets)
        plan.update_sql = f"UPDATE {quote(table.key)} SET {sets}, _seq = ? WHERE rowid = ?"
    return plan
