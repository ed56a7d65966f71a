"""The commit order of a Parse class's writes, from PostgreSQL logical decoding with ``wal2json``.

Parse stores a class as a table of the same name. Before the load a logical replication slot
(plugin ``wal2json``) starts recording; after it, the slot's changes are read once (format 2,
one record per row change, transactions in commit order) and the slot is dropped. Each update
of the table gives (key, version, writer_id, wseq) of the new row: the ground truth of
``live.contention``'s chain check (docs/contention.md). The private cluster runs with
``wal_level=logical``; ``scripts/install-parse-deps.sh`` installs the plugin.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import psycopg

from harness.targets.base import TargetError

__all__ = ["PLUGIN", "CommitRow", "read", "slot_name", "start", "updated_row"]

PLUGIN = "wal2json"
CommitRow = tuple[int, int, int, int]
"""(key, version, writer_id, wseq) of one committed update, in commit order."""


def slot_name(table: str) -> str:
    """A replication slot name for ``table`` (lower case, at most 63 characters)."""
    return "lqh_" + hashlib.blake2b(table.encode(), digest_size=8).hexdigest()


def start(database_url: str, table: str) -> None:
    """Create the table's slot, so every change committed from now on is kept for :func:`read`."""
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot_name(table),)
            ).fetchone()
            if exists is None:
                major = conn.info.server_version // 10000
                try:
                    conn.execute("SELECT pg_create_logical_replication_slot(%s, %s)", (slot_name(table), PLUGIN))
                except psycopg.errors.UndefinedFile:
                    raise TargetError(
                        f"PostgreSQL has no {PLUGIN} plugin: install the Debian package postgresql-{major}-{PLUGIN} "
                        "(scripts/install-parse-deps.sh)"
                    ) from None
    except psycopg.Error as exc:
        raise TargetError(f"commit log of {table}: {_first_line(exc)}") from None


def read(database_url: str, table: str) -> list[CommitRow]:
    """The table's committed updates since :func:`start`, in commit order; the slot is dropped after."""
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=10) as conn:
            records = conn.execute(
                "SELECT data FROM pg_logical_slot_get_changes(%s, NULL, NULL, 'format-version', '2')",
                (slot_name(table),),
            ).fetchall()
            conn.execute("SELECT pg_drop_replication_slot(%s)", (slot_name(table),))
    except psycopg.Error as exc:
        raise TargetError(f"commit log of {table}: {_first_line(exc)}") from None
    out = []
    for (data,) in records:
        row = updated_row(orjson.loads(data), table)
        if row is not None:
            out.append(row)
    return out


def updated_row(record: Any, table: str) -> CommitRow | None:
    """(key, version, writer_id, wseq) of a format-2 ``U`` record of ``table``, None for any other record."""
    if not isinstance(record, dict) or record.get("action") != "U" or record.get("table") != table:
        return None
    values: dict[Any, Any] = {c.get("name"): c.get("value") for c in record.get("columns") or () if isinstance(c, dict)}
    try:
        return (
            int(str(values["objectId"])),
            int(values["version"]),
            int(values["writer_id"]),
            int(values["wseq"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
