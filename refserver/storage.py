"""On-disk state in one SQLite database (WAL): catalog, users, jobs and one SQLite table per user table.

User tables keep the current version of each row, keyed by (owner, primary key), with its
``_seq`` and ``_deleted`` flag; a DELETE leaves a tombstone. ``_owner`` is the partition
(the user id for USER/STREAM tables, empty for SHARED tables) and never reaches clients.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from refserver.catalog import OWNER, TableDef
from refserver.dialect import CreateTable, parse_statement
from refserver.policies import Policy

_INTERNAL = """
CREATE TABLE IF NOT EXISTS __namespaces (name TEXT PRIMARY KEY, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS __tables (
    key TEXT PRIMARY KEY, namespace TEXT NOT NULL, name TEXT NOT NULL, kind TEXT NOT NULL,
    create_sql TEXT NOT NULL, options TEXT NOT NULL, access_level TEXT, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS __users (
    user_id TEXT PRIMARY KEY, password_hash TEXT NOT NULL, role TEXT NOT NULL, email TEXT,
    created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL, last_seen INTEGER);
CREATE TABLE IF NOT EXISTS __policies (
    table_key TEXT NOT NULL, name TEXT NOT NULL, command TEXT NOT NULL, targets TEXT NOT NULL,
    using_sql TEXT, check_sql TEXT, created_at INTEGER NOT NULL, PRIMARY KEY (table_key, name));
CREATE TABLE IF NOT EXISTS __jobs (
    job_id TEXT PRIMARY KEY, job_type TEXT NOT NULL, status TEXT NOT NULL, message TEXT,
    exception_trace TEXT, retry_count INTEGER NOT NULL DEFAULT 0, created_at INTEGER NOT NULL,
    started_at INTEGER, finished_at INTEGER, node_id INTEGER NOT NULL, parameters TEXT);
CREATE VIEW IF NOT EXISTS "system.namespaces" AS
    SELECT name AS namespace_id, name, created_at,
           (SELECT COUNT(*) FROM __tables t WHERE t.namespace = n.name) AS table_count
    FROM __namespaces n;
CREATE VIEW IF NOT EXISTS "system.tables" AS
    SELECT key AS table_id, namespace AS namespace_id, name AS table_name, kind AS table_type,
           access_level, options, created_at FROM __tables;
CREATE VIEW IF NOT EXISTS "system.users" AS
    SELECT user_id, user_id AS username, role, email, 'password' AS auth_type,
           created_at, updated_at, last_seen FROM __users;
CREATE VIEW IF NOT EXISTS "system.jobs" AS
    SELECT job_id, job_type, status, message, exception_trace, retry_count, created_at,
           started_at, finished_at, node_id, parameters FROM __jobs;
"""


@dataclass(slots=True)
class UserRecord:
    user_id: str
    password_hash: str
    role: str
    email: str | None
    created_at: int
    updated_at: int


def now_us() -> int:
    """Wall-clock microseconds since the Unix epoch (KalamDB's timestamp unit)."""
    return time.time_ns() // 1000


def quote(name: str) -> str:
    """A SQLite identifier for any name (user tables are named ``"ns.table"``)."""
    return '"' + name.replace('"', '""') + '"'


class Store:
    """The SQLite database and the in-memory catalog loaded from it."""

    def __init__(self, path: Path, memory_limit_bytes: int | None = None, synchronous: str = "normal") -> None:
        if synchronous not in ("normal", "full"):
            raise ValueError(f"synchronous must be normal or full, not {synchronous!r}")
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=512)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self.db.execute("PRAGMA temp_store=MEMORY")
        if memory_limit_bytes:
            # SQLite is the part of the server whose memory grows with the data: give its
            # page cache a sixteenth of the bound and its whole heap a quarter, no mmap.
            self.db.execute(f"PRAGMA cache_size=-{max(1024, memory_limit_bytes // 16 // 1024)}")
            self.db.execute(f"PRAGMA soft_heap_limit={memory_limit_bytes // 4}")
            self.db.execute("PRAGMA mmap_size=0")
        # Checkpoints (with their fsyncs) run in a background thread (see jobs.Jobs.checkpoint_loop),
        # not inside the commit of whichever request happens to cross the threshold.
        self.db.execute("PRAGMA wal_autocheckpoint=0")
        self.db.executescript(_INTERNAL)
        self.namespaces: dict[str, int] = dict(self.db.execute("SELECT name, created_at FROM __namespaces"))
        if "default" not in self.namespaces:
            self.create_namespace("default")
        self.tables: dict[str, TableDef] = {}
        self._load_tables()
        self.policies: dict[str, dict[str, Policy]] = {}
        for key, name, command, targets, using_sql, check_sql in self.db.execute(
            "SELECT table_key, name, command, targets, using_sql, check_sql FROM __policies"
        ):
            policy = Policy(name, key, command, tuple(targets.split(",")), using_sql, check_sql)
            self.policies.setdefault(key, {})[name] = policy

    def _load_tables(self) -> None:
        from refserver.catalog import build_table

        for ns, create_sql, created_at in self.db.execute("SELECT namespace, create_sql, created_at FROM __tables"):
            plan = parse_statement(create_sql)
            assert isinstance(plan, CreateTable)
            table = build_table(plan, ns, created_at)
            self.tables[table.key] = table

    def max_seq(self) -> int:
        """The largest ``_seq`` stored anywhere (so a restarted server keeps ``_seq`` increasing)."""
        best = 0
        for table in self.tables.values():
            row = self.db.execute(f"SELECT MAX(_seq) FROM {quote(table.key)}").fetchone()
            best = max(best, row[0] or 0)
        return best

    # -- namespaces and tables

    def create_namespace(self, name: str) -> None:
        created = now_us()
        self.db.execute("INSERT INTO __namespaces (name, created_at) VALUES (?, ?)", (name, created))
        self.namespaces[name] = created

    def drop_namespace(self, name: str) -> None:
        for table in [t for t in self.tables.values() if t.namespace == name]:
            self.drop_table(table)
        self.db.execute("DELETE FROM __namespaces WHERE name = ?", (name,))
        self.namespaces.pop(name, None)

    def create_table(self, table: TableDef) -> None:
        import orjson

        cols = [f"{OWNER} TEXT NOT NULL"]
        cols += [f"{quote(c.name)} {c.ktype.sqlite}" for c in table.columns if c.name != "_deleted"]
        if table.kind != "STREAM":
            cols.append("_deleted INTEGER NOT NULL DEFAULT 0")
        cols.append(f"PRIMARY KEY ({OWNER}, {quote(table.pk.name)})")
        name = quote(table.key)
        self.db.execute("BEGIN")
        try:
            self.db.execute(f"CREATE TABLE {name} ({', '.join(cols)})")
            self.db.execute(f"CREATE INDEX {quote(table.key + '#seq')} ON {name} ({OWNER}, _seq)")
            self.db.execute(
                "INSERT INTO __tables VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    table.key,
                    table.namespace,
                    table.name,
                    table.kind,
                    table.create_sql,
                    orjson.dumps(table.options).decode(),
                    table.access_level,
                    table.created_at,
                ),
            )
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.tables[table.key] = table

    def drop_table(self, table: TableDef) -> None:
        self.db.execute("BEGIN")
        try:
            self.db.execute(f"DROP TABLE IF EXISTS {quote(table.key)}")
            self.db.execute("DELETE FROM __tables WHERE key = ?", (table.key,))
            self.db.execute("DELETE FROM __policies WHERE table_key = ?", (table.key,))
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.tables.pop(table.key, None)
        self.policies.pop(table.key, None)

    # -- row-level policies (0.7)

    def put_policy(self, policy: Policy) -> None:
        """Store a new policy of its table."""
        self.db.execute(
            "INSERT INTO __policies VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                policy.table_key,
                policy.name,
                policy.command,
                ",".join(policy.targets),
                policy.using_sql,
                policy.check_sql,
                now_us(),
            ),
        )
        self.policies.setdefault(policy.table_key, {})[policy.name] = policy

    def drop_policy(self, table_key: str, name: str) -> None:
        self.db.execute("DELETE FROM __policies WHERE table_key = ? AND name = ?", (table_key, name))
        self.policies.get(table_key, {}).pop(name, None)

    def table_policies(self, table_key: str) -> list[Policy]:
        """The policies of a table, by name."""
        return [p for _, p in sorted(self.policies.get(table_key, {}).items())]

    # -- users

    def user(self, user_id: str) -> UserRecord | None:
        row = self.db.execute(
            "SELECT user_id, password_hash, role, email, created_at, updated_at FROM __users WHERE user_id = ?",
            (user_id,),
        ).fetchone()
        return UserRecord(*row) if row else None

    def put_user(self, record: UserRecord) -> None:
        self.db.execute(
            "INSERT INTO __users (user_id, password_hash, role, email, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(user_id) DO UPDATE SET password_hash = excluded.password_hash, "
            "role = excluded.role, email = excluded.email, updated_at = excluded.updated_at",
            (
                record.user_id,
                record.password_hash,
                record.role,
                record.email,
                record.created_at,
                record.updated_at,
            ),
        )

    def delete_user(self, user_id: str) -> bool:
        return self.db.execute("DELETE FROM __users WHERE user_id = ?", (user_id,)).rowcount > 0

    def touch_user(self, user_id: str) -> None:
        self.db.execute("UPDATE __users SET last_seen = ? WHERE user_id = ?", (now_us(), user_id))

    def count(self, what: str) -> int:
        """Rows of an internal table (``__users``, ``__jobs``, ...)."""
        return self.db.execute(f"SELECT COUNT(*) FROM {what}").fetchone()[0]

    # -- jobs

    def put_job(self, job: dict[str, Any]) -> None:
        keys = list(job)
        self.db.execute(
            f"INSERT INTO __jobs ({', '.join(keys)}) VALUES ({', '.join('?' for _ in keys)}) "
            f"ON CONFLICT(job_id) DO UPDATE SET {', '.join(f'{k} = excluded.{k}' for k in keys if k != 'job_id')}",
            [job[k] for k in keys],
        )

    def job_counts(self) -> dict[str, int]:
        return dict(self.db.execute("SELECT status, COUNT(*) FROM __jobs GROUP BY status").fetchall())

    def close(self) -> None:
        self.db.close()
