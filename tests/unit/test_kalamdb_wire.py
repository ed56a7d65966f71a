"""Pure KalamDB rules: value conversion, Snowflake time, frames, messages to Change, and the SQL dialect."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import orjson
import pytest

from harness.errors import HarnessError
from harness.plan import TargetSpec
from harness.targets import create_target
from harness.targets.base import Column, ColumnType, Eq, Op, Outcome, Schema, TableKind, TargetError
from harness.targets.kalamdb import dialect, wire

SCHEMA = Schema(
    namespace="chat",
    table="messages",
    columns=(
        Column("id", ColumnType.INT64, primary_key=True),
        Column("conversation_id", ColumnType.INT64, not_null=True),
        Column("version", ColumnType.INT32),
        Column("content", ColumnType.TEXT),
    ),
    users={"alice": "Secr3t!pass"},
)
OPTIONS = {"flush_policy": "rows:1000", "deleted_retention_hours": "1"}
SHARED = Schema("lqh", "t", SCHEMA.columns, table_type=TableKind.SHARED)
BIG = wire.schema_bigints(SCHEMA)


def test_committed_ns_decodes_snowflake_milliseconds() -> None:
    ms_since_epoch = 73_000_000_123
    seq = (ms_since_epoch << 22) | (1 << 12) | 7  # worker 1, sequence 7
    expected = datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1000 + ms_since_epoch
    assert wire.committed_ns(seq) == int(expected) * 1_000_000


def test_bigint_strings_become_ints_only_in_bigint_columns() -> None:
    row = {"id": "301213987164352512", "conversation_id": "7", "content": "123", "_seq": "42", "version": 3}
    assert wire.convert_row(row, BIG) == {
        "id": 301213987164352512,
        "conversation_id": 7,
        "content": "123",
        "_seq": 42,
        "version": 3,
    }
    assert wire.convert_row({"id": "not-a-number"}, BIG) == {"id": "not-a-number"}


def test_http_result_rows_use_the_result_schema() -> None:
    result = {
        "schema": [
            {"name": "body", "data_type": "Text", "index": 1},
            {"name": "id", "data_type": "BigInt", "index": 0},
            {"name": "_seq", "data_type": "BigInt", "index": 2},
            {"name": "_deleted", "data_type": "Boolean", "index": 3},
        ],
        "rows": [["301213987164352512", "hello", "301213987168546816", False]],
    }
    assert wire.result_rows(result) == [
        {"id": 301213987164352512, "body": "hello", "_seq": 301213987168546816, "_deleted": False}
    ]
    assert wire.result_rows({"row_count": 1}) == []


def test_text_plain_and_gzip_binary_frames_decode_alike() -> None:
    msg = {"type": "change", "change_type": "insert", "rows": [{"id": "1", "content": "x" * 2000}]}
    raw = orjson.dumps(msg)
    packed = gzip.compress(raw)
    assert packed[:2] == b"\x1f\x8b"
    assert wire.decode_frame(raw.decode()) == msg
    assert wire.decode_frame(raw) == msg
    assert wire.decode_frame(packed) == msg
    with pytest.raises(TargetError, match="gzip"):
        wire.decode_frame(packed[:20])
    with pytest.raises(TargetError, match="not JSON"):
        wire.decode_frame(b"\x00\x01")


def test_insert_message_becomes_insert_change() -> None:
    seq = 301213990004194304
    msg = {
        "type": "change",
        "change_type": "insert",
        "rows": [{"id": "5", "conversation_id": "1", "content": "new", "_seq": str(seq), "_deleted": False}],
    }
    (c,) = wire.change_events(msg, 123, 300, BIG)
    assert c.op is Op.INSERT
    assert c.row == {"id": 5, "conversation_id": 1, "content": "new", "_seq": seq, "_deleted": False}
    assert c.old_row is None
    assert (c.server_seq, c.received_ns, c.wire_bytes, c.deleted) == (seq, 123, 300, False)
    assert c.committed_ns == wire.committed_ns(seq)


def test_update_message_carries_old_values_and_previous_seq() -> None:
    msg = {
        "type": "change",
        "change_type": "update",
        "rows": [{"id": "5", "content": "edited", "version": 2, "_seq": "900"}],
        "old_values": [{"id": "5", "content": "new", "_seq": "800"}],
    }
    (c,) = wire.change_events(msg, 1, 10, BIG)
    assert c.op is Op.UPDATE
    assert c.row == {"id": 5, "content": "edited", "version": 2, "_seq": 900}
    assert c.old_row == {"id": 5, "content": "new", "_seq": 800}
    assert c.server_seq == 900
    assert c.deleted is None


def test_delete_message_uses_the_tombstone() -> None:
    msg = {
        "type": "change",
        "change_type": "delete",
        "old_values": [{"id": "5", "content": "edited", "_seq": "1000", "_deleted": True}],
    }
    (c,) = wire.change_events(msg, 1, 10, BIG)
    assert (c.op, c.row, c.server_seq, c.deleted) == (Op.DELETE, None, 1000, True)
    assert c.old_row == {"id": 5, "content": "edited", "_seq": 1000, "_deleted": True}


def test_multi_row_messages_split_wire_bytes_exactly() -> None:
    msg = {
        "type": "change",
        "change_type": "insert",
        "rows": [{"id": str(i), "_seq": str(10 + i)} for i in range(3)],
    }
    changes = wire.change_events(msg, 1, 100, BIG)
    assert [c.row["id"] for c in changes] == [0, 1, 2]
    assert sum(c.wire_bytes for c in changes) == 100
    snaps = wire.snapshot_events([{"id": "1", "_seq": "5", "_deleted": False}, {"id": "2", "_seq": "6"}], 9, 7, BIG)
    assert [(s.op, s.server_seq, s.deleted) for s in snaps] == [
        (Op.SNAPSHOT, 5, False),
        (Op.SNAPSHOT, 6, None),
    ]
    assert sum(s.wire_bytes for s in snaps) == 7
    with pytest.raises(TargetError, match="change_type"):
        wire.change_events({"type": "change", "change_type": "upsert", "rows": []}, 1, 1, BIG)


def test_outcome_classification() -> None:
    ok = {"status": "success", "results": [{"row_count": 1}], "took": 1.0}
    assert wire.classify(200, ok) == (Outcome.OK, None)
    assert wire.rows_affected(ok) == 1
    refused = {"status": "error", "results": [], "error": {"code": "SQL_EXECUTION_ERROR", "message": "dup"}}
    assert wire.classify(400, refused)[0] is Outcome.FAILED
    assert wire.classify(429, {"error": "IP_BANNED", "message": "slow down"})[0] is Outcome.FAILED
    assert wire.classify(400, None)[0] is Outcome.INDETERMINATE
    internal = {"status": "error", "error": {"code": "INTERNAL_ERROR", "message": "boom"}}
    assert wire.classify(500, internal)[0] is Outcome.INDETERMINATE
    not_leader = {"status": "error", "error": {"code": "NOT_LEADER", "message": "ask node 2"}}
    assert wire.classify(503, not_leader)[0] is Outcome.FAILED
    assert wire.classify(502, None) == (Outcome.INDETERMINATE, "HTTP 502")


def test_count_answers_are_one_non_negative_integer() -> None:
    def result(*values: object) -> dict:
        return {"schema": [{"name": "n", "data_type": "BigInt", "index": 0}], "rows": [[v] for v in values]}

    assert wire.count_of([result("12")]) == 12
    with pytest.raises(TargetError, match="COUNT"):
        wire.count_of([result("x")])
    with pytest.raises(TargetError, match="COUNT"):
        wire.count_of([result()])
    with pytest.raises(TargetError, match="COUNT"):
        wire.count_of([result("-1")])
    with pytest.raises(TargetError, match="statement results"):
        wire.count_of([])


def test_sql_text_is_parameterised_and_stable() -> None:
    table = dialect.qualified(SCHEMA)
    assert dialect.insert_sql(table, ["id", "content"]) == "INSERT INTO chat.messages (id, content) VALUES ($1, $2)"
    assert dialect.update_sql(table, "id", ["content", "version"]) == (
        "UPDATE chat.messages SET content = $1, version = $2 WHERE id = $3"
    )
    assert dialect.delete_sql(table, "id") == "DELETE FROM chat.messages WHERE id = $1"
    with pytest.raises(TargetError, match="identifier"):
        dialect.insert_sql(table, ["id; DROP"])


def test_ddl_maps_neutral_kinds_and_types_and_users() -> None:
    assert dialect.create_table_sql(SCHEMA, OPTIONS) == (
        "CREATE USER TABLE IF NOT EXISTS chat.messages (id BIGINT PRIMARY KEY, conversation_id BIGINT NOT NULL, "
        "version INT, content TEXT) WITH (FLUSH_POLICY = 'rows:1000', DELETED_RETENTION_HOURS = 1)"
    )
    assert dialect.create_table_sql(SHARED).startswith("CREATE SHARED TABLE IF NOT EXISTS lqh.t (id BIGINT")
    assert dialect.create_user_sql("bob", "it's") == "CREATE USER 'bob' WITH PASSWORD 'it''s' ROLE user"


def test_filters_become_where_clauses_of_schema_columns() -> None:
    assert dialect.subscription_sql(SCHEMA, None) == "SELECT * FROM chat.messages"
    assert dialect.subscription_sql(SCHEMA, Eq("conversation_id", 7)) == (
        "SELECT * FROM chat.messages WHERE conversation_id = 7"
    )
    assert dialect.subscription_sql(SCHEMA, Eq("content", "it's")) == (
        "SELECT * FROM chat.messages WHERE content = 'it''s'"
    )
    assert dialect.rows_sql(SCHEMA, None, 5) == "SELECT * FROM chat.messages LIMIT 5"
    with pytest.raises(TargetError, match="not a column"):
        dialect.subscription_sql(SCHEMA, Eq("nope", 1))
    with pytest.raises(TargetError, match="only integers and text"):
        dialect.subscription_sql(SCHEMA, Eq("version", True))


def test_reads_run_as_the_user_on_user_tables_only() -> None:
    user_table = Schema("lqh", "t", SCHEMA.columns)
    assert dialect.count_sql(user_table, "app") == "EXECUTE AS USER 'app' (SELECT COUNT(*) AS n FROM lqh.t)"
    assert dialect.count_sql(user_table) == "SELECT COUNT(*) AS n FROM lqh.t"
    assert dialect.recent_sql(SHARED, Eq("conversation_id", 7), 20, "app") == (
        "SELECT * FROM lqh.t WHERE conversation_id = 7 ORDER BY id DESC LIMIT 20"
    )
    assert dialect.recent_sql(user_table, None, 3, "o'neil") == (
        "EXECUTE AS USER 'o''neil' (SELECT * FROM lqh.t ORDER BY id DESC LIMIT 3)"
    )


def test_job_id_parsing() -> None:
    assert wire.job_id_of("Storage flush started for table 'chat.messages'. Job ID: FL-abc123.") == "FL-abc123"
    assert wire.job_id_of("Storage flush skipped: no pending writes") is None
    assert wire.job_id_of(None) is None


def test_registry_names() -> None:
    for name in ("kalamdb", "ref"):
        target = create_target(TargetSpec(name, "http://127.0.0.1:1", "root", "pw"))
        assert target.name == name
        assert {"resume", "changes_counter", "user_tables"} <= target.features
    with pytest.raises(HarnessError, match="unknown target 'nope'"):
        create_target(TargetSpec("nope", "http://127.0.0.1:1", "root", "pw"))
    with pytest.raises(HarnessError, match="bad KalamDB URL"):
        create_target(TargetSpec("kalamdb", "ftp://x", "root", "pw"))


# ---------------------------------------------------------------- protocol generations (docs/kalamdb-0.7.md)


def test_the_row_version_column_names_the_generation() -> None:
    assert wire.generation_of(["id", "body", "_seq", "_deleted"]) == "0.4"
    assert wire.generation_of(["id", "body", "_version", "_deleted"]) == "0.7"
    assert wire.generation_of(["id", "body"]) is None
    assert wire.generation_of(["_seq", "_version"]) is None  # contradictory: no guess


def test_resume_cursors_are_numbers_under_04_and_strings_under_07() -> None:
    assert wire.resume_options(655360, 500, "0.4") == {"from": 655360, "batch_size": 500}
    assert wire.resume_options(655360, 500, "0.7") == {"from": "655360", "batch_size": 500}
    domain = {"history_incarnation": "a1", "table_id": "lqh.t", "scope_id": "shared", "partition_id": 0}
    assert wire.resume_options(7, 10, "0.7", domain)["version_domain"] == domain
    assert "version_domain" not in wire.resume_options(7, 10, "0.4", domain)


def test_a_07_version_is_the_cursor_but_not_a_commit_time() -> None:
    msg = {"type": "change", "change_type": "insert", "rows": [{"id": "5", "_version": "655360", "_deleted": False}]}
    (change,) = wire.change_events(msg, 1, 10, BIG)
    assert change.server_seq == 655360 and change.committed_ns is None
    seq = (73_000_000_123 << 22) | 7
    old = {"type": "change", "change_type": "delete", "old_values": [{"id": "5", "_seq": str(seq), "_deleted": True}]}
    (delete,) = wire.change_events(old, 1, 10, BIG)
    assert delete.server_seq == seq and delete.committed_ns == wire.committed_ns(seq)


def test_generation_and_websocket_auth_options_are_checked() -> None:
    spec = TargetSpec("kalamdb", "http://127.0.0.1:1", "root", "pw", {"protocol": "0.7", "ws_auth": "subprotocol"})
    target = create_target(spec)
    assert target.protocol == "0.7"
    assert {"resume_replays_changes", "filter_transitions"} <= target.features
    forced_04 = create_target(TargetSpec("kalamdb", "http://127.0.0.1:2", "root", "pw", {"protocol": "0.4"}))
    assert "resume_replays_changes" not in forced_04.features and "resume" in forced_04.features
    for bad in ({"protocol": "0.5"}, {"ws_auth": "cookie"}):
        with pytest.raises(HarnessError, match="protocol must be|ws_auth must be"):
            create_target(TargetSpec("kalamdb", "http://127.0.0.1:1", "root", "pw", bad))
