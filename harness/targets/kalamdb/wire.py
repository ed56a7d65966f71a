"""Pure KalamDB v1 wire helpers: value conversion, replies, frames and messages to ``Change``.

Kept free of I/O so the encoding rules of ``docs/kalamdb-protocol.md`` (BIGINT as JSON
strings, gzip binary frames, change/old-value shapes) are unit-testable. The rules of the two
protocol generations live here too: 0.4's Snowflake ``_seq`` (a commit time) and numeric
cursors, 0.7's opaque ``_version`` (no time) and string cursors, its ``CURSOR_EXPIRED`` and
SHARED-table ``version_domain`` (``docs/kalamdb-0.7.md``). The statement text is in ``dialect``.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from harness.targets.base import Change, ColumnType, Op, Outcome, ProtocolError, Row, Schema, TargetError

__all__ = [
    "CURSOR_EXPIRED",
    "GENERATIONS",
    "PAGE",
    "WireError",
    "change_events",
    "classify",
    "committed_ns",
    "convert_row",
    "count_of",
    "decode_frame",
    "error_of",
    "generation_of",
    "job_id_of",
    "resume_options",
    "result_rows",
    "results_of",
    "rows_affected",
    "schema_bigints",
    "snapshot_events",
    "wire_bigints",
]

SEQ_EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z: the Snowflake epoch of `_seq`
GZIP_MAGIC = b"\x1f\x8b"
BIGINT_WIRE_TYPES = frozenset({"BigInt"})  # `data_type` names whose values travel as JSON strings
VERSION_COLUMNS = {"_seq": "0.4", "_version": "0.7"}  # the row-version column of each protocol generation
GENERATIONS = ("0.7", "0.4")
SYSTEM_BIGINTS = frozenset(VERSION_COLUMNS)
CURSOR_EXPIRED = "CURSOR_EXPIRED"  # 0.7: the resume cursor is outside the server's replay log
# 5xx codes that mean the server refused the statement before running it.
REFUSAL_5XX_CODES = frozenset({"NOT_LEADER", "TOO_MANY_CONNECTIONS"})
PAGE = 1000  # max_query_limit: the most rows one query returns (protocol 2.4)
MAX_FRAME_BYTES = 64 << 20  # the largest server message accepted, compressed or not; larger ones are a WireError
_JOB_ID = re.compile(r"Job ID:\s*([A-Za-z0-9_:.\-]*[A-Za-z0-9_])")


class WireError(ProtocolError):
    """A frame or message the KalamDB protocol does not allow: every decoder here raises only this for bad input."""


def _objects(value: Any, what: str) -> list[Mapping[str, Any]]:
    """``value`` as a list of JSON objects (None: none); a WireError names ``what`` otherwise."""
    if value is None:
        return []
    if value.__class__ is list and len(value) == 1 and isinstance(value[0], dict):  # one row: no generator
        return value
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise WireError(f"{what} is not a list of objects")
    return value


def committed_ns(seq: int) -> int:
    """Commit time of a Snowflake ``_seq`` (41 bits of ms since 2024-01-01) in Unix nanoseconds."""
    return ((seq >> 22) + SEQ_EPOCH_MS) * 1_000_000


def generation_of(names: Iterable[str]) -> str | None:
    """The protocol generation a column list shows: ``_version`` is 0.7, ``_seq`` 0.4, neither None."""
    found = {VERSION_COLUMNS[n] for n in names if n in VERSION_COLUMNS}
    return found.pop() if len(found) == 1 else None


def resume_options(
    cursor: int, batch_size: int, generation: str, version_domain: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """``subscription.options`` resuming after ``cursor``: a JSON number (0.4) or a decimal string (0.7).

    0.7 SHARED tables also echo the ``version_domain`` of the subscription the cursor came from.
    """
    options: dict[str, Any] = {"from": str(cursor) if generation == "0.7" else int(cursor), "batch_size": batch_size}
    if generation == "0.7" and version_domain is not None:
        options["version_domain"] = dict(version_domain)
    return options


def schema_bigints(schema: Schema) -> frozenset[str]:
    """Columns of ``schema`` whose values arrive as JSON strings (its int64 columns), plus ``_seq``/``_version``."""
    return SYSTEM_BIGINTS | {c.name for c in schema.columns if c.type is ColumnType.INT64}


def wire_bigints(fields: Any) -> frozenset[str]:
    """BIGINT columns named by a result or subscription ``schema`` list."""
    columns = _objects(fields, "schema")
    if not all(isinstance(f.get("name"), str) for f in columns):
        raise WireError("schema has a column without a name")
    return frozenset(f["name"] for f in columns if f.get("data_type") in BIGINT_WIRE_TYPES)


def _to_int(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return value
    return value


def convert_row(row: Mapping[str, Any], bigints: frozenset[str]) -> Row:
    """Copy of ``row`` with the BIGINT columns' string values turned into ints."""
    return {k: (_to_int(v) if k in bigints else v) for k, v in row.items()}


def _index(field: Mapping[str, Any]) -> int:
    index = field.get("index", 0)
    return index if isinstance(index, int) else 0


def result_rows(result: Mapping[str, Any], bigints: frozenset[str] = frozenset()) -> list[Row]:
    """Rows of one HTTP statement result (positional arrays) as dicts keyed by column name."""
    if not isinstance(result, Mapping):
        raise WireError("a statement result is not an object")
    fields = result.get("schema") or []
    all_bigints = bigints | wire_bigints(fields)
    names = [f["name"] for f in sorted(fields, key=_index)]
    rows = result.get("rows") or []
    if not isinstance(rows, list) or not all(isinstance(values, list) for values in rows):
        raise WireError("result rows are not a list of arrays")
    return [convert_row(dict(zip(names, values, strict=False)), all_bigints) for values in rows]


def results_of(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``results`` of a successful ``/v1/api/sql`` reply: one object per statement."""
    return [dict(r) for r in _objects(body.get("results"), "`results`")]


def error_of(body: Any) -> tuple[str, str] | None:
    """(code, message) of a KalamDB error body in either of its shapes, or None if it is not one."""
    if not isinstance(body, dict):
        return None
    err = body.get("error")
    if isinstance(err, dict):
        return str(err.get("code") or "ERROR"), str(err.get("message") or "")
    if isinstance(err, str):
        return err, str(body.get("message") or "")
    if body.get("status") == "error":
        return "ERROR", str(body.get("message") or "")
    return None


def classify(status: int, body: Any) -> tuple[Outcome, str | None]:
    """Outcome of a write from the HTTP status and decoded body (the write got an answer)."""
    err = error_of(body)
    if status == 200 and err is None:
        return Outcome.OK, None
    text = f"HTTP {status}" + (f" {err[0]}: {err[1]}" if err else "")
    if err is not None and (400 <= status < 500 or status == 200 or err[0] in REFUSAL_5XX_CODES):
        return Outcome.FAILED, text
    return Outcome.INDETERMINATE, text


def count_of(results: Sequence[Mapping[str, Any]]) -> int:
    """The one non-negative integer a ``COUNT(*)`` statement answered; TargetError for any other shape."""
    if len(results) != 1:
        raise TargetError(f"{len(results)} statement results, expected 1")
    rows = result_rows(results[0])
    values = list(rows[0].values()) if len(rows) == 1 else []
    if len(values) != 1 or not isinstance(values[0], int) or isinstance(values[0], bool) or values[0] < 0:
        raise TargetError(f"COUNT(*) answered {rows!r}")
    return values[0]


def rows_affected(body: Any) -> int | None:
    """The ``row_count`` of a write's first result, None when the reply has none."""
    results = body.get("results") if isinstance(body, dict) else None
    first = results[0] if isinstance(results, list) and results else None
    count = first.get("row_count") if isinstance(first, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) else None


def job_id_of(message: str | None) -> str | None:
    """The job id in a ``STORAGE FLUSH TABLE`` reply ("... Job ID: <id>"), None when none started."""
    match = _JOB_ID.search(message if isinstance(message, str) else "")
    return match.group(1) if match else None


def _gunzip(data: bytes) -> bytes:
    """One gzip member, refused when truncated, followed by junk, or larger than ``MAX_FRAME_BYTES`` unpacked."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, MAX_FRAME_BYTES + 1)
    except zlib.error as exc:
        raise WireError(f"bad gzip frame: {exc}") from None
    if len(out) > MAX_FRAME_BYTES:
        raise WireError(f"gzip frame unpacks to more than {MAX_FRAME_BYTES} bytes")
    if not inflater.eof:
        raise WireError("truncated gzip frame")
    if inflater.unused_data:
        raise WireError("gzip frame followed by other bytes")
    return out


def decode_frame(data: bytes | str) -> dict[str, Any]:
    """One server message from a text frame or a (possibly gzipped) binary frame."""
    if len(data) > MAX_FRAME_BYTES:
        raise WireError(f"frame of {len(data)} bytes exceeds {MAX_FRAME_BYTES}")
    if isinstance(data, bytes) and data[:2] == GZIP_MAGIC:
        data = _gunzip(data)
    try:
        msg = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"frame is not JSON: {exc}") from None
    if not isinstance(msg, dict):
        raise WireError(f"frame is not a JSON object: {type(msg).__name__}")
    return msg


def _split(total: int, parts: int) -> list[int]:
    """``total`` bytes spread over ``parts`` rows, summing to ``total``."""
    base, rest = divmod(total, parts)
    return [base + rest] + [base] * (parts - 1)


def _seq_of(row: Row | None) -> tuple[int | None, bool]:
    """The row's version and whether it is a Snowflake ``_seq`` (0.4, a commit time) rather than 0.7's ``_version``."""
    if not row:
        return None, False
    seq = row.get("_seq")
    if isinstance(seq, int) and not isinstance(seq, bool):
        return seq, True
    version = row.get("_version")
    return (version, False) if isinstance(version, int) and not isinstance(version, bool) else (None, False)


def _converted(row: Mapping[str, Any], bigints: frozenset[str]) -> Row:
    """``convert_row`` for the notification path: a copy with only the BIGINT columns present looked at."""
    out = dict(row)
    for key in bigints:
        value = out.get(key)
        if isinstance(value, str):
            try:
                out[key] = int(value)
            except ValueError:
                pass
    return out


def _change(op: Op, row: Row | None, old: Row | None, sent: Mapping[str, Any], received_ns: int, size: int) -> Change:
    source = row if row is not None else old
    seq: Any = source.get("_seq") if source else None
    if type(seq) is int:  # 0.4's Snowflake, the common case there: no call to tell it apart
        committed = ((seq >> 22) + SEQ_EPOCH_MS) * 1_000_000 if seq > 0 else None
    else:
        seq, snowflake = _seq_of(source)
        committed = committed_ns(seq) if snowflake and seq is not None and seq > 0 else None
    deleted = sent.get("_deleted")
    return Change(op, row, old, seq, received_ns, size, deleted if isinstance(deleted, bool) else None, committed)


def change_events(msg: Mapping[str, Any], received_ns: int, wire_bytes: int, bigints: frozenset[str]) -> list[Change]:
    """The ``Change``s of one ``change`` message (one per row of ``rows`` / ``old_values``)."""
    kind = msg.get("change_type")
    rows = _objects(msg.get("rows"), "change `rows`")
    if kind == "insert":  # the common case: old values are checked for shape only
        if msg.get("old_values") is not None:
            _objects(msg.get("old_values"), "change `old_values`")
        if len(rows) <= 1:
            return (
                [_change(Op.INSERT, _converted(rows[0], bigints), None, rows[0], received_ns, wire_bytes)]
                if rows
                else []
            )
        return [
            _change(Op.INSERT, _converted(r, bigints), None, r, received_ns, size)
            for r, size in zip(rows, _split(wire_bytes, len(rows)), strict=True)
        ]
    olds = _objects(msg.get("old_values"), "change `old_values`")
    pairs: list[tuple[Op, Mapping[str, Any] | None, Mapping[str, Any] | None, Mapping[str, Any]]]
    if kind == "update":
        pairs = [(Op.UPDATE, r, olds[i] if i < len(olds) else None, r) for i, r in enumerate(rows)]
    elif kind == "delete":
        pairs = [(Op.DELETE, None, o, o) for o in olds]
    else:
        raise WireError(f"unknown change_type {kind!r}")
    if not pairs:
        return []
    return [
        _change(
            op,
            _converted(new, bigints) if new is not None else None,
            _converted(old, bigints) if old is not None else None,
            sent,
            received_ns,
            size,
        )
        for (op, new, old, sent), size in zip(pairs, _split(wire_bytes, len(pairs)), strict=True)
    ]


def snapshot_events(rows: Any, received_ns: int, wire_bytes: int, bigints: frozenset[str]) -> list[Change]:
    """The ``Op.SNAPSHOT`` changes of one ``initial_data_batch``'s rows."""
    rows = _objects(rows, "snapshot `rows`")
    if not rows:
        return []
    return [
        _change(Op.SNAPSHOT, _converted(r, bigints), None, r, received_ns, size)
        for r, size in zip(rows, _split(wire_bytes, len(rows)), strict=True)
    ]
