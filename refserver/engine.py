"""SQL execution: permissions, DDL, DML with ``_seq``/soft delete and change events, SELECT through SQLite.

Each statement plan from ``dialect`` is compiled (by ``sqlite_compile``) once per table definition
and cached on the plan, so a repeated INSERT with parameters costs one SQLite statement and a few dict operations.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from sqlglot import exp

from refserver import auth
from refserver.catalog import RESERVED_NAMESPACES, TableDef, build_table, check_name
from refserver.dialect import (
    AlterUser,
    Bound,
    CreateNamespace,
    CreateTable,
    CreateUser,
    DropNamespace,
    DropTable,
    DropUser,
    ExecuteAs,
    KillJob,
    KillLiveQuery,
    PlanCache,
    Query,
    StorageFlush,
    split_statements,
)
from refserver.errors import SqlError, denied, not_found
from refserver.exprs import EvalContext
from refserver.policies import CreatePolicy, DropPolicy, Policy
from refserver.snowflake import IdSource, Snowflake
from refserver.sqlite_compile import (
    ModifyPlan,
    bind_values,
    compile_insert,
    compile_modify,
    compile_select,
    first_type,
    from_table,
    is_system,
    limit_value,
    table_key,
    target_table,
)
from refserver.storage import Store, UserRecord, now_us, quote
from refserver.system_tables import SYSTEM_TABLES
from refserver.values import (
    encoder,
)

log = logging.getLogger("lqrefserver.engine")


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller."""

    user_id: str
    role: str


@dataclass(slots=True)
class CommittedChange:
    """One committed row change, as the live-query fan-out needs it."""

    table: TableDef
    owner: str
    kind: str  # insert, update, delete
    new: dict[str, Any] | None  # the row after (delete: the tombstone)
    old: dict[str, Any] | None  # the row before (insert: None)
    seq: int


class Hooks(Protocol):
    """What the engine needs from the rest of the server."""

    def live_rows(self) -> list[tuple[Any, ...]]: ...

    def stats_rows(self) -> list[tuple[str, str]]: ...

    def kill_live(self, live_id: str) -> bool: ...

    def start_flush(self, table: TableDef) -> str | None: ...

    def kill_job(self, job_id: str) -> bool: ...

    def on_changes(self, changes: list[CommittedChange]) -> None: ...

    def on_user_dropped(self, user_id: str) -> None: ...

    def on_table_dropped(self, key: str) -> None: ...


_VERSION_WORD = re.compile(r"'(?:[^']|'')*'|\b_version\b", re.IGNORECASE)  # a string literal, or the word


class StatementError(Exception):
    """Statement ``index`` (1-based) of a request failed."""

    def __init__(self, index: int, error: SqlError) -> None:
        super().__init__(f"Statement {index} failed: {error.message}")
        self.index = index
        self.error = error


class Engine:
    """Runs SQL requests for authenticated principals against the store."""

    def __init__(
        self,
        store: Store,
        ids: Snowflake,
        hooks: Hooks,
        node_id: int,
        versions: IdSource | None = None,
        version_column: str = "_seq",
        row_policies: bool = False,
    ) -> None:
        self.store = store
        self.row_policies = row_policies  # 0.7: CREATE / DROP POLICY on SHARED tables (refserver.policies)
        self.db = store.db
        self.ids = ids  # SNOWFLAKE_ID() values
        self.versions: IdSource = versions or ids  # row versions (``_seq``; 0.7 shows them as ``_version``)
        self.version_column = version_column
        self.hooks = hooks
        self.node_id = node_id
        self.plans = PlanCache()
        self._temp_created: set[str] = set()
        self._splits: dict[str, list[str]] = {}

    # ------------------------------------------------------------ requests

    def split(self, sql: str) -> list[str]:
        """Statements of a request, cached by text (clients repeat their DML texts)."""
        parts = self._splits.get(sql)
        if parts is None:
            parts = split_statements(self._storage_names(sql))
            if len(self._splits) > 4096:
                self._splits.clear()
            self._splits[sql] = parts
        return parts

    def _storage_names(self, sql: str) -> str:
        """0.7: ``_version`` in SQL names the stored ``_seq`` column (string literals are left alone)."""
        if self.version_column == "_seq" or self.version_column not in sql:
            return sql
        return _VERSION_WORD.sub(lambda m: m.group(0) if m.group(0).startswith("'") else "_seq", sql)

    def execute(
        self, principal: Principal, statements: Sequence[str], params: list[Any], namespace: str
    ) -> list[dict[str, Any]]:
        """Run statements in order; stop at the first failure (``StatementError``), earlier ones stay done."""
        results: list[dict[str, Any]] = []
        folded: dict[str, list[Any]] = {}
        batch = len(statements) > 1
        for index, text in enumerate(statements, start=1):
            try:
                bound = self.plans.plan(text)
                result, dml = self._run(bound, principal, principal.user_id, params, namespace)
            except SqlError as exc:
                raise StatementError(index, exc) from None
            except sqlite3.Error as exc:
                raise StatementError(index, SqlError("SQL_EXECUTION_ERROR", str(exc))) from None
            except Exception as exc:  # noqa: BLE001 - a bug must fail the statement, never the server
                log.exception("internal error in statement %d: %s", index, auth.redact_passwords(text)[:200])
                raise StatementError(index, SqlError("INTERNAL_ERROR", f"Internal error: {exc}")) from None
            if batch and dml is not None:
                entry = folded.setdefault(dml, [0, result["as_user"]])
                entry[0] += result["row_count"]
            else:
                results.append(result)
        for kind, verb in (("insert", "Inserted"), ("update", "Updated"), ("delete", "Deleted")):
            if kind in folded:
                count, as_user = folded[kind]
                results.append({"row_count": count, "as_user": as_user, "message": f"{verb} {count} row(s)"})
        return results

    def _run(
        self, bound: Bound, principal: Principal, as_user: str, params: list[Any], namespace: str
    ) -> tuple[dict[str, Any], str | None]:
        stmt = bound.stmt
        if isinstance(stmt, Query):
            ctx = EvalContext(params, bound.literals, as_user, self.ids)
            tree = stmt.tree
            if isinstance(tree, exp.Select):
                return self._select(stmt, principal, as_user, ctx, namespace), None
            if isinstance(tree, exp.Insert):
                return self._insert(stmt, principal, as_user, ctx, namespace), "insert"
            if isinstance(tree, exp.Update):
                return self._update(stmt, principal, as_user, ctx, namespace), "update"
            return self._delete(stmt, principal, as_user, ctx, namespace), "delete"
        if isinstance(stmt, ExecuteAs):
            return self._execute_as(stmt, bound, principal, params, namespace)
        handler = _DDL.get(type(stmt))
        if handler is None:
            raise SqlError("INVALID_SQL", f"Unsupported statement: {stmt.sql}")
        message = handler(self, stmt, principal, namespace)
        return {"row_count": 0, "as_user": as_user, "message": message}, None

    # ------------------------------------------------------------ impersonation

    def _execute_as(
        self, stmt: ExecuteAs, bound: Bound, principal: Principal, params: list[Any], namespace: str
    ) -> tuple[dict[str, Any], str | None]:
        target = stmt.user
        record = self.store.user(target)
        target_role = record.role if record else "user"
        allowed = {
            "system": auth.ROLES,
            "dba": ("dba", "service", "user"),
            "service": ("service", "user"),
            "user": (),
        }[principal.role]
        if target != principal.user_id and target_role not in allowed:
            raise denied(f"Role '{principal.role}' cannot execute as user '{target}'")
        if not isinstance(stmt.inner, Query):
            raise SqlError("INVALID_SQL", "EXECUTE AS USER wraps one SELECT, INSERT, UPDATE or DELETE")
        table = self._table(target_table(stmt.inner.tree), namespace)
        if table.kind == "SHARED":
            raise SqlError("SQL_EXECUTION_ERROR", "EXECUTE AS USER is not allowed on SHARED tables")
        inner = Bound(stmt.inner, bound.literals)
        return self._run(inner, principal, target, params, namespace)

    # ------------------------------------------------------------ tables and access

    def _table(self, node: exp.Table, namespace: str) -> TableDef:
        key = table_key(node, namespace)
        table = self.store.tables.get(key)
        if table is None:
            raise not_found(key)
        return table

    def _check_access(self, table: TableDef, principal: Principal, write: bool) -> None:
        if table.kind != "SHARED" or principal.role in ("dba", "system"):
            return
        level = table.access_level
        if level == "PUBLIC" and (not write or principal.role == "service"):
            return
        if level in ("PRIVATE", "RESTRICTED") and principal.role == "service":
            return
        raise denied(f"Access denied to shared table '{table.key}' ({level})")

    # ------------------------------------------------------------ SELECT

    def _select(
        self, stmt: Query, principal: Principal, as_user: str, ctx: EvalContext, namespace: str
    ) -> dict[str, Any]:
        tree = stmt.tree
        assert isinstance(tree, exp.Select)
        source = from_table(tree)
        if source is not None and is_system(source):
            if principal.role not in ("dba", "system"):
                raise denied("System tables are readable by dba and system roles only")
            key: Any = f"system.{source.name.lower()}"
            if key not in SYSTEM_TABLES:
                raise not_found(key)
            table = None
        elif source is not None:
            table = self._table(source, namespace)
            self._check_access(table, principal, write=False)
            key = (table.key, table.created_at)
        else:
            key, table = "", None
        compiled = stmt.compiled.get(key)
        if compiled is None:
            compiled = compile_select(tree, table, key if isinstance(key, str) else None)
            stmt.compiled[key] = compiled
        if compiled.refresh:
            self._refresh(compiled.refresh)
        binds = bind_values(compiled.names, ctx, as_user)
        if "__limit" in compiled.names:
            binds["__limit"] = limit_value(compiled.limit, ctx)
        rows = self.db.execute(compiled.sql, binds).fetchall()
        outputs = compiled.outputs
        types = [o.ktype or first_type(rows, i) for i, o in enumerate(outputs)]
        encoders = [encoder(t) for t in types]
        out_rows = [[enc(v) for enc, v in zip(encoders, row, strict=False)] for row in rows]
        schema = []
        for i, (o, t) in enumerate(zip(outputs, types, strict=True)):
            name = self.version_column if o.name == "_seq" else o.name
            entry: dict[str, Any] = {"name": name, "data_type": t.wire, "index": i}
            if o.flags:
                entry["flags"] = o.flags
            schema.append(entry)
        return {"schema": schema, "rows": out_rows, "row_count": len(out_rows), "as_user": as_user}

    def _refresh(self, name: str) -> None:
        cols = SYSTEM_TABLES[name]
        if name not in self._temp_created:
            spec = ", ".join(f"{quote(c)} {t.sqlite}" for c, t in cols)
            self.db.execute(f"CREATE TEMP TABLE IF NOT EXISTS {quote(name)} ({spec})")
            self._temp_created.add(name)
        rows = self.hooks.live_rows() if name == "system.live" else self.hooks.stats_rows()
        self.db.execute("BEGIN")
        self.db.execute(f"DELETE FROM temp.{quote(name)}")
        self.db.executemany(f"INSERT INTO temp.{quote(name)} VALUES ({', '.join('?' for _ in cols)})", rows)
        self.db.execute("COMMIT")

    # ------------------------------------------------------------ INSERT

    def _dml_table(self, tree: exp.Expression, principal: Principal, namespace: str) -> TableDef:
        node = target_table(tree)
        if is_system(node):
            raise denied("DML on system tables is not allowed")
        table = self._table(node, namespace)
        self._check_access(table, principal, write=True)
        return table

    def _insert(
        self, stmt: Query, principal: Principal, as_user: str, ctx: EvalContext, namespace: str
    ) -> dict[str, Any]:
        table = self._dml_table(stmt.tree, principal, namespace)
        key = (table.key, table.created_at)
        plan = stmt.compiled.get(key)
        if plan is None:
            assert isinstance(stmt.tree, exp.Insert)
            plan = stmt.compiled[key] = compile_insert(stmt.tree, table)
        owner = as_user if table.per_user else ""
        changes: list[CommittedChange] = []
        prepared: list[tuple[Any, ...]] = []
        for row_fns in plan.rows:
            row: dict[str, Any] = {}
            for name, fn in row_fns:
                row[name] = fn(row, ctx)
            for name, default in plan.defaults:
                if name not in row:
                    row[name] = default(ctx)
            for name in table.required:
                if row.get(name) is None:
                    raise SqlError("SQL_EXECUTION_ERROR", f"Column '{name}' cannot be null")
            seq = self.versions.next()
            row["_seq"] = seq
            if table.kind != "STREAM":
                row["_deleted"] = False
            prepared.append((owner, *[row.get(c) for c in plan.order], seq))
            changes.append(CommittedChange(table, owner, "insert", row, None, seq))
        self._write_many(plan.sql, prepared, duplicate=table.pk.name)
        self.hooks.on_changes(changes)
        return {"row_count": len(changes), "as_user": as_user, "message": f"Inserted {len(changes)} row(s)"}

    def _write_many(self, sql: str, rows: list[tuple[Any, ...]], duplicate: str) -> None:
        single = len(rows) == 1
        if not single:
            self.db.execute("BEGIN")
        try:
            for values in rows:
                if self.db.execute(sql, values).rowcount == 0:
                    raise SqlError(
                        "SQL_EXECUTION_ERROR",
                        f"Primary key violation: a row with this {duplicate} already exists",
                    )
        except BaseException:
            if not single:
                self.db.execute("ROLLBACK")
            raise
        if not single:
            self.db.execute("COMMIT")

    # ------------------------------------------------------------ UPDATE / DELETE

    def _modify_plan(self, stmt: Query, table: TableDef) -> ModifyPlan:
        key = (table.key, table.created_at)
        plan = stmt.compiled.get(key)
        if plan is None:
            assert isinstance(stmt.tree, exp.Update | exp.Delete)
            plan = stmt.compiled[key] = compile_modify(stmt.tree, table)
        return plan

    def _matching(self, plan: ModifyPlan, ctx: EvalContext, owner: str) -> list[tuple[int, dict[str, Any]]]:
        binds = bind_values(plan.names, ctx, owner)
        names = [c.name for c in plan.table.columns]
        found = []
        for row in self.db.execute(plan.select, binds):
            values = dict(zip(names, row[1:], strict=True))
            if "_deleted" in values:
                values["_deleted"] = bool(values["_deleted"])
            found.append((row[0], values))
        return found

    def _update(
        self, stmt: Query, principal: Principal, as_user: str, ctx: EvalContext, namespace: str
    ) -> dict[str, Any]:
        table = self._dml_table(stmt.tree, principal, namespace)
        if table.kind == "STREAM":
            raise SqlError("SQL_EXECUTION_ERROR", "UPDATE is not supported on STREAM tables")
        plan = self._modify_plan(stmt, table)
        owner = as_user if table.per_user else ""
        changes: list[CommittedChange] = []
        writes: list[tuple[Any, ...]] = []
        for rowid, old in self._matching(plan, ctx, owner):
            new = dict(old)
            for name, fn, coerce in plan.sets:
                new[name] = coerce(fn(old, ctx))
                if new[name] is None and table.by_name[name].not_null:
                    raise SqlError("SQL_EXECUTION_ERROR", f"Column '{name}' cannot be null")
            seq = self.versions.next()
            new["_seq"] = seq
            writes.append((*[new[name] for name, _, _ in plan.sets], seq, rowid))
            changes.append(CommittedChange(table, owner, "update", new, old, seq))
        self._write_many(plan.update_sql, writes, duplicate=table.pk.name)
        self.hooks.on_changes(changes)
        return {"row_count": len(changes), "as_user": as_user, "message": f"Updated {len(changes)} row(s)"}

    def _delete(
        self, stmt: Query, principal: Principal, as_user: str, ctx: EvalContext, namespace: str
    ) -> dict[str, Any]:
        table = self._dml_table(stmt.tree, principal, namespace)
        plan = self._modify_plan(stmt, table)
        owner = as_user if table.per_user else ""
        changes: list[CommittedChange] = []
        writes: list[tuple[Any, ...]] = []
        hard = table.kind == "STREAM"
        for rowid, old in self._matching(plan, ctx, owner):
            seq = self.versions.next()
            tombstone = dict(old)
            tombstone["_seq"] = seq
            if not hard:
                tombstone["_deleted"] = True
            writes.append((rowid,) if hard else (seq, rowid))
            changes.append(CommittedChange(table, owner, "delete", tombstone, old, seq))
        sql = (
            f"DELETE FROM {quote(table.key)} WHERE rowid = ?"
            if hard
            else f"UPDATE {quote(table.key)} SET _seq = ?, _deleted = 1 WHERE rowid = ?"
        )
        self._write_many(sql, writes, duplicate=table.pk.name)
        self.hooks.on_changes(changes)
        return {"row_count": len(changes), "as_user": as_user, "message": f"Deleted {len(changes)} row(s)"}

    # ------------------------------------------------------------ DDL and admin

    def _require(self, principal: Principal, roles: Iterable[str], what: str) -> None:
        if principal.role not in roles:
            raise denied(f"Role '{principal.role}' may not {what}")

    def _create_namespace(self, stmt: CreateNamespace, principal: Principal, namespace: str) -> str:
        self._require(principal, ("dba", "system"), "create namespaces")
        name = check_name(stmt.name, "namespace")
        if name in RESERVED_NAMESPACES:
            raise SqlError("SQL_EXECUTION_ERROR", f"Namespace name '{name}' is reserved")
        if name in self.store.namespaces:
            if stmt.if_not_exists:
                return f"Namespace '{name}' already exists"
            raise SqlError("SQL_EXECUTION_ERROR", f"Namespace '{name}' already exists")
        self.store.create_namespace(name)
        return f"Namespace '{name}' created successfully"

    def _drop_namespace(self, stmt: DropNamespace, principal: Principal, namespace: str) -> str:
        self._require(principal, ("dba", "system"), "drop namespaces")
        name = stmt.name.lower()
        if name not in self.store.namespaces:
            if stmt.if_exists:
                return f"Namespace '{name}' does not exist"
            raise SqlError("SQL_EXECUTION_ERROR", f"Namespace '{name}' not found")
        if name == "default":
            raise SqlError("SQL_EXECUTION_ERROR", "The default namespace cannot be dropped")
        if any(t.namespace == name for t in self.store.tables.values()) and not stmt.cascade:
            raise SqlError("SQL_EXECUTION_ERROR", f"Namespace '{name}' is not empty (use CASCADE)")
        dropped = [t.key for t in self.store.tables.values() if t.namespace == name]
        self.store.drop_namespace(name)
        for key in dropped:
            self.hooks.on_table_dropped(key)
        return f"Namespace '{name}' dropped successfully"

    def _create_table(self, stmt: CreateTable, principal: Principal, namespace: str) -> str:
        ns = check_name(stmt.namespace or namespace, "namespace")
        if ns not in self.store.namespaces:
            raise SqlError("SQL_EXECUTION_ERROR", f"Namespace '{ns}' does not exist")
        table = build_table(stmt, ns, now_us())
        allowed = {
            "user": ("USER", "STREAM"),
            "service": ("USER", "SHARED", "STREAM"),
            "dba": ("USER", "SHARED", "STREAM"),
            "system": ("USER", "SHARED", "STREAM"),
        }[principal.role]
        if table.kind not in allowed:
            raise denied(f"Role '{principal.role}' may not create {table.kind} tables")
        if table.key in self.store.tables:
            if stmt.if_not_exists:
                return f"Table '{table.key}' already exists"
            raise SqlError("SQL_EXECUTION_ERROR", f"Table '{table.key}' already exists")
        self.store.create_table(table)
        return f"Table '{table.key}' created successfully"

    def _drop_table(self, stmt: DropTable, principal: Principal, namespace: str) -> str:
        self._require(principal, ("service", "dba", "system"), "drop tables")
        key = f"{(stmt.namespace or namespace).lower()}.{stmt.name.lower()}"
        table = self.store.tables.get(key)
        if table is None:
            if stmt.if_exists:
                return f"Table '{key}' does not exist"
            raise not_found(key)
        self.store.drop_table(table)
        self.hooks.on_table_dropped(key)
        return f"Table '{key}' dropped successfully"

    def _create_user(self, stmt: CreateUser, principal: Principal, namespace: str) -> str:
        self._require(principal, ("dba", "system"), "create users")
        role = auth.canonical_role(stmt.role)
        if not stmt.user or len(stmt.user) > 128 or any(c.isspace() for c in stmt.user):
            raise SqlError("INVALID_SQL", f"Invalid user name '{stmt.user}'")
        if role == "system" and principal.role != "system":
            raise denied("Only system users may create system users")
        if self.store.user(stmt.user) is not None:
            if stmt.if_not_exists:
                return f"User '{stmt.user}' already exists"
            raise SqlError("SQL_EXECUTION_ERROR", f"User '{stmt.user}' already exists")
        auth.check_password(stmt.password)
        now = now_us()
        self.store.put_user(UserRecord(stmt.user, auth.hash_password(stmt.password), role, stmt.email, now, now))
        return f"User '{stmt.user}' created successfully"

    def _alter_user(self, stmt: AlterUser, principal: Principal, namespace: str) -> str:
        record = self.store.user(stmt.user)
        if record is None:
            raise SqlError("SQL_EXECUTION_ERROR", f"User '{stmt.user}' not found")
        self_password = stmt.user == principal.user_id and stmt.attribute == "password"
        if not self_password:
            self._require(principal, ("dba", "system"), "alter users")
        if stmt.attribute == "password":
            auth.check_password(stmt.value)
            record.password_hash = auth.hash_password(stmt.value)
        elif stmt.attribute == "role":
            record.role = auth.canonical_role(stmt.value)
        else:
            record.email = stmt.value
        record.updated_at = now_us()
        self.store.put_user(record)
        if stmt.attribute == "role":
            self.hooks.on_user_dropped(stmt.user)
        return f"User '{stmt.user}' updated successfully"

    def _drop_user(self, stmt: DropUser, principal: Principal, namespace: str) -> str:
        self._require(principal, ("dba", "system"), "drop users")
        if stmt.user == "root":
            raise SqlError("SQL_EXECUTION_ERROR", "The root user cannot be dropped")
        if not self.store.delete_user(stmt.user):
            if stmt.if_exists:
                return f"User '{stmt.user}' does not exist"
            raise SqlError("SQL_EXECUTION_ERROR", f"User '{stmt.user}' not found")
        self.hooks.on_user_dropped(stmt.user)
        return f"User '{stmt.user}' dropped successfully"

    def _storage_flush(self, stmt: StorageFlush, principal: Principal, namespace: str) -> str:
        self._require(principal, ("service", "dba", "system"), "flush tables")
        if stmt.table is None:
            ns = (stmt.namespace or namespace).lower()
            started = [
                self.hooks.start_flush(t)
                for t in list(self.store.tables.values())
                if t.namespace == ns and t.kind != "STREAM"
            ]
            jobs = [j for j in started if j]
            return f"Storage flush started for {len(jobs)} table(s) in namespace '{ns}'. Job IDs: {', '.join(jobs)}"
        table = self._table(
            exp.Table(this=exp.to_identifier(stmt.table), db=exp.to_identifier(stmt.namespace)), namespace
        )
        if table.kind == "STREAM":
            raise SqlError("SQL_EXECUTION_ERROR", "STREAM tables cannot be flushed")
        job_id = self.hooks.start_flush(table)
        if job_id is None:
            return f"Storage flush skipped: no pending writes for table '{table.key}'"
        return f"Storage flush started for table '{table.key}'. Job ID: {job_id}"

    def _kill_live(self, stmt: KillLiveQuery, principal: Principal, namespace: str) -> str:
        self._require(principal, ("dba", "system"), "kill live queries")
        if not self.hooks.kill_live(stmt.live_id):
            raise SqlError("SQL_EXECUTION_ERROR", f"Live query not found: {stmt.live_id}")
        return f"Live query killed: {stmt.live_id}"

    def _policy_table(self, stmt: CreatePolicy | DropPolicy, principal: Principal, namespace: str) -> TableDef:
        """The SHARED table a policy statement names, once the generation and the role allow it."""
        if not self.row_policies:
            raise SqlError("INVALID_SQL", f"Unsupported statement: {stmt.sql.strip()[:60]}")
        if principal.role not in ("service", "dba", "system"):
            raise denied("Policies may be changed by System, DBA, or Service roles only")
        key = f"{stmt.namespace or namespace}.{stmt.table}"
        table = self.store.tables.get(key)
        if table is None:
            raise not_found(key)
        if table.kind != "SHARED":
            raise SqlError("SQL_EXECUTION_ERROR", f"Policies apply to SHARED tables; '{key}' is {table.kind}")
        return table

    def _create_policy(self, stmt: CreatePolicy, principal: Principal, namespace: str) -> str:
        table = self._policy_table(stmt, principal, namespace)
        if stmt.name in self.store.policies.get(table.key, {}):
            raise SqlError("SQL_EXECUTION_ERROR", f"Policy '{stmt.name}' already exists on '{table.key}'")
        for clause in (stmt.using_sql, stmt.check_sql):
            if clause is not None:
                self._check_policy_clause(clause, table)
        policy = Policy(stmt.name, table.key, stmt.command, stmt.targets, stmt.using_sql, stmt.check_sql)
        self.store.put_policy(policy)
        return f"Policy '{stmt.name}' created on '{table.key}'"

    def _check_policy_clause(self, clause: str, table: TableDef) -> None:
        """A policy's expression must compile against its table, as a subscription's WHERE does."""
        from refserver.live_query import LiveQueryError, compile_live_query

        try:
            compile_live_query(f"SELECT * FROM {table.key} WHERE {clause}", self.store.tables)
        except LiveQueryError as exc:
            raise SqlError("INVALID_SQL", f"Invalid policy expression: {exc.message}") from None

    def _drop_policy(self, stmt: DropPolicy, principal: Principal, namespace: str) -> str:
        table = self._policy_table(stmt, principal, namespace)
        if stmt.name not in self.store.policies.get(table.key, {}):
            if stmt.if_exists:
                return f"Policy '{stmt.name}' does not exist on '{table.key}'"
            raise SqlError("SQL_EXECUTION_ERROR", f"Policy '{stmt.name}' not found on '{table.key}'")
        self.store.drop_policy(table.key, stmt.name)
        return f"Policy '{stmt.name}' dropped from '{table.key}'"

    def _kill_job(self, stmt: KillJob, principal: Principal, namespace: str) -> str:
        self._require(principal, ("dba", "system"), "kill jobs")
        if not self.hooks.kill_job(stmt.job_id):
            raise SqlError("SQL_EXECUTION_ERROR", f"Job not found or already finished: {stmt.job_id}")
        return f"Job cancelled: {stmt.job_id}"


_DDL: dict[type, Callable[[Engine, Any, Principal, str], str]] = {
    CreateNamespace: Engine._create_namespace,
    DropNamespace: Engine._drop_namespace,
    CreateTable: Engine._create_table,
    DropTable: Engine._drop_table,
    CreateUser: Engine._create_user,
    AlterUser: Engine._alter_user,
    DropUser: Engine._drop_user,
    StorageFlush: Engine._storage_flush,
    KillLiveQuery: Engine._kill_live,
    KillJob: Engine._kill_job,
    CreatePolicy: Engine._create_policy,
    DropPolicy: Engine._drop_policy,
}
