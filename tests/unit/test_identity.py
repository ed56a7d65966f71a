"""Row identity: ids, contents, schema and reading notifications back."""

import orjson
import pytest

from harness.delivery.identity import (
    content,
    insert_row,
    messages_schema,
    read_change,
    row_id,
    split_id,
    update_changes,
)
from harness.plan import ListenerSpec, Plan, Step, TargetSpec, WriterSpec
from harness.targets.base import Change, ColumnType, Op, TableKind


def _plan() -> Plan:
    return Plan(
        run_id="r",
        scenario="s",
        target=TargetSpec("kalamdb", "http://127.0.0.1:1", "root", "pw"),
        namespace="lq",
        table="messages",
        table_type=TableKind.SHARED,
        app_user="app",
        app_password="secret",
        payload_bytes=100,
        writers=(WriterSpec(1, 7, (Step("insert", count=1),), user="bob"),),
        listeners=(ListenerSpec("l1", None, user="carol"),),
        writer_groups=((1,),),
        drain_seconds=1.0,
    )


def test_ids_pack_writer_and_row_number() -> None:
    rid = row_id(3, 17)
    assert rid == (3 << 32) | 17
    assert split_id(rid) == (3, 17)


def test_content_is_deterministic_sized_and_version_specific() -> None:
    assert content(5, 2, 100) == content(5, 2, 100)
    assert len(content(5, 2, 100)) == 100
    assert content(5, 2, 100) != content(5, 3, 100)
    assert content(5, 2, 100) != content(6, 2, 100)


def test_schema_has_identity_columns_and_users() -> None:
    schema = messages_schema(_plan())
    assert schema.qualified == "lq.messages" and schema.key == "id" and schema.table_type is TableKind.SHARED
    assert [(c.name, c.type, c.primary_key, c.not_null) for c in schema.columns] == [
        ("id", ColumnType.INT64, True, False),
        ("conversation_id", ColumnType.INT64, False, True),
        ("writer_id", ColumnType.INT64, False, True),
        ("wseq", ColumnType.INT64, False, True),
        ("version", ColumnType.INT32, False, True),
        ("content", ColumnType.TEXT, False, True),
        ("sent_at", ColumnType.INT64, False, True),
        ("last_delete", ColumnType.INT64, False, True),
    ]
    assert dict(schema.users) == {"app": "secret", "bob": "secret", "carol": "secret"}


def test_read_change_reads_ints_and_not_unconverted_strings() -> None:
    row = insert_row(2, 9, 4, 11, 123, 50)
    seen = read_change(Change(Op.INSERT, row, None, 1, 0, 10))
    assert (seen.writer_id, seen.n, seen.wseq, seen.version, seen.conversation_id) == (2, 4, 11, 1, 9)
    assert seen.error is None
    as_text = {k: str(v) if k != "content" else v for k, v in row.items()}  # the driver converts int64 columns
    assert "identity columns missing, not integers" in read_change(Change(Op.INSERT, as_text, None, 1, 0, 10)).error


def test_read_change_update_old_values_and_delete_tombstone() -> None:
    rid = row_id(2, 4)
    new = {"id": rid, "conversation_id": 9, "writer_id": 2, **update_changes(rid, 2, 12, 5, 50)}
    old = {"id": rid, "version": 1, "wseq": 11, "content": content(rid, 1, 50), "sent_at": 4}
    seen = read_change(Change(Op.UPDATE, new, old, 2, 0, 10))
    assert (seen.version, seen.old_version, seen.old_content) == (2, 1, content(rid, 1, 50))
    tomb = {**new, "_deleted": True}
    seen = read_change(Change(Op.DELETE, None, tomb, 3, 0, 10, deleted=True))
    assert (seen.n, seen.wseq, seen.version) == (4, 12, 2)


def test_read_change_reports_foreign_rows() -> None:
    assert read_change(Change(Op.INSERT, {"id": 1}, None, 1, 0, 1)).error
    bad = insert_row(2, 9, 4, 11, 123, 50) | {"writer_id": 3}
    assert "belongs to writer 2" in read_change(Change(Op.INSERT, bad, None, 1, 0, 1)).error


def test_table_kinds_parse_in_any_case_and_survive_the_plan_file() -> None:
    assert TableKind.parse("USER") is TableKind.USER and TableKind.parse("shared") is TableKind.SHARED
    with pytest.raises(ValueError, match="unknown table type 'STREAM': expected user or shared"):
        TableKind.parse("STREAM")
    plan = _plan()
    assert orjson.loads(plan.to_json())["table_type"] == "shared"
    data = {**orjson.loads(plan.to_json()), "app_password": "pw"}
    data["target"]["password"] = "pw"
    assert Plan.from_dict(data).table_type is TableKind.SHARED
