"""Identity of the rows the harness writes, and how a notification is read back into it.

Every row carries who wrote it and in which order (``writer_id``, ``wseq``), which
version it is, a content derived from (``id``, ``version``) and the client send time,
so a listener can check loss, duplication, order, old values and latency on its own.

``wseq`` numbers a writer's inserts and updates (1-based, one per attempt). Deletes carry
no wseq on the wire (the tombstone holds the last version's columns), so they take none
and are numbered by the row they delete; that keeps a complete stream one range.

Deletes still take their place in the writer's order: every insert and update carries
``last_delete``, the row number of the writer's last delete attempted before it (0 if none).
A write with ``last_delete`` r follows the delete of row r and precedes that of row r + 1,
so a listener checks the order of deletes and writes on arrival, keeping two numbers.

Under contention (``live.contention``, docs/contention.md) several writers update the same
shared rows and the server increments ``version``: a writer cannot know the version it makes,
so a bump's content is derived from (``writer_id``, ``wseq``) instead (:func:`bump_content`),
and :func:`bump_maker` reads back which write made a content, old values included.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

from harness.plan import Plan
from harness.targets.base import Change, Column, ColumnType, Op, Row, Schema

ROW_BITS = 32
ROW_MASK = (1 << ROW_BITS) - 1

COLUMNS: tuple[Column, ...] = (
    Column("id", ColumnType.INT64, primary_key=True),
    Column("conversation_id", ColumnType.INT64, not_null=True),
    Column("writer_id", ColumnType.INT64, not_null=True),
    Column("wseq", ColumnType.INT64, not_null=True),
    Column("version", ColumnType.INT32, not_null=True),
    Column("content", ColumnType.TEXT, not_null=True),
    Column("sent_at", ColumnType.INT64, not_null=True),
    Column("last_delete", ColumnType.INT64, not_null=True),
)
DIGEST_CHARS = 16  # hex characters of the 8-byte blake2b digest that pads a content
_blake2b = hashlib.blake2b
BIGINT_LIMIT = 1 << 63  # identity values are signed 64-bit; anything at or above cannot be a harness value


def row_id(writer_id: int, n: int) -> int:
    """Primary key of the writer's ``n``-th row (1-based): ``writer_id << 32 | n``."""
    if not 0 < n <= ROW_MASK:
        raise ValueError(f"row number {n} out of range")
    return writer_id << ROW_BITS | n


def split_id(rid: int) -> tuple[int, int]:
    """Inverse of :func:`row_id`: (writer id, row number)."""
    return rid >> ROW_BITS, rid & ROW_MASK


def content(rid: int, version: int, payload_bytes: int) -> str:
    """Deterministic content of row ``rid`` at ``version``, padded to ``payload_bytes`` characters.

    The padding repeats a digest of (id, version), so two versions never share a content
    and any old value is computable from the key alone.
    """
    head = f"r{rid}v{version}:"
    rest = payload_bytes - len(head)
    if rest <= 0:
        return head
    digest = _blake2b(head.encode(), digest_size=8).hexdigest()
    return head + (digest * (rest // DIGEST_CHARS + 1))[:rest]


def bump_content(writer_id: int, wseq: int, payload_bytes: int) -> str:
    """Content of the version made by writer ``writer_id``'s operation ``wseq`` on a shared row.

    It names its maker, so an old value identifies the write that made it; the padding repeats
    a digest of (writer, wseq) as :func:`content` does.
    """
    head = f"w{writer_id}s{wseq}:"
    digest = hashlib.blake2b(head.encode(), digest_size=8).hexdigest()
    if payload_bytes <= len(head):
        return head
    reps = (payload_bytes - len(head)) // len(digest) + 1
    return head + (digest * reps)[: payload_bytes - len(head)]


INSERTED = (0, 0)
"""The maker of a shared row's version 1: its insert (writer ids start at 1, so no bump has it)."""

_BUMP_HEAD = re.compile(r"w(\d{1,19})s(\d{1,19}):")


def bump_maker(text: str | None, rid: int, payload_bytes: int) -> tuple[int, int] | None:
    """Which write made a shared row's ``text``: (writer, wseq) of a bump, ``INSERTED`` for the row's insert.

    None when ``text`` is neither a bump's content nor the row's version-1 content (absent, or altered).
    """
    if text is None:
        return None
    if text == content(rid, 1, payload_bytes):
        return INSERTED
    head = _BUMP_HEAD.match(text)
    if head is None:
        return None
    writer_id, wseq = int(head.group(1)), int(head.group(2))
    return (writer_id, wseq) if text == bump_content(writer_id, wseq, payload_bytes) else None


def bump_changes(writer_id: int, wseq: int, sent_at_us: int, payload_bytes: int) -> Row:
    """The columns a bump sets besides the server's ``version = version + 1``: who made it, and its content."""
    return {
        "writer_id": writer_id,
        "wseq": wseq,
        "content": bump_content(writer_id, wseq, payload_bytes),
        "sent_at": sent_at_us,
    }


def insert_row(
    writer_id: int, conversation_id: int, n: int, wseq: int, sent_at_us: int, payload_bytes: int, last_delete: int = 0
) -> Row:
    """All columns of a new row (version 1); ``last_delete`` is the writer's last deleted row number so far."""
    rid = row_id(writer_id, n)
    return {
        "id": rid,
        "conversation_id": conversation_id,
        "writer_id": writer_id,
        "wseq": wseq,
        "version": 1,
        "content": content(rid, 1, payload_bytes),
        "sent_at": sent_at_us,
        "last_delete": last_delete,
    }


def update_changes(rid: int, version: int, wseq: int, sent_at_us: int, payload_bytes: int, last_delete: int = 0) -> Row:
    """The columns an update sets to bring row ``rid`` to ``version``."""
    return {
        "version": version,
        "wseq": wseq,
        "content": content(rid, version, payload_bytes),
        "sent_at": sent_at_us,
        "last_delete": last_delete,
    }


def messages_schema(plan: Plan) -> Schema:
    """The harness table of ``plan`` with the app user (and any user a spec names) and its password."""
    users = {plan.app_user: plan.app_password}
    named = [w.user for w in plan.writers] + [li.user for li in plan.listeners]
    for user in named:
        if user and user not in users:
            users[user] = plan.app_password
    return Schema(namespace=plan.namespace, table=plan.table, columns=COLUMNS, table_type=plan.table_type, users=users)


@dataclass(slots=True)
class Seen:
    """The identity a notification carries, read from its row (or tombstone for deletes).

    For updates, ``old_version``/``old_content``/``old_wseq`` come from the reported old
    values (None when absent). ``error`` is set when the notification cannot be read as a harness row
    (then only ``op`` is meaningful). ``conversation_id``, ``sent_at_us`` and ``content``
    and ``last_delete`` are None when absent or of the wrong type; the tracker checks them
    against what the writer wrote. Not frozen: one is built per notification, and a frozen
    dataclass's constructor costs several times a plain one's; nothing changes it after
    ``read_change``.
    """

    op: Op
    rid: int
    writer_id: int
    n: int
    conversation_id: int | None
    wseq: int
    version: int
    sent_at_us: int | None
    content: str | None
    old_version: int | None = None
    old_content: str | None = None
    old_wseq: int | None = None
    last_delete: int | None = None
    error: str | None = None


def _int(value: Any) -> int | None:
    """An integer column's value (drivers deliver int64 columns as ints), within the signed 64-bit range.

    Anything else (a float, a bool, text, a value outside 64 bits) is None: it is not what the
    harness wrote, and must not reach the summaries, which carry 64-bit ints.
    """
    if type(value) is int:  # the common case first: no bool, no subclass to rule out
        return value if -BIGINT_LIMIT <= value < BIGINT_LIMIT else None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if -BIGINT_LIMIT <= value < BIGINT_LIMIT else None


def _unreadable(op: Op, why: str) -> Seen:
    return Seen(op, 0, 0, 0, None, 0, 0, None, None, error=why)


def read_change(change: Change, shared: bool = False) -> Seen:
    """Identity of ``change``: the new row for insert/update/snapshot, the tombstone for delete.

    With ``shared`` (a bump of a shared row) the row's writer need not be the one its id names.
    """
    op = change.op
    row = change.old_row if op is Op.DELETE else change.row
    old = change.old_row if op is Op.UPDATE else None
    if not row:
        return _unreadable(op, "notification carries no row")
    if not isinstance(row, dict) or (old is not None and not isinstance(old, dict)):
        return _unreadable(op, f"row is a {type(row).__name__}, not an object of columns")
    get = row.get
    rid, writer_id, wseq, version = get("id"), get("writer_id"), get("wseq"), get("version")
    # the common case, plain ints in range, without a call per column; anything else takes _int's path
    if not (
        type(rid) is int
        and type(writer_id) is int
        and type(wseq) is int
        and type(version) is int
        and 0 <= rid < BIGINT_LIMIT
        and 0 <= writer_id < BIGINT_LIMIT
        and 0 <= wseq < BIGINT_LIMIT
        and 0 <= version < BIGINT_LIMIT
    ):
        ids = {k: _int(get(k)) for k in ("id", "writer_id", "wseq", "version")}
        bad = sorted(k for k, v in ids.items() if v is None or v < 0)
        if bad:
            shown = ", ".join(f"{k}={_clip(get(k))}" for k in bad)
            return _unreadable(op, f"identity columns missing, not integers or out of range: {shown}")
        rid, writer_id, wseq, version = (int(ids[k] or 0) for k in ("id", "writer_id", "wseq", "version"))
    w = rid >> ROW_BITS
    text = get("content")
    if old:
        old_text = old.get("content")
        old_version, old_content, old_wseq = _int(old.get("version")), old_text, _int(old.get("wseq"))
        if not isinstance(old_text, str):
            old_content = None
    else:
        old_version = old_content = old_wseq = None
    return Seen(
        op,
        rid,
        writer_id,
        rid & ROW_MASK,
        _int(get("conversation_id")),
        wseq,
        version,
        _int(get("sent_at")),
        text if isinstance(text, str) else None,
        old_version,
        old_content,
        old_wseq,
        _int(get("last_delete")),
        None if shared or w == writer_id else f"id {rid} belongs to writer {w}, row says writer {writer_id}",
    )


def _clip(value: Any, limit: int = 30) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
