"""KalamDB over ``POST /v1/api/sql``: the SQL session, and the admin and writer sessions built on it.

The sessions take the interface's typed values (schemas, filters, users) and have ``dialect``
write the statements; replies are read by ``wire``.
"""

from __future__ import annotations

import time
from typing import Any

from harness.targets.base import Eq, Outcome, Row, Schema, TableKind, TargetError, WriteResult
from harness.targets.kalamdb import dialect, wire
from harness.targets.kalamdb.auth import Credentials
from harness.targets.kalamdb.generation import MEMORY
from harness.targets.kalamdb.settings import Settings
from harness.targets.kalamdb.transport import Endpoint, Http, TransportError

__all__ = ["KalamAdmin", "KalamWriter", "SqlSession", "probe_generation"]

SQL_PATH = "/v1/api/sql"
PAGE = wire.PAGE
MAX_PAGES = 1000  # bounds the paging of system.live


class SqlSession:
    """``POST /v1/api/sql`` as one user over one connection.

    A 401 (token expired, or signed with a secret the server no longer has after a restart)
    means the statement was not run: the token is dropped, and one fresh login and retry follow.
    """

    def __init__(self, endpoint: Endpoint, creds: Credentials, timeout: float) -> None:
        self.creds = creds
        self.timeout = timeout
        self.http = Http(endpoint, timeout)

    def post(self, sql: str, params: list[Any] | None = None) -> tuple[int, Any]:
        """Run ``sql``; raises TargetError when logging in fails, TransportError when no answer came."""
        payload: dict[str, Any] = {"sql": sql}
        if params is not None:
            payload["params"] = params
        for attempt in range(2):
            token = self.creds.token(self.http, self.timeout)
            status, body = self.http.post(SQL_PATH, payload, token)
            if status == 401 and attempt == 0:
                self.creds.invalidate(token)
                continue
            return status, body
        raise AssertionError("unreachable")

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Run ``sql`` and return its results; any error becomes a TargetError with code and message."""
        status, body = self.post(sql, params)
        err = wire.error_of(body)
        if status != 200 or err is not None or not isinstance(body, dict):
            detail = f"{err[0]}: {err[1]}" if err else "unreadable reply"
            raise TargetError(f"HTTP {status} {detail}")
        return wire.results_of(body)

    def close(self) -> None:
        self.http.close()


def probe_generation(session: SqlSession, schema: Schema) -> str | None:
    """The protocol generation the server speaks, from the columns of a ``SELECT *`` on the table (remembered)."""
    known = MEMORY.generation(session.http.base_url)
    if known is not None:
        return known
    results = session.query(dialect.rows_sql(schema, None, 1))
    fields = (results[0].get("schema") or []) if results else []
    generation = wire.generation_of(f.get("name", "") for f in fields)
    if generation is not None:
        MEMORY.note_generation(session.http.base_url, generation)
    return generation


class KalamAdmin:
    """Privileged SQL: setup, bounded reads (as a user where asked), ``system.live`` counters, flush jobs, stats."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._sql = SqlSession(settings.endpoint, settings.admin_credentials(), settings.timeout)
        self._sql.creds.token(self._sql.http, settings.timeout)

    def _execute(self, sql: str) -> list[dict[str, Any]]:
        """Run SQL; one dict per statement result with ``rows`` as dicts (BIGINT values as int)."""
        return [{**r, "rows": wire.result_rows(r)} for r in self._sql.query(sql)]

    def _rows(self, sql: str) -> list[Row]:
        results = self._execute(sql)
        return results[0]["rows"] if results else []

    def setup(self, schema: Schema) -> None:
        """Create namespace, table and users. A user that already exists (an earlier run on the
        same server) gets the schema's password, so its sessions can log in."""
        self._execute(dialect.create_namespace_sql(schema))
        self._execute(dialect.create_table_sql(schema, self._settings.table_options))
        for user, password in schema.users.items():
            try:
                self._execute(dialect.create_user_sql(user, password))
            except TargetError as exc:
                if "already exists" not in str(exc).lower():
                    raise TargetError(f"create user {user!r}: {exc}") from None
                try:
                    self._execute(dialect.set_password_sql(user, password))
                except TargetError as exc:
                    raise TargetError(f"set the password of existing user {user!r}: {exc}") from None
        generation = self._settings.protocol or probe_generation(self._sql, schema)
        if generation == "0.7" and schema.table_type is TableKind.SHARED:
            self._read_policy(schema)

    def _read_policy(self, schema: Schema) -> None:
        """0.7 governs SHARED subscriptions by row-level policies: without one a user's listener sees no row.
        The harness's listeners are owed every row of its table, so it gives every role read access (once)."""
        try:
            self._execute(dialect.read_policy_sql(schema))
        except TargetError as exc:
            if "already exists" not in str(exc).lower():
                raise TargetError(f"create the read policy of {schema.namespace}.{schema.table}: {exc}") from None

    def recent(self, schema: Schema, filter: Eq | None, limit: int, as_user: str | None = None) -> list[Row]:
        """The newest ``limit`` rows by key matching ``filter``; on USER tables as ``as_user`` (impersonated)."""
        results = self._sql.query(dialect.recent_sql(schema, filter, limit, as_user))
        return wire.result_rows(results[0], wire.schema_bigints(schema)) if results else []

    def count(self, schema: Schema, as_user: str | None = None) -> int:
        """``COUNT(*)`` of the table; on USER tables of ``as_user``'s partition (impersonated)."""
        return wire.count_of(self._sql.query(dialect.count_sql(schema, as_user)))

    def live_subscriptions(self) -> dict[str, int] | None:
        """Client subscription id -> ``changes`` of every row of ``system.live``, paged by ``live_id``."""
        out: dict[str, int] = {}
        last: str | None = None
        for _ in range(MAX_PAGES):
            rows = self._rows(dialect.live_page_sql(last, PAGE))
            for row in rows:
                changes = row.get("changes")
                out[str(row["subscription_id"])] = int(changes) if changes is not None else 0
            if len(rows) < PAGE:
                return out
            last = str(rows[-1]["live_id"])
        raise TargetError(f"system.live did not end after {MAX_PAGES} pages")

    def flush(self, schema: Schema) -> str | None:
        """Start ``STORAGE FLUSH TABLE`` on the schema's table; the job id, or None if skipped."""
        results = self._execute(dialect.flush_sql(schema))
        return wire.job_id_of(results[0].get("message") if results else None)

    def job_status(self, job_id: str) -> str | None:
        rows = self._rows(dialect.job_status_sql(job_id))
        return str(rows[0]["status"]) if rows and rows[0].get("status") is not None else None

    def stats(self) -> dict[str, str] | None:
        rows = self._rows(dialect.stats_sql(PAGE))
        return {str(r["metric_name"]): str(r["metric_value"]) for r in rows}

    def server_pid(self) -> int | None:
        """The ``pid`` statistic, trusted only when the server is on this machine (loopback URL)."""
        if not self._settings.endpoint.loopback:
            return None
        pid = (self.stats() or {}).get("pid")
        try:
            return int(pid) if pid is not None else None
        except ValueError:
            return None

    def track_commits(self, schema: Schema) -> bool:
        """KalamDB exposes no commit log to read: the server-assigned versions are the order."""
        return False

    def commits(self, schema: Schema) -> list[tuple[int, int, int, int]] | None:
        return None

    def close(self) -> None:
        self._sql.close()


class KalamWriter:
    """One writer's HTTP session: parameterised INSERT/UPDATE/DELETE with ok/failed/indeterminate outcomes."""

    def __init__(self, settings: Settings, schema: Schema, creds: Credentials) -> None:
        self._schema = schema
        self._table = dialect.qualified(schema)
        self._key = dialect.identifier(schema.key)
        self._bigints = wire.schema_bigints(schema)
        self._sql = SqlSession(settings.endpoint, creds, settings.timeout)
        self._sql.creds.token(self._sql.http, settings.timeout)

    def _write(self, sql: str, params: list[Any]) -> WriteResult:
        invoke = time.time_ns()
        try:
            status, body = self._sql.post(sql, params)
        except TransportError as exc:
            return WriteResult(Outcome.INDETERMINATE, invoke, time.time_ns(), str(exc))
        except TargetError as exc:  # the token could not be renewed: the statement was never run
            return WriteResult(Outcome.FAILED, invoke, time.time_ns(), str(exc))
        ack = time.time_ns()
        outcome, error = wire.classify(status, body)
        return WriteResult(outcome, invoke, ack, error, wire.rows_affected(body) if outcome is Outcome.OK else None)

    def insert(self, row: Row) -> WriteResult:
        cols = list(row)
        return self._write(dialect.insert_sql(self._table, cols), [row[c] for c in cols])

    def update(self, key: Any, changes: Row) -> WriteResult:
        cols = sorted(c for c in changes if c != self._key)
        if not cols:
            now = time.time_ns()
            return WriteResult(Outcome.FAILED, now, now, "update without columns to change")
        return self._write(dialect.update_sql(self._table, self._key, cols), [changes[c] for c in cols] + [key])

    def bump(self, key: Any, changes: Row, counter: str = "version") -> WriteResult:
        """``counter = counter + 1`` and ``changes`` in one UPDATE; KalamDB does not return the new value."""
        cols = sorted(c for c in changes if c not in (self._key, counter))
        sql = dialect.bump_sql(self._table, self._key, cols, counter)
        return self._write(sql, [changes[c] for c in cols] + [key])

    def delete(self, key: Any) -> WriteResult:
        return self._write(dialect.delete_sql(self._table, self._key), [key])

    def rows(self, filter: Eq | None = None, limit: int | None = None) -> list[Row]:
        """This user's rows matching ``filter``, at most ``limit`` (else KalamDB's cap of 1000)."""
        try:
            results = self._sql.query(dialect.rows_sql(self._schema, filter, limit))
        except TransportError as exc:
            raise TargetError(f"read rows: {exc}") from None
        return wire.result_rows(results[0], self._bigints) if results else []

    def close(self) -> None:
        self._sql.close()
