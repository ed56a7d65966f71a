"""Row-level policies on SHARED tables, on the wire of ``lqharness serve --protocol 0.7`` (and absent from 0.4).

Under 0.7 any authenticated role may subscribe to a SHARED table; without a policy a user sees no
row (fails closed), with one it sees the rows its ``USING`` lets through, ``CURRENT_USER()`` being
the subscriber; dba and system see every row. Raw HTTP and WebSocket, no driver in between.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import websocket

from harness.delivery.identity import COLUMNS
from harness.orchestration.server import LocalServer
from harness.plan import TargetSpec
from harness.targets import create_target
from harness.targets.base import Outcome, Schema, TableKind
from tests.support.refserver import Http, WsClient, start_refserver

pytestmark = pytest.mark.timeout(60)

PASSWORD = "Str0ngPass!"


@contextlib.contextmanager
def _server(tmp_path: Path, protocol: str) -> Iterator[LocalServer]:
    """A server with a SHARED table ``chat.rooms`` (owner per row), two users and a service."""
    with start_refserver(tmp_path, protocol=protocol) as srv:
        http = Http(srv.url)
        root = http.login("root", srv.root_password or "")
        http.ok(root, "CREATE NAMESPACE IF NOT EXISTS chat")
        http.ok(root, "CREATE SHARED TABLE chat.rooms (id TEXT PRIMARY KEY, owner TEXT, title TEXT)")
        for user, role in (("alice", "user"), ("bob", "user"), ("svc", "service")):
            http.ok(root, f"CREATE USER '{user}' WITH PASSWORD '{PASSWORD}' ROLE {role}")
        srv.http, srv.root = http, root  # type: ignore[attr-defined]
        yield srv


def _insert(srv, key: str, owner: str) -> None:
    srv.http.ok(srv.root, "INSERT INTO chat.rooms (id, owner, title) VALUES ($1, $2, 't')", [key, owner])


def _snapshot(srv, user: str, sub_id: str = "s") -> tuple[WsClient, list[str]]:
    """Subscribe as ``user``; the socket and the keys of the snapshot rows."""
    ws = WsClient(srv.ws_url)
    token = srv.root if user == "root" else srv.http.login(user, PASSWORD)
    assert ws.authenticate(token)["type"] == "auth_success"
    ack = ws.subscribe(sub_id, "SELECT * FROM chat.rooms", {})
    assert ack["type"] == "subscription_ack", ack
    batch = ws.recv()
    assert batch["type"] == "initial_data_batch", batch
    return ws, sorted(row["id"] for row in batch["rows"])


def _next_change_key(ws: WsClient) -> str | None:
    try:
        change = ws.recv(timeout=1.0)
    except (TimeoutError, websocket.WebSocketTimeoutException):
        return None
    rows = change.get("rows") or change.get("old_values") or [{}]
    return rows[0].get("id")


def test_policies_govern_shared_subscriptions_under_07(tmp_path) -> None:
    with _server(tmp_path, "0.7") as srv:
        _insert(srv, "a1", "alice")
        _insert(srv, "b1", "bob")
        ws, rows = _snapshot(srv, "alice")
        try:
            assert rows == []  # admitted, but no policy: no row (fails closed)
            _insert(srv, "a2", "alice")
            assert _next_change_key(ws) is None
        finally:
            ws.close()
        srv.http.ok(srv.root, "CREATE POLICY own ON chat.rooms FOR SELECT TO user USING (owner = CURRENT_USER())")
        ws, rows = _snapshot(srv, "alice")
        try:
            assert rows == ["a1", "a2"]
            _insert(srv, "b2", "bob")
            _insert(srv, "a3", "alice")
            assert _next_change_key(ws) == "a3"  # bob's row never reaches alice
        finally:
            ws.close()
        ws, rows = _snapshot(srv, "svc")  # a service is not a target of `own`: no row
        ws.close()
        assert rows == []
        ws, rows = _snapshot(srv, "root")  # system bypasses policies
        ws.close()
        assert rows == ["a1", "a2", "a3", "b1", "b2"]
        srv.http.ok(srv.root, "DROP POLICY own ON chat.rooms")
        ws, rows = _snapshot(srv, "alice")
        ws.close()
        assert rows == []


BAD = [
    ("CREATE POLICY p ON chat.rooms AS RESTRICTIVE USING (true)", "RESTRICTIVE policies are not supported"),
    ("CREATE POLICY p ON chat.rooms FOR INSERT USING (true)", "INSERT policies cannot define USING"),
    ("CREATE POLICY p ON chat.rooms FOR SELECT WITH CHECK (true)", "SELECT policies cannot define WITH CHECK"),
    ("CREATE POLICY p ON chat.rooms TO alice USING (true)", "unsupported policy target 'alice'"),
    ("CREATE POLICY p ON chat.rooms USING (nope = 1)", "Invalid policy expression"),
    ("DROP POLICY p ON chat.rooms", "not found"),
]


def test_bad_policy_statements_are_refused_as_upstream_does(tmp_path) -> None:
    with _server(tmp_path, "0.7") as srv:
        for sql, words in BAD:
            status, body = srv.http.sql(srv.root, sql)
            assert status == 400 and words in body["error"]["message"], (sql, body)
        srv.http.ok(srv.root, "DROP POLICY IF EXISTS p ON chat.rooms")
        alice = srv.http.login("alice", PASSWORD)
        status, body = srv.http.sql(alice, "CREATE POLICY p ON chat.rooms USING (true)")
        assert status in (400, 403) and "System, DBA, or Service" in body["error"]["message"], body


def test_04_has_no_policies_and_admits_by_access_level(tmp_path) -> None:
    with _server(tmp_path, "0.4") as srv:
        status, body = srv.http.sql(srv.root, "CREATE POLICY p ON chat.rooms USING (true)")
        assert status == 400 and "Unsupported statement" in body["error"]["message"], body
        ws = WsClient(srv.ws_url)
        try:
            assert ws.authenticate(srv.http.login("alice", PASSWORD))["type"] == "auth_success"
            error = ws.subscribe("s", "SELECT * FROM chat.rooms", {})
            assert error["type"] == "error" and error["code"] == "UNAUTHORIZED"  # PRIVATE by default
        finally:
            ws.close()


def test_the_driver_gives_its_shared_table_a_read_policy_under_07(tmp_path) -> None:
    """``Admin.setup`` of a SHARED table on 0.7 creates ``lqh_read`` (once): the harness's user listeners see rows."""
    with start_refserver(tmp_path, protocol="0.7") as srv:
        target = create_target(TargetSpec("kalamdb", srv.url, "root", srv.root_password or "", {"timeout": 5}))
        schema = Schema("shared_t", "messages", COLUMNS, table_type=TableKind.SHARED, users={"app": PASSWORD})
        admin = target.admin()
        try:
            admin.setup(schema)
            admin.setup(schema)  # idempotent: the policy exists already
        finally:
            admin.close()
        listener = target.listener(schema, "app")
        writer = target.writer(schema)
        try:
            listener.subscribe()
            row = {"id": 1, "conversation_id": 1, "writer_id": 1, "wseq": 1, "version": 1, "content": "c",
                   "sent_at": 1, "last_delete": 0}  # fmt: skip
            assert writer.insert(row).outcome is Outcome.OK
            deadline = time.monotonic() + 5
            change = None
            while change is None and time.monotonic() < deadline:
                change = listener.recv(0.5)
            assert change is not None and change.row is not None and change.row["id"] == 1
        finally:
            writer.close()
            listener.close()
