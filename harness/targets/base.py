"""The one interface every system under test is driven through.

Nothing outside ``harness/targets/`` knows a wire format: writers, listeners, the
checker and the runner see only the types below. The interface is synchronous and
small because it runs inside gevent greenlets (Locust users).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

Row = dict[str, Any]


class Outcome(enum.StrEnum):
    """What a writer knows about one operation after it returned."""

    OK = "ok"  # the server acknowledged the write
    FAILED = "failed"  # the server said no: the write did not happen
    INDETERMINATE = "indeterminate"  # no answer (timeout, reset): it may or may not have happened


class Op(enum.StrEnum):
    """Kinds of change a listener can receive."""

    INSERT = "insert"
    UPDATE = "update"
    DELETE = "delete"
    SNAPSHOT = "snapshot"  # a row delivered by an initial or resume snapshot, not by a change event


@dataclass(frozen=True, slots=True)
class WriteResult:
    """Outcome of one write with its invoke and ack times (``time.time_ns()``)."""

    outcome: Outcome
    invoke_ns: int
    ack_ns: int
    error: str | None = None
    rows_affected: int | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """One row-level notification as a listener received it.

    ``row`` is the new row (None for deletes), ``old_row`` the previous values the
    target reports (for KalamDB: key + previous ``_seq`` + changed columns on update,
    the tombstone on delete). ``server_seq`` is the target's own cursor, if it has one.
    ``deleted`` is the delete flag the server sent (``_deleted``), None when absent.
    ``committed_ns`` is the server's commit time where the target can derive it.
    """

    op: Op
    row: Row | None
    old_row: Row | None
    server_seq: int | None
    received_ns: int
    wire_bytes: int
    deleted: bool | None = None
    committed_ns: int | None = None


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    sql_type: str  # KalamDB type name: BIGINT, TEXT, INT, BOOLEAN, TIMESTAMP, ...
    primary_key: bool = False
    not_null: bool = False


@dataclass(frozen=True, slots=True)
class Schema:
    """What ``Admin.setup`` creates: a namespace, one table and the users that use it."""

    namespace: str
    table: str
    columns: tuple[Column, ...]
    table_type: str = "USER"  # USER or SHARED
    users: Mapping[str, str] = field(default_factory=dict)  # user id -> password
    options: Mapping[str, str] = field(default_factory=dict)  # WITH (...) options

    @property
    def qualified(self) -> str:
        return f"{self.namespace}.{self.table}"

    @property
    def key(self) -> str:
        return next(c.name for c in self.columns if c.primary_key)


class TargetError(Exception):
    """The target could not do what was asked (bad credentials, refused SQL, unreachable)."""


class Disconnected(TargetError):
    """A listener's connection ended; ``reason`` says how (close code and text, or the error)."""

    def __init__(self, reason: str, expected: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expected = expected


class Admin(Protocol):
    """Privileged access for setup, introspection and server-side counters."""

    def execute(self, sql: str) -> list[dict[str, Any]]:
        """Run SQL; return one dict per statement result (``rows`` as dicts keyed by column)."""
        ...

    def setup(self, schema: Schema) -> None:
        """Create namespace, table and users (idempotent)."""
        ...

    def live_subscriptions(self) -> dict[str, int] | None:
        """Live subscription id -> server-side ``changes`` counter; None if the target has none."""
        ...

    def flush(self, table: str) -> str | None:
        """Start a storage flush of ``table``; return the job id, or None if nothing to flush."""
        ...

    def job_status(self, job_id: str) -> str | None:
        """Status of a server job (``completed``, ``running``, ...), None if unknown."""
        ...

    def stats(self) -> dict[str, str] | None:
        """Server statistics (KalamDB: ``system.stats``); None if the target has none."""
        ...

    def server_pid(self) -> int | None:
        """Pid of the server process when it runs on this machine, else None."""
        ...

    def close(self) -> None: ...


class WriterSession(Protocol):
    """One writer's connection: one operation in flight at a time."""

    def insert(self, row: Row) -> WriteResult: ...

    def update(self, key: Any, changes: Row) -> WriteResult: ...

    def delete(self, key: Any) -> WriteResult: ...

    def select(self, where: str | None = None, limit: int | None = None) -> list[Row]:
        """Read rows back (for queriers and reconciliation)."""
        ...

    def close(self) -> None: ...


class Listener(Protocol):
    """One live subscription on its own connection."""

    def subscribe(self, where: str | None = None, resume_from: int | None = None, snapshot: bool = False) -> None:
        """Subscribe to the table, optionally filtered; returns once the subscription is ready.

        With ``resume_from`` (a ``server_seq`` seen earlier) rows changed since then are
        delivered first as ``Op.SNAPSHOT`` changes. Raises ``TargetError`` on refusal.
        """
        ...

    def recv(self, timeout: float) -> Change | None:
        """Next change, or None when ``timeout`` seconds pass without one.

        Raises ``Disconnected`` when the connection ends. Keeps the connection alive
        (heartbeat) while waiting.
        """
        ...

    @property
    def subscription_id(self) -> str | None:
        """The server's id for this subscription (KalamDB: ``live_id``), once known."""
        ...

    @property
    def last_seq(self) -> int | None:
        """Highest ``server_seq`` seen so far: the resume point."""
        ...

    def close(self) -> None: ...


class Target(Protocol):
    """A system under test: a factory of admin, writer and listener sessions."""

    name: str
    features: frozenset[str]  # e.g. {"changes_counter", "resume", "flush", "stats", "user_tables"}

    def admin(self) -> Admin: ...

    def writer(self, schema: Schema, user: str | None = None) -> WriterSession: ...

    def listener(self, schema: Schema, user: str | None = None) -> Listener: ...
