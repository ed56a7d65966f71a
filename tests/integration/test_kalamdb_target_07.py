"""The KalamDB driver against ``lqharness serve --protocol 0.7``: detection, replay resumes, expired cursors.

The 0.4 behaviour of the same driver is ``test_kalamdb_target.py`` (its server speaks 0.4).
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator

import pytest

from harness.plan import TargetSpec
from harness.targets import create_target
from harness.targets.base import Change, Column, ColumnType, Op, Outcome, Schema, Target
from refserver.replay import MAX_CHANGES_PER_SCOPE
from tests.support.refserver import Http, start_refserver

pytestmark = pytest.mark.timeout(60)

COLUMNS = (
    Column("id", ColumnType.INT64, primary_key=True),
    Column("conversation_id", ColumnType.INT64, not_null=True),
    Column("version", ColumnType.INT32, not_null=True),
    Column("content", ColumnType.TEXT, not_null=True),
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    with start_refserver(tmp_path_factory.mktemp("refserver07"), protocol="0.7") as srv:
        yield srv


def _target(server: object, **options: object) -> Target:
    opts = {"heartbeat_interval": 0.5, "timeout": 5, **options}
    return create_target(TargetSpec("kalamdb", server.url, "root", server.root_password, opts))


def _schema(target: Target) -> Schema:
    tag = secrets.token_hex(4)
    schema = Schema(f"t{tag}", "messages", COLUMNS, users={f"u{tag}": "Str0ng!pass1"})
    admin = target.admin()
    try:
        admin.setup(schema)
    finally:
        admin.close()
    return schema


def _row(i: int, version: int = 1) -> dict[str, object]:
    return {"id": i, "conversation_id": i % 3, "version": version, "content": f"row{i}v{version}"}


def _drain(listener, count: int, timeout: float = 10.0) -> list[Change]:
    """Exactly ``count`` changes, then nothing more for a short while."""
    got: list[Change] = []
    deadline = time.monotonic() + timeout
    while len(got) < count and time.monotonic() < deadline:
        change = listener.recv(0.5)
        if change is not None:
            got.append(change)
    assert listener.recv(0.3) is None
    assert len(got) == count, f"received {len(got)} of {count}"
    return got


def test_the_generation_is_detected_at_setup_and_changes_the_promises(server) -> None:
    target = _target(server)
    assert target.protocol in (None, "0.7")  # unknown until the server has shown a version column
    _schema(target)
    assert target.protocol == "0.7"
    assert {"resume_replays_changes", "filter_transitions"} <= target.features


def test_a_resume_inside_the_log_replays_every_change_deletes_included(server) -> None:
    target = _target(server)
    schema = _schema(target)
    (user,) = schema.users
    writer = target.writer(schema, user)
    first = target.listener(schema, user)
    try:
        first.subscribe()
        for i in range(3):
            writer.insert(_row(i))
        seen = _drain(first, 3)
        assert all(c.committed_ns is None for c in seen)  # _version is no timestamp
        cursor = first.last_seq
        first.close()
        assert writer.update(0, {"version": 2, "content": "row0v2"}).outcome is Outcome.OK
        assert writer.delete(1).outcome is Outcome.OK
        assert writer.insert(_row(3)).outcome is Outcome.OK
        second = target.listener(schema, user)
        try:
            second.subscribe(resume_from=cursor)
            assert second.replayed
            missed = _drain(second, 3)
            assert [c.op for c in missed] == [Op.UPDATE, Op.DELETE, Op.INSERT]
            assert missed[1].old_row["id"] == 1 and missed[1].deleted is True
        finally:
            second.close()
    finally:
        writer.close()


def test_an_expired_cursor_takes_a_fresh_snapshot_of_the_rows_after_it(server) -> None:
    target = _target(server)
    schema = _schema(target)
    (user,) = schema.users
    writer = target.writer(schema, user)
    first = target.listener(schema, user)
    try:
        first.subscribe()
        writer.insert(_row(0))
        (seen,) = _drain(first, 1)
        first.close()
        http = Http(server.url)
        root = http.login("root", server.root_password)
        count = MAX_CHANGES_PER_SCOPE + 10
        values = ", ".join(f"({i}, 1, 1, 'row{i}v1')" for i in range(1, count + 1))
        http.ok(root, f"EXECUTE AS USER '{user}' (INSERT INTO {schema.qualified} VALUES {values})")
        second = target.listener(schema, user)
        try:
            second.subscribe(resume_from=seen.server_seq)
            assert not second.replayed  # CURSOR_EXPIRED, then a fresh snapshot
            missed = _drain(second, count)
            assert all(c.op is Op.SNAPSHOT for c in missed)
            assert sorted(c.row["id"] for c in missed) == list(range(1, count + 1))  # row 0 was seen already
        finally:
            second.close()
    finally:
        writer.close()


def test_the_jwt_may_travel_as_the_websocket_subprotocol(server) -> None:
    target = _target(server, ws_auth="subprotocol")
    schema = _schema(target)
    (user,) = schema.users
    listener = target.listener(schema, user)
    writer = target.writer(schema, user)
    try:
        listener.subscribe()
        writer.insert(_row(7))
        (change,) = _drain(listener, 1)
        assert change.op is Op.INSERT and change.row["id"] == 7
    finally:
        listener.close()
        writer.close()


def test_a_resume_after_a_server_restart_is_refused_and_the_fresh_snapshot_is_correct(tmp_path) -> None:
    data, port = tmp_path / "data", _free_port()
    fixed = ("--data-dir", str(data), "--port", str(port))
    with start_refserver(tmp_path / "a", *fixed, protocol="0.7") as before:
        target = _target(before)
        schema = _schema(target)
        (user,) = schema.users
        listener, writer = target.listener(schema, user), target.writer(schema, user)
        listener.subscribe()
        for i in range(3):
            writer.insert(_row(i))
        cursor = _drain(listener, 3)[-1].server_seq
        listener.close()
        assert writer.delete(0).outcome is Outcome.OK  # while the listener is away
        assert writer.insert(_row(3)).outcome is Outcome.OK
        writer.close()
    with start_refserver(tmp_path / "b", *fixed, protocol="0.7", root_password=before.root_password):
        again = target.listener(schema, user)  # same URL, the new server: its tokens need a new login
        try:
            again.subscribe(resume_from=cursor)
            assert not again.replayed  # the replay log died with the old process
            (row,) = _drain(again, 1)
            assert row.op is Op.SNAPSHOT and row.row["id"] == 3  # the rows after the cursor, current ones only
        finally:
            again.close()


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
