"""Wire-level tests of ``lqharness serve --protocol 0.7``: every 0.7 shape of ``docs/kalamdb-0.7.md``.

Raw HTTP and raw WebSocket, no driver in between: ``_version``, string cursors, the replay log
and CURSOR_EXPIRED, filter enter/leave, the batch_size clamp, omitted cursors, SHARED version
domains, the JWT subprotocol, the subscription limits and the two 0.7 faults.
"""

from __future__ import annotations

import itertools
import time

import pytest

from refserver.replay import MAX_CHANGES_PER_SCOPE
from tests.support.refserver import Http, WsClient, start_refserver

pytestmark = pytest.mark.timeout(90)

CREATE = "CREATE USER TABLE chat.messages (id BIGINT PRIMARY KEY, conversation_id BIGINT NOT NULL, content TEXT)"
INSERT = "INSERT INTO chat.messages (id, conversation_id, content) VALUES ($1, $2, $3)"
_ids = itertools.count(1000)


def _setup(srv) -> None:
    http = Http(srv.url)
    root = http.login("root", srv.root_password)
    http.ok(root, "CREATE NAMESPACE IF NOT EXISTS chat")
    http.ok(root, CREATE)
    http.ok(root, "CREATE SHARED TABLE chat.rooms (id TEXT PRIMARY KEY, title TEXT) WITH (ACCESS_LEVEL='PUBLIC')")
    http.ok(root, "CREATE POLICY rooms_read ON chat.rooms FOR SELECT USING (true)")  # 0.7: rows need a policy
    for user in ("alice", "bob", "carol"):
        http.ok(root, f"CREATE USER '{user}' WITH PASSWORD 'Str0ngPass!' ROLE user")
    srv.http = http
    srv.root = root
    srv.tokens = {u: http.login(u, "Str0ngPass!") for u in ("alice", "bob", "carol")}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with start_refserver(tmp_path_factory.mktemp("wire07"), protocol="0.7") as srv:
        _setup(srv)
        yield srv


def insert(srv, user: str, conversation: int = 1) -> int:
    key = next(_ids)
    srv.http.ok(srv.tokens[user], INSERT, [str(key), conversation, f"m{key}"])
    return key


def ws_for(srv, user: str) -> WsClient:
    ws = WsClient(srv.ws_url)
    assert ws.authenticate(srv.tokens[user])["type"] == "auth_success"
    return ws


def subscribe_ready(ws: WsClient, sub_id: str, sql: str, options: dict | None = None) -> tuple[dict, list[dict]]:
    """Subscribe and read the ack plus every snapshot batch (asking for the next ones); returns (ack, rows)."""
    ack = ws.subscribe(sub_id, sql, options)
    assert ack["type"] == "subscription_ack", ack
    rows: list[dict] = []
    if options is None:
        return ack, rows
    while True:
        batch = ws.recv()
        assert batch["type"] == "initial_data_batch", batch
        rows.extend(batch["rows"])
        control = batch["batch_control"]
        if not control["has_more"]:
            return ack, rows
        ws.send({"type": "next_batch", "subscription_id": sub_id, "last_seq_id": control["last_seq_id"]})


def test_version_column_is_an_opaque_decimal_string(server):
    ws = ws_for(server, "alice")
    try:
        ack, _ = subscribe_ready(ws, "v", "SELECT * FROM chat.messages", {})
        names = [c["name"] for c in ack["schema"]]
        assert "_version" in names and "_seq" not in names
        first, second = insert(server, "alice"), insert(server, "alice")
        a, b = ws.changes(2)
        versions = [int(m["rows"][0]["_version"]) for m in (a, b)]
        assert [m["rows"][0]["id"] for m in (a, b)] == [str(first), str(second)]
        assert all(isinstance(m["rows"][0]["_version"], str) for m in (a, b))
        assert versions[0] < versions[1] and versions[1] - versions[0] > 1  # increasing, with gaps
        # not a Snowflake timestamp: decoded as one it would lie decades before now
        assert ((versions[1] >> 22) + 1_704_067_200_000) / 1000 < time.time() - 86400
    finally:
        ws.close()
    results = server.http.ok(server.tokens["alice"], "SELECT * FROM chat.messages")
    assert "_version" in [c["name"] for c in results[0]["schema"]]
    (top,) = server.http.ok(server.tokens["alice"], "SELECT MAX(_version) AS v, '_version' AS t FROM chat.messages")
    assert top["rows"] == [[str(versions[1]), "_version"]]  # the column by its 0.7 name; a literal stays


def test_cursors_are_strings_and_absent_ones_omitted(server):
    for _ in range(3):
        insert(server, "bob")
    ws = ws_for(server, "bob")
    try:
        ack = ws.subscribe("nosnap", "SELECT * FROM chat.messages")
        assert "last_seq_id" not in ack["batch_control"]  # omitted, not null
        ack, rows = subscribe_ready(ws, "paged", "SELECT * FROM chat.messages", {"batch_size": 2})
        assert isinstance(ack["batch_control"]["last_seq_id"], str)
        assert len(rows) >= 3
    finally:
        ws.close()


def test_a_numeric_from_closes_the_socket_1011(server):
    ws = ws_for(server, "bob")
    try:
        ws.send({"type": "subscribe", "subscription": {"id": "n", "sql": "SELECT * FROM chat.messages",
                                                        "options": {"from": 5}}})  # fmt: skip
        code, reason = ws.wait_close()
        assert code == 1011 and "from" in reason
    finally:
        ws.close()


def test_batch_size_is_clamped_to_1_through_1000(server):
    insert(server, "carol")
    insert(server, "carol")
    ws = ws_for(server, "carol")
    try:
        ack = ws.subscribe("zero", "SELECT * FROM chat.messages", {"batch_size": 0})
        assert ack["type"] == "subscription_ack"
        batch = ws.recv()
        assert len(batch["rows"]) == 1 and batch["batch_control"]["has_more"] is True  # 0 -> 1
        ack = ws.subscribe("huge", "SELECT * FROM chat.messages", {"batch_size": 5000})
        assert ack["type"] == "subscription_ack"  # accepted, clamped to 1000
    finally:
        ws.close()


def test_resume_inside_the_log_replays_missed_changes_deletes_included(server):
    ws = ws_for(server, "alice")
    kept = insert(server, "alice")
    _, rows = subscribe_ready(ws, "r1", "SELECT * FROM chat.messages", {})
    cursor = max(r["_version"] for r in rows)
    ws.close()
    added = insert(server, "alice")
    server.http.ok(server.tokens["alice"], "UPDATE chat.messages SET content = 'edited' WHERE id = $1", [str(added)])
    server.http.ok(server.tokens["alice"], "DELETE FROM chat.messages WHERE id = $1", [str(kept)])
    ws = ws_for(server, "alice")
    try:
        ack = ws.subscribe("r2", "SELECT * FROM chat.messages", {"from": cursor})
        assert ack["batch_control"]["last_seq_id"] == cursor and ack["batch_control"]["status"] == "ready"
        batch = ws.recv()
        assert batch["type"] == "initial_data_batch" and batch["rows"] == []
        assert batch["batch_control"] == {"batch_num": 0, "has_more": False, "status": "ready", "last_seq_id": cursor}
        kinds = [(m["type"], m["change_type"]) for m in ws.changes(3)]
        assert kinds == [("change", "insert"), ("change", "update"), ("change", "delete")]
    finally:
        ws.close()


def test_resume_outside_the_log_is_cursor_expired(server):
    ws = ws_for(server, "bob")
    try:
        error = ws.subscribe("old", "SELECT * FROM chat.messages", {"from": "1"})
        assert error["type"] == "error" and error["code"] == "CURSOR_EXPIRED"
        assert "resubscribe without a resume token" in error["message"]
        ack, _ = subscribe_ready(ws, "fresh", "SELECT * FROM chat.messages", {})  # a fresh snapshot works
        assert ack["type"] == "subscription_ack"
    finally:
        ws.close()


def test_the_log_keeps_1024_changes_per_scope(server):
    insert(server, "carol")  # a row of carol's own to take the cursor from, whatever ran before on this server
    ws = ws_for(server, "carol")
    _, rows = subscribe_ready(ws, "b1", "SELECT * FROM chat.messages", {})
    cursor = max(r["_version"] for r in rows)
    ws.close()
    values = ", ".join(f"({next(_ids)}, 1, 'bulk')" for _ in range(MAX_CHANGES_PER_SCOPE + 1))
    server.http.ok(server.tokens["carol"], f"INSERT INTO chat.messages (id, conversation_id, content) VALUES {values}")
    ws = ws_for(server, "carol")
    try:
        error = ws.subscribe("b2", "SELECT * FROM chat.messages", {"from": cursor})
        assert error["code"] == "CURSOR_EXPIRED"
    finally:
        ws.close()


def test_filter_enter_is_an_insert_and_leave_a_key_only_delete(server):
    ws = ws_for(server, "bob")
    try:
        subscribe_ready(ws, "f", "SELECT * FROM chat.messages WHERE conversation_id = 7", {})
        key = insert(server, "bob", conversation=3)
        token = server.tokens["bob"]
        server.http.ok(token, "UPDATE chat.messages SET conversation_id = 7 WHERE id = $1", [str(key)])
        enter = ws.recv()
        assert enter["change_type"] == "insert" and enter["rows"][0]["conversation_id"] == "7"
        server.http.ok(token, "UPDATE chat.messages SET content = 'stay' WHERE id = $1", [str(key)])
        stay = ws.recv()
        assert stay["change_type"] == "update"
        server.http.ok(token, "UPDATE chat.messages SET conversation_id = 8 WHERE id = $1", [str(key)])
        leave = ws.recv()
        assert leave["change_type"] == "delete" and "rows" not in leave
        # the old row's identity: key and system columns, the version it had, not deleted
        assert leave["old_values"] == [{"id": str(key), "_version": stay["rows"][0]["_version"], "_deleted": False}]
    finally:
        ws.close()


def test_shared_tables_echo_their_version_domain(server):
    ws = ws_for(server, "alice")
    try:
        ack, _ = subscribe_ready(ws, "s1", "SELECT * FROM chat.rooms", {})
        domain = ack["batch_control"]["version_domain"]
        assert set(domain) == {"history_incarnation", "table_id", "scope_id", "partition_id"}
        server.http.ok(server.root, "INSERT INTO chat.rooms (id, title) VALUES ('r1', 'one')")
        cursor = ws.recv()["rows"][0]["_version"]
        error = ws.subscribe("s2", "SELECT * FROM chat.rooms", {"from": cursor})
        assert error["code"] == "CURSOR_EXPIRED"  # without the domain
        ack = ws.subscribe("s3", "SELECT * FROM chat.rooms", {"from": cursor, "version_domain": domain})
        assert ack["type"] == "subscription_ack" and ack["batch_control"]["version_domain"] == domain
    finally:
        ws.close()


def test_jwt_as_subprotocol_is_echoed_and_authenticates(server):
    protocol = "kalamdb.jwt." + server.tokens["alice"]
    ws = WsClient(server.ws_url, subprotocols=[protocol])
    try:
        assert ws.ws.getsubprotocol() == protocol.lower()  # websocket-client lower-cases what it read
        assert ws.recv()["type"] == "auth_success"  # pushed unprompted, as with a Bearer header
    finally:
        ws.close()


def test_restart_empties_the_log(tmp_path):
    data = tmp_path / "data"
    with start_refserver(tmp_path / "a", "--data-dir", str(data), protocol="0.7") as srv:
        _setup(srv)
        ws = ws_for(srv, "alice")
        subscribe_ready(ws, "x", "SELECT * FROM chat.messages", {})
        insert(srv, "alice")
        cursor = ws.recv()["rows"][0]["_version"]
        ws.close()
    with start_refserver(tmp_path / "b", "--data-dir", str(data), protocol="0.7") as srv:
        http = Http(srv.url)
        ws = WsClient(srv.ws_url)
        try:
            assert ws.authenticate(http.login("alice", "Str0ngPass!"))["type"] == "auth_success"
            assert ws.subscribe("y", "SELECT * FROM chat.messages", {"from": cursor})["code"] == "CURSOR_EXPIRED"
            _, rows = subscribe_ready(ws, "z", "SELECT * FROM chat.messages", {})
            assert int(rows[-1]["_version"]) >= int(cursor)  # versions continue above the stored ones
        finally:
            ws.close()


def test_subscription_limits_per_user_and_per_connection(tmp_path):
    limits = ("--max-subscriptions-per-user", "3", "--max-subscriptions-per-connection", "2")
    with start_refserver(tmp_path, *limits, protocol="0.7") as srv:
        _setup(srv)
        one, two = ws_for(srv, "alice"), ws_for(srv, "alice")
        try:
            for ws, sub_id in ((one, "a"), (one, "b")):
                assert ws.subscribe(sub_id, "SELECT * FROM chat.messages")["type"] == "subscription_ack"
            assert one.subscribe("c", "SELECT * FROM chat.messages")["code"] == "UNSUPPORTED"
            assert two.subscribe("d", "SELECT * FROM chat.messages")["type"] == "subscription_ack"
            assert two.subscribe("e", "SELECT * FROM chat.messages")["code"] == "SUBSCRIPTION_LIMIT_EXCEEDED"
        finally:
            one.close()
            two.close()


def test_fault_replay_drop_leaves_one_change_out_of_a_replay(tmp_path):
    with start_refserver(tmp_path, "--fault", "replay-drop:nth=2", protocol="0.7") as srv:
        _setup(srv)
        ws = ws_for(srv, "alice")
        _, rows = subscribe_ready(ws, "a", "SELECT * FROM chat.messages", {})
        insert(srv, "alice")
        cursor = ws.recv()["rows"][0]["_version"]
        ws.close()
        keys = [insert(srv, "alice") for _ in range(3)]
        ws = ws_for(srv, "alice")
        try:
            ws.subscribe("b", "SELECT * FROM chat.messages", {"from": cursor})
            assert ws.recv()["rows"] == []
            got = [int(m["rows"][0]["id"]) for m in ws.changes(2)]
            assert got == [keys[0], keys[2]]
        finally:
            ws.close()


def test_fault_filter_leak_sends_one_hidden_update(tmp_path):
    with start_refserver(tmp_path, "--fault", "filter-leak", protocol="0.7") as srv:
        _setup(srv)
        ws = ws_for(srv, "bob")
        try:
            subscribe_ready(ws, "f", "SELECT * FROM chat.messages WHERE conversation_id = 1", {})
            other = insert(srv, "bob", conversation=2)
            for text in ("one", "two"):
                srv.http.ok(
                    srv.tokens["bob"], "UPDATE chat.messages SET content = $1 WHERE id = $2", [text, str(other)]
                )
            leaked = ws.recv()
            assert leaked["change_type"] == "update" and leaked["rows"][0]["id"] == str(other)
            with pytest.raises(Exception, match="timed out"):
                ws.recv(timeout=0.5)  # the second hidden update stays hidden
        finally:
            ws.close()
