"""Property-based tests of the KalamDB wire decoders: any bytes, any JSON, any shape.

Whatever a target sends, a decoder returns its value or raises ``WireError`` (a ``TargetError``),
which the listener counts as a protocol anomaly; never ``KeyError``, ``TypeError``,
``AttributeError`` or a hang.
"""

from __future__ import annotations

import gzip
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.targets.base import Change, Op, TargetError
from harness.targets.kalamdb import wire

settings.register_profile("wire", max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FUZZ = settings.get_profile("wire")

COLUMNS = ("id", "writer_id", "wseq", "version", "content", "conversation_id", "sent_at", "_seq", "_deleted")
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
JSON: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
ENCODABLE: st.SearchStrategy[Any] = st.recursive(  # what orjson writes back unchanged: finite, 64-bit
    st.none()
    | st.booleans()
    | st.integers(min_value=-(1 << 63), max_value=(1 << 63) - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
ROW = st.dictionaries(st.sampled_from(COLUMNS) | st.text(max_size=6), SCALARS | st.text(alphabet="0123456789"))
ROWS = st.lists(ROW, max_size=4) | JSON
CHANGE_MESSAGE = st.fixed_dictionaries(
    {"type": st.just("change"), "change_type": st.sampled_from(["insert", "update", "delete"]) | JSON},
    optional={"rows": ROWS, "old_values": ROWS, "subscription_id": JSON},
)
BIGINTS = frozenset({"id", "writer_id", "wseq", "_seq"})


def _decodes_or_wire_error(data: bytes | str) -> dict[str, Any] | None:
    try:
        return wire.decode_frame(data)
    except wire.WireError:
        return None


@FUZZ
@given(st.binary(max_size=256) | st.text(max_size=256))
def test_any_frame_is_a_message_or_a_wire_error(data: bytes | str) -> None:
    msg = _decodes_or_wire_error(data)
    assert msg is None or isinstance(msg, dict)


@settings(FUZZ, max_examples=100)
@given(ENCODABLE, st.data())
def test_gzip_frames_decode_whole_and_refuse_truncation(value: Any, data: st.DataObject) -> None:
    packed = gzip.compress(orjson.dumps(value))
    assert _decodes_or_wire_error(packed) == (value if isinstance(value, dict) else None)
    cut = data.draw(st.integers(min_value=2, max_value=len(packed) - 1))
    with pytest.raises(wire.WireError):
        wire.decode_frame(packed[:cut])
    with pytest.raises(wire.WireError, match="followed by other bytes"):
        wire.decode_frame(packed + b"junk")


def test_huge_frames_and_gzip_bombs_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "MAX_FRAME_BYTES", 1 << 16)
    with pytest.raises(wire.WireError, match="exceeds"):
        wire.decode_frame(b" " * ((1 << 16) + 1))
    bomb = gzip.compress(b"[" + b" " * (1 << 20) + b"]")  # small on the wire, 1 MB unpacked
    assert len(bomb) < 1 << 16
    with pytest.raises(wire.WireError, match="unpacks to more than"):
        wire.decode_frame(bomb)


@FUZZ
@given(CHANGE_MESSAGE, st.integers(min_value=0, max_value=1 << 20))
def test_change_messages_become_changes_or_a_wire_error(msg: dict[str, Any], size: int) -> None:
    try:
        changes = wire.change_events(msg, 1, size, BIGINTS)
    except wire.WireError:
        assert msg["change_type"] not in ("insert", "update", "delete") or any(
            not (v is None or isinstance(v, list) and all(isinstance(r, dict) for r in v))
            for v in (msg.get("rows"), msg.get("old_values"))
        )
        return
    assert all(isinstance(c, Change) and c.op in (Op.INSERT, Op.UPDATE, Op.DELETE) for c in changes)
    assert sum(c.wire_bytes for c in changes) == (size if changes else 0)
    assert all(c.server_seq is None or isinstance(c.server_seq, int) for c in changes)


@FUZZ
@given(ROWS)
def test_snapshot_rows_become_changes_or_a_wire_error(rows: Any) -> None:
    try:
        changes = wire.snapshot_events(rows, 1, 100, BIGINTS)
    except wire.WireError:
        return
    assert all(c.op is Op.SNAPSHOT and isinstance(c.row, dict) for c in changes)


@FUZZ
@given(st.dictionaries(st.sampled_from(["schema", "rows", "row_count", "message"]), JSON))
def test_statement_results_become_rows_or_a_wire_error(result: dict[str, Any]) -> None:
    try:
        rows = wire.result_rows(result, BIGINTS)
    except wire.WireError:
        return
    assert all(isinstance(r, dict) for r in rows)


@FUZZ
@given(JSON, st.integers(min_value=100, max_value=599))
def test_replies_of_any_shape_are_classified(body: Any, status: int) -> None:
    wire.error_of(body)
    outcome, error = wire.classify(status, body)
    assert error is None or isinstance(error, str)
    count = wire.rows_affected(body)
    assert count is None or isinstance(count, int)
    assert wire.job_id_of(body) is None or isinstance(body, str)
    if isinstance(body, dict):
        try:
            wire.results_of(body)
        except wire.WireError:
            pass
    try:
        wire.count_of(body if isinstance(body, list) else [body])
    except TargetError:
        pass


@FUZZ
@given(JSON)
def test_schemas_of_any_shape_name_bigints_or_raise_a_wire_error(fields: Any) -> None:
    try:
        names = wire.wire_bigints(fields)
    except wire.WireError:
        return
    assert all(isinstance(n, str) for n in names)
