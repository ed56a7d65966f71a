"""The one interface every system under test is driven through.

Nothing outside ``harness/targets/`` knows a wire format or a query language: writers,
listeners, queriers, the checker and the runner see only the types below. Tables, columns
and row filters are described as values (``TableKind``, ``ColumnType``, ``Eq``); each
driver translates them. The interface is synchronous and small because it runs inside
gevent greenlets (Locust users).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "Admin",
    "Change",
    "Column",
    "ColumnType",
    "Disconnected",
    "Eq",
    "Listener",
    "Op",
    "Outcome",
    "ProtocolError",
    "Row",
    "Schema",
    "TableKind",
    "Target",
    "TargetError",
    "WriteResult",
    "WriterSession",
]

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
    version: int | None = None  # a bump's server-assigned version, where the target returns it


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


class ColumnType(enum.StrEnum):
    """What a column holds, in the interface's words; each driver maps them to its own types."""

    INT64 = "int64"
    INT32 = "int32"
    TEXT = "text"


class TableKind(enum.StrEnum):
    """Who sees a table's rows; each driver maps the kind to its own table type."""

    USER = "user"  # partitioned per user: each user reads and is notified of its own rows only
    SHARED = "shared"  # one set of rows that every user with access sees

    @classmethod
    def parse(cls, text: str) -> TableKind:
        """The kind named by ``text`` in any case (``user``, ``SHARED``); ValueError names the choices."""
        try:
            return cls(str(text).lower())
        except ValueError:
            raise ValueError(f"unknown table type {text!r}: expected {' or '.join(k.value for k in cls)}") from None


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a ``Schema``."""

    name: str
    type: ColumnType
    primary_key: bool = False
    not_null: bool = False


@dataclass(frozen=True, slots=True)
class Schema:
    """What ``Admin.setup`` creates: a namespace, one table and the users that use it."""

    namespace: str
    table: str
    columns: tuple[Column, ...]
    table_type: TableKind = TableKind.USER
    users: Mapping[str, str] = field(default_factory=dict)  # user id -> password

    @property
    def qualified(self) -> str:
        """``namespace.table``, for messages and logs."""
        return f"{self.namespace}.{self.table}"

    @property
    def key(self) -> str:
        return next(c.name for c in self.columns if c.primary_key)

    def column(self, name: str) -> Column | None:
        """The column called ``name``, or None."""
        return next((c for c in self.columns if c.name == name), None)


@dataclass(frozen=True, slots=True)
class Eq:
    """A row filter: the rows whose ``column`` equals ``value``. Drivers translate it to their own query."""

    column: str
    value: int | str


class TargetError(Exception):
    """The target could not do what was asked (bad credentials, refused SQL, unreachable)."""


class ProtocolError(TargetError):
    """The target sent a frame its protocol does not allow (not JSON, bad gzip, unknown change type):
    a listener counts it as a malformed notification, then resumes."""


class Disconnected(TargetError):
    """A listener's connection ended; ``reason`` says how (close code and text, or the error)."""

    def __init__(self, reason: str, expected: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.expected = expected


class Admin(Protocol):
    """Privileged access for setup, introspection, server-side counters and bounded reads."""

    def setup(self, schema: Schema) -> None:
        """Create namespace, table and users (idempotent)."""
        ...

    def recent(self, schema: Schema, filter: Eq | None, limit: int, as_user: str | None = None) -> list[Row]:
        """The ``limit`` rows with the highest keys among those matching ``filter``, highest key first.

        With ``as_user``, read what that user sees (its own partition of a per-user table).
        """
        ...

    def count(self, schema: Schema, as_user: str | None = None) -> int:
        """How many rows the table holds (with ``as_user``: how many that user sees)."""
        ...

    def live_subscriptions(self) -> dict[str, int] | None:
        """Live subscription id -> server-side ``changes`` counter; None if the target has none."""
        ...

    def flush(self, schema: Schema) -> str | None:
        """Start a storage flush of the schema's table; return the job id, or None if nothing to flush."""
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

    def track_commits(self, schema: Schema) -> bool:
        """Start recording the commit order of the table's writes from the database's own log.

        False when the target exposes no such log (then the server-assigned versions are the order).
        """
        ...

    def commits(self, schema: Schema) -> list[tuple[int, int, int, int]] | None:
        """The updates committed since ``track_commits``, in commit order, as (key, version, writer_id, wseq).

        Reading ends the recording. None when nothing was recorded.
        """
        ...

    def close(self) -> None: ...


class WriterSession(Protocol):
    """One writer's connection: one operation in flight at a time."""

    def insert(self, row: Row) -> WriteResult: ...

    def update(self, key: Any, changes: Row) -> WriteResult: ...

    def delete(self, key: Any) -> WriteResult: ...

    def bump(self, key: Any, changes: Row, counter: str = "version") -> WriteResult:
        """Update row ``key`` with ``changes`` and ``counter = counter + 1`` atomically on the server.

        Several writers may bump one row at once (docs/contention.md): the server, not the writer,
        chooses the new ``counter``; ``WriteResult.version`` carries it where the target returns it.
        """
        ...

    def rows(self, filter: Eq | None = None, limit: int | None = None) -> list[Row]:
        """Read this session's user's rows back (matching ``filter``, at most ``limit``, else the target's cap)."""
        ...

    def close(self) -> None: ...


class Listener(Protocol):
    """One live subscription on its own connection."""

    def subscribe(self, filter: Eq | None = None, resume_from: int | None = None, snapshot: bool = False) -> None:
        """Subscribe to the table's rows matching ``filter`` (None: all); returns once the subscription is ready.

        With ``resume_from`` (a ``server_seq`` seen earlier) rows changed since then are
        delivered first as ``Op.SNAPSHOT`` changes; with ``snapshot`` the current matching rows
        are. Raises ``TargetError`` on refusal.
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

    @property
    def replayed(self) -> bool:
        """Whether the last ``subscribe`` resumed by replaying every change since ``resume_from``."""
        ...

    def close(self) -> None: ...


class Target(Protocol):
    """A system under test: a factory of admin, writer and listener sessions."""

    name: str

    @property
    def features(self) -> frozenset[str]:
        """What the target promises, e.g. {"changes_counter", "resume", "flush", "stats", "user_tables"}.

        ``resume``: a resume sends the current rows changed since the cursor; ``resume_replays_changes``:
        a resume replays every change since it (docs/excuse-rule.md); ``filter_transitions``: an update
        entering a filter arrives as an insert, one leaving it as a delete with the key only.
        """
        ...

    @property
    def protocol(self) -> str | None:
        """The protocol generation the target speaks (KalamDB: ``0.7`` or ``0.4``), None while unknown."""
        ...

    def admin(self) -> Admin: ...

    def writer(self, schema: Schema, user: str | None = None) -> WriterSession: ...

    def listener(self, schema: Schema, user: str | None = None) -> Listener: ...
