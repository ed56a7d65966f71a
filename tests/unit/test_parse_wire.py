"""The Parse driver's pure rules: class names, the ``where`` of a filter, LiveQuery events as changes."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import harness.targets.parse
from harness.delivery.identity import COLUMNS, insert_row, read_change
from harness.targets.base import Eq, Op, Schema, TargetError
from harness.targets.parse import wire
from harness.targets.parse.rest import Endpoint
from harness.targets.parse.target import LACKS, ParseTarget

SCHEMA = Schema("lqh", "live_inserts_20261203_111700_b99b", COLUMNS)
MODULES = ["harness.targets.parse"] + [
    f"harness.targets.parse.{m.name}" for m in pkgutil.iter_modules(harness.targets.parse.__path__)
]


@pytest.mark.parametrize("name", MODULES)
def test_every_module_declares_an_all_of_names_it_defines(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__, name
    assert [n for n in module.__all__ if not hasattr(module, n)] == []


def test_the_where_of_a_filter_is_column_equals_value_and_none_is_everything() -> None:
    assert wire.where_of(None) == {}
    assert wire.where_of(Eq("conversation_id", 2)) == {"conversation_id": 2}
    assert wire.where_of(Eq("tag", "t")) == {"tag": "t"}


def test_class_names_are_valid_parse_names_and_stay_short() -> None:
    assert wire.class_name(SCHEMA) == "lqh_live_inserts_20261203_111700_b99b"
    long = wire.class_name(Schema("lqh", "x" * 80, COLUMNS))
    assert len(long) <= wire.MAX_CLASS_NAME and long.startswith("lqh_x")
    assert long != wire.class_name(Schema("lqh", "x" * 79, COLUMNS))
    assert wire.class_name(Schema("9ns", "t-1", COLUMNS)) == "T9ns_t_1"


def test_the_key_is_the_object_id_and_comes_back_from_it_when_events_drop_id() -> None:
    row = insert_row(1, 1, 7, 7, 123, 20)
    body = wire.create_body(row, "id")
    assert body["objectId"] == str(row["id"]) and body["id"] == row["id"]
    event_object = {k: v for k, v in body.items() if k != "id"} | {"createdAt": "x", "updatedAt": "x"}
    assert wire.row_of(event_object, SCHEMA) == row


def test_events_become_changes_with_original_as_old_values_and_deletes_flagged() -> None:
    old = wire.create_body(insert_row(1, 1, 7, 1, 100, 20), "id")
    new = {**old, "version": 2, "wseq": 2, "updatedAt": "2026-12-03T11:17:00.123Z"}
    update = wire.change_of({"op": "update", "requestId": 1, "object": new, "original": old}, SCHEMA, 5, 9)
    assert update is not None and update.op is Op.UPDATE
    assert update.row is not None and update.row["version"] == 2
    assert update.old_row is not None and update.old_row["version"] == 1
    assert update.server_seq is None and update.committed_ns == 1796296620123000000
    seen = read_change(update)
    assert (seen.version, seen.old_version, seen.error) == (2, 1, None)
    delete = wire.change_of({"op": "delete", "object": new}, SCHEMA, 5, 9)
    assert delete is not None and delete.op is Op.DELETE and delete.deleted is True
    assert delete.row is None and delete.old_row is not None and delete.old_row["id"] == new["id"]
    moves = [wire.change_of({"op": op, "object": new, "original": old}, SCHEMA, 5, 9) for op in ("enter", "leave")]
    assert [c.op if c else None for c in moves] == [Op.INSERT, Op.DELETE]
    assert wire.change_of({"op": "subscribed", "requestId": 1}, SCHEMA, 5, 9) is None


def test_errors_are_one_line_with_the_parse_code() -> None:
    assert wire.error_text(404, {"code": 101, "error": "Object not found."}) == "HTTP 404 code 101: Object not found."
    assert wire.error_text(502, None) == "HTTP 502"


def test_the_endpoint_keeps_the_mount_for_rest_and_the_websocket() -> None:
    ep = Endpoint("http://127.0.0.1:1337/parse/")
    assert (ep.url, ep.ws_url, ep.mount) == ("http://127.0.0.1:1337/parse", "ws://127.0.0.1:1337/parse", "/parse")
    with pytest.raises(TargetError, match="bad Parse URL"):
        Endpoint("ftp://x")


def test_the_target_declares_no_feature_it_lacks() -> None:
    assert ParseTarget.features == frozenset()
    assert {"changes_counter", "resume", "commit_order"} <= set(LACKS)
