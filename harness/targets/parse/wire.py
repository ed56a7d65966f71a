"""The Parse target's pure encoding rules: class names, field types, ``where`` filters, LiveQuery events.

No I/O here: what a REST body or a LiveQuery frame looks like, as ``docs/parse-livequery.md``
(``/work/shared/docs``) describes Parse Server 9.10.0, and how an event becomes a ``Change``.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Any

from harness.targets.base import Change, ColumnType, Eq, Op, Row, Schema

__all__ = [
    "EVENT_OPS",
    "change_of",
    "class_name",
    "create_body",
    "error_text",
    "row_of",
    "schema_body",
    "where_of",
]

MAX_CLASS_NAME = 48  # PostgreSQL cuts identifiers at 63 bytes, and Parse derives index names from the class's
FIELD_TYPES = {ColumnType.INT64: "Number", ColumnType.INT32: "Number", ColumnType.TEXT: "String"}
# LiveQuery event op -> the interface's op. ``enter``/``leave`` (an update that made an object start or
# stop matching the subscription's ``where``) arrive as insert/delete, as a filtered subscription sees them.
EVENT_OPS = {"create": Op.INSERT, "update": Op.UPDATE, "delete": Op.DELETE, "enter": Op.INSERT, "leave": Op.DELETE}


def class_name(schema: Schema) -> str:
    """The Parse class holding the schema's table: ``<namespace>_<table>``, shortened with a digest if long."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", f"{schema.namespace}_{schema.table}")
    if not name[:1].isalpha():
        name = "T" + name
    if len(name) > MAX_CLASS_NAME:
        digest = hashlib.blake2b(name.encode(), digest_size=4).hexdigest()
        name = f"{name[: MAX_CLASS_NAME - len(digest) - 1]}_{digest}"
    return name


def schema_body(schema: Schema) -> dict[str, Any]:
    """``POST /parse/schemas/<class>`` body: one field per column.

    The key is also each object's ``objectId`` (as text); it stays a field too, so rows read
    back and events carry it like any other column.
    """
    return {
        "className": class_name(schema),
        "fields": {c.name: {"type": FIELD_TYPES[c.type]} for c in schema.columns},
    }


def where_of(filter: Eq | None) -> dict[str, Any]:
    """The Parse ``where`` of an interface filter: ``{}`` for all rows, else ``{column: value}``."""
    return {} if filter is None else {filter.column: filter.value}


def create_body(row: Row, key: str) -> dict[str, Any]:
    """``POST /classes/<class>`` body: the row's columns, with its key (as text) as the ``objectId``."""
    return {"objectId": str(row[key]), **row}


def row_of(obj: Any, schema: Schema) -> Row | None:
    """The harness row in a Parse object (its columns only), None when ``obj`` is not an object.

    LiveQuery events drop a field named ``id`` (the JavaScript SDK's ``Parse.Object`` that the
    server builds them with treats ``id`` as the ``objectId``), so a missing key column is read
    back from the ``objectId``.
    """
    if not isinstance(obj, dict):
        return None
    row = {c.name: obj[c.name] for c in schema.columns if c.name in obj}
    key = next(c for c in schema.columns if c.primary_key)
    object_id = obj.get("objectId")
    if key.name not in row and isinstance(object_id, str):
        row[key.name] = object_id if key.type is ColumnType.TEXT else _int_or_text(object_id)
    return row


def _int_or_text(text: str) -> int | str:
    try:
        return int(text)
    except ValueError:
        return text


def _millis(text: Any) -> int | None:
    """``updatedAt`` (ISO 8601, milliseconds) as ns since the epoch, None when absent or unreadable."""
    if not isinstance(text, str):
        return None
    try:
        return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000) * 1_000_000
    except ValueError:
        return None


def change_of(msg: dict[str, Any], schema: Schema, received_ns: int, size: int) -> Change | None:
    """The ``Change`` of one LiveQuery event frame, None for frames that are not row events.

    ``original`` (the object before the write) is the old row of updates; a delete's ``object``
    is the deleted object's last state, so it is the old row, and the delete op is itself the
    delete flag. Events carry no sequence number: ``server_seq`` is None. ``committed_ns`` is
    ``updatedAt`` of creates and updates (the server's clock, milliseconds); deletes have none.
    """
    op = EVENT_OPS.get(str(msg.get("op")))
    if op is None:
        return None
    obj, original = msg.get("object"), msg.get("original")
    if op is Op.DELETE:
        return Change(op, None, row_of(obj, schema), None, received_ns, size, deleted=True)
    committed = _millis(obj.get("updatedAt")) if isinstance(obj, dict) else None
    return Change(op, row_of(obj, schema), row_of(original, schema), None, received_ns, size, committed_ns=committed)


def error_text(status: int, body: Any) -> str:
    """One line for a Parse error reply: ``HTTP 400 code 101: Object not found.``."""
    if isinstance(body, dict) and ("code" in body or "error" in body):
        return f"HTTP {status} code {body.get('code')}: {body.get('error')}"
    return f"HTTP {status}"
