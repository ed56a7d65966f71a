"""Wire-level tests of ``lqharness serve``: raw HTTP and raw WebSocket against the KalamDB v1 protocol doc."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.support.refserver import Http, WsClient, start_refserver

pytestmark = pytest.mark.timeout(60)

TABLE = "chat.messages"
CREATE = (
    "CREATE USER TABLE chat.messages (id BIGINT PRIMARY KEY, conversation_id BIGINT NOT NULL, writer_id BIGINT, "
    "wseq BIGINT, version INT, content TEXT, sent_at BIGINT)"
)
INSERT = (
    "INSERT INTO chat.messages (id, conversation_id, writer_id, wseq, version, content, sent_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7)"
)
_ids = itertools.count(1000)
PROTOCOL = {"serialization": "json", "compression": "gzip"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with start_refserver(tmp_path_factory.mktemp("wire")) as srv:
        http = Http(srv.url)
        root = http.login("root", srv.root_password)
        http.ok(root, "CREATE NAMESPACE IF NOT EXISTS chat")
        http.ok(root, CREATE)
        http.ok(
            root,
            "CREATE SHARED TABLE chat.rooms (id TEXT PRIMARY KEY, title TEXT) WITH (ACCESS_LEVEL='PUBLIC')",
        )
        for user, role in (("alice", "user"), ("bob", "user"), ("ops", "dba"), ("svc", "service")):
            http.ok(root, f"CREATE USER '{user}' WITH PASSWORD 'Str0ngPass!' ROLE {role}")
        srv.http = http
        srv.root = root
        srv.tokens = {u: http.login(u, "Str0ngPass!") for u in ("alice", "bob", "ops", "svc")}
        yield srv


def insert(srv, token: str, conversation: int = 1, content: str = "x" * 200) -> int:
    key = next(_ids)
    srv.http.ok(token, INSERT, [str(key), conversation, 1, key, 1, content, time.time_ns() // 1000])
    return key


def assert_silent(ws: WsClient, timeout: float = 0.5) -> None:
    """Nothing arrives on ``ws`` within ``timeout``."""
    import websocket

    with pytest.raises(websocket.WebSocketTimeoutException):
        ws.recv(timeout=timeout)


def ws_for(srv, token: str, **kw) -> WsClient:
    ws = WsClient(srv.ws_url, **kw)
    assert ws.authenticate(token)["type"] == "auth_success"
    return ws


# ---------------------------------------------------------------- HTTP


def test_login_body_and_jwt_claims(server):
    import jwt

    status, body = server.http.request("POST", "/v1/api/auth/login", {"username": "alice", "password": "Str0ngPass!"})
    assert status == 200
    assert set(body) == {
        "user",
        "admin_ui_access",
        "expires_at",
        "access_token",
        "refresh_token",
        "refresh_expires_at",
    }
    assert body["user"]["id"] == "alice" and body["user"]["role"] == "user" and body["admin_ui_access"] is False
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["iss"] == "kalamdb" and claims["sub"] == "alice" and claims["role"] == "user"
    assert claims["token_type"] == "access"
    assert jwt.get_unverified_header(body["access_token"])["alg"] == "HS256"
    status, refreshed = server.http.request("POST", "/v1/api/auth/refresh", token=body["refresh_token"])
    assert status == 200 and refreshed["access_token"]


def test_login_errors(server):
    http = server.http
    assert http.request("POST", "/v1/api/auth/login", {"user": "alice", "password": "wrong-pass"})[0] == 401
    status, body = http.request("POST", "/v1/api/auth/login", {"user": "nobody", "password": "whatever1"})
    assert status == 401 and body["error"] == "unauthorized"
    assert http.request("POST", "/v1/api/auth/login", {"user": "a", "password": "b", "extra": 1})[0] == 400


def test_sql_auth_failures(server):
    http = server.http
    status, body = http.request("POST", "/v1/api/sql", {"sql": "SELECT 1"})
    assert status == 401 and body["error"]["code"] == "MISSING_AUTHORIZATION" and body["status"] == "error"
    status, body = http.request("POST", "/v1/api/sql", {"sql": "SELECT 1"}, token="garbage")
    assert status == 401 and body["error"]["code"] == "INVALID_CREDENTIALS"
    status, body = http.request("POST", "/v1/api/sql", raw=b"sql=1", token=server.root, content_type="text/plain")
    assert status == 400 and body["error"]["code"] == "INVALID_INPUT"


def test_select_body_shape_bigint_strings_and_took(server):
    key = insert(server, server.root, conversation=7)
    status, body = server.http.sql(server.root, "SELECT * FROM chat.messages WHERE id = $1", [str(key)])
    assert status == 200 and body["status"] == "success" and body["error"] is None
    assert isinstance(body["took"], float) and round(body["took"], 3) == body["took"]
    result = body["results"][0]
    names = [c["name"] for c in result["schema"]]
    assert names == [
        "id",
        "conversation_id",
        "writer_id",
        "wseq",
        "version",
        "content",
        "sent_at",
        "_seq",
        "_deleted",
    ]
    assert result["schema"][0] == {
        "name": "id",
        "data_type": "BigInt",
        "index": 0,
        "flags": ["pk", "nn", "uq"],
    }
    assert result["schema"][4]["data_type"] == "Int"
    row = result["rows"][0]
    assert row[0] == str(key) and row[1] == "7" and row[4] == 1 and isinstance(row[7], str) and row[8] is False
    assert result["row_count"] == 1 and result["as_user"] == "root"


def test_dml_results_and_batch_folding(server):
    results = server.http.ok(server.root, "INSERT INTO chat.rooms (id, title) VALUES ('r1', 'one'), ('r2', 'two')")
    assert results == [{"row_count": 2, "as_user": "root", "message": "Inserted 2 row(s)"}]
    results = server.http.ok(
        server.root,
        "INSERT INTO chat.rooms (id, title) VALUES ('r3', 'x'); SELECT COUNT(*) FROM chat.rooms; "
        "INSERT INTO chat.rooms (id, title) VALUES ('r4', 'y'); UPDATE chat.rooms SET title = 'z' WHERE id = 'r3'",
    )
    assert results[0]["rows"] == [["3"]]
    assert results[1:] == [
        {"row_count": 2, "as_user": "root", "message": "Inserted 2 row(s)"},
        {"row_count": 1, "as_user": "root", "message": "Updated 1 row(s)"},
    ]


def test_errors_codes_and_batch_stops(server):
    http = server.http
    status, body = http.sql(server.root, "SELECT * FROM chat.nope")
    assert status == 400 and body["error"]["code"] == "SQL_EXECUTION_ERROR" and body["results"] == []
    assert "Statement 1 failed" in body["error"]["message"] and body["error"]["details"]
    status, body = http.sql(server.root, "SELEKT 1")
    assert status == 400 and body["error"]["code"] == "INVALID_SQL"
    status, body = http.sql(server.root, "   ")
    assert status == 400 and body["error"]["code"] == "EMPTY_SQL"
    status, body = http.sql(server.root, "SELECT 1; SELECT 2", ["x"])
    assert status == 400 and body["error"]["code"] == "PARAMS_WITH_BATCH"
    status, body = http.sql(server.root, "CREATE NAMESPACE chat")
    assert status == 400 and "already exists" in body["error"]["message"]
    status, body = http.sql(server.root, "UPDATE chat.rooms SET title = 'q'")
    assert status == 400 and "WHERE" in body["error"]["message"]
    status, body = http.sql(
        server.root,
        "INSERT INTO chat.rooms (id, title) VALUES ('b1', 'x'); BAD SQL; INSERT INTO chat.rooms (id) VALUES ('b2')",
    )
    assert status == 400 and body["error"]["message"].startswith("Statement 2 failed")
    assert http.ok(server.root, "SELECT COUNT(*) FROM chat.rooms WHERE id IN ('b1', 'b2')")[0]["rows"] == [["1"]]
    status, body = http.sql(server.tokens["alice"], "CREATE USER 'eve' WITH PASSWORD 'Str0ngPass!' ROLE dba")
    assert status == 403 and body["error"]["code"] == "PERMISSION_DENIED" and "details" not in body["error"]


def test_row_caps(server):
    values = ", ".join(f"('cap{i}', 't')" for i in range(1100))
    server.http.ok(server.root, f"INSERT INTO chat.rooms (id, title) VALUES {values}")
    assert server.http.ok(server.root, "SELECT id FROM chat.rooms")[0]["row_count"] == 50
    assert server.http.ok(server.root, "SELECT id FROM chat.rooms LIMIT 5000")[0]["row_count"] == 1000
    assert server.http.ok(server.root, "SELECT id FROM chat.rooms LIMIT 7")[0]["row_count"] == 7


def test_soft_delete_hides_rows_and_bumps_seq(server):
    key = insert(server, server.root, conversation=4242)
    seq = int(server.http.ok(server.root, "SELECT _seq FROM chat.messages WHERE id = $1", [str(key)])[0]["rows"][0][0])
    ws = ws_for(server, server.root)
    ws.subscribe("tomb", f"SELECT * FROM {TABLE} WHERE conversation_id = 4242")
    count = server.http.ok(server.root, "SELECT COUNT(*) FROM chat.messages")[0]["rows"][0][0]
    assert server.http.ok(server.root, "DELETE FROM chat.messages WHERE id = $1", [str(key)])[0]["row_count"] == 1
    tombstone = ws.recv()
    while tombstone["type"] != "change":  # the (empty) initial batch of the subscription comes first
        tombstone = ws.recv()
    ws.close()
    assert tombstone["change_type"] == "delete", tombstone
    (old,) = tombstone["old_values"]
    assert old["id"] == str(key) and int(old["_seq"]) > seq, (seq, old)
    rows = server.http.ok(server.root, "SELECT id, _deleted FROM chat.messages WHERE id = $1", [str(key)])[0]["rows"]
    assert rows == []
    after = server.http.ok(server.root, "SELECT COUNT(*) FROM chat.messages")[0]["rows"][0][0]
    assert int(after) == int(count) - 1
    assert server.http.ok(server.root, "DELETE FROM chat.messages WHERE id = $1", [str(key)])[0]["row_count"] == 0
    server.http.ok(server.root, INSERT, [str(key), 1, 1, 1, 1, "again", 0])
    assert server.http.ok(server.root, "SELECT content FROM chat.messages WHERE id = $1", [str(key)])[0]["rows"] == [
        ["again"]
    ]


def test_user_tables_are_per_user_and_execute_as(server):
    http = server.http
    key = insert(server, server.tokens["alice"])
    assert http.ok(server.tokens["bob"], "SELECT COUNT(*) FROM chat.messages WHERE id = $1", [str(key)])[0]["rows"] == [
        ["0"]
    ]
    assert http.ok(server.tokens["alice"], "SELECT COUNT(*) FROM chat.messages WHERE id = $1", [str(key)])[0][
        "rows"
    ] == [["1"]]
    res = http.ok(server.root, f"EXECUTE AS USER 'alice' (SELECT id FROM chat.messages WHERE id = {key})")
    assert res[0]["rows"] == [[str(key)]] and res[0]["as_user"] == "alice"
    res = http.ok(
        server.tokens["ops"],
        "EXECUTE AS USER 'bob' (INSERT INTO chat.messages (id, conversation_id) VALUES (5, 1))",
    )
    assert res[0]["as_user"] == "bob"
    status, body = http.sql(server.tokens["alice"], "EXECUTE AS USER 'bob' (SELECT * FROM chat.messages)")
    assert status == 403 and body["error"]["code"] == "PERMISSION_DENIED"
    status, body = http.sql(server.tokens["svc"], "EXECUTE AS USER 'ops' (SELECT * FROM chat.messages)")
    assert status == 403
    status, body = http.sql(server.root, "EXECUTE AS USER 'alice' (SELECT * FROM chat.rooms)")
    assert status == 400 and "SHARED" in body["error"]["message"]


def test_shared_table_access_level(server):
    server.http.ok(server.root, "INSERT INTO chat.rooms (id, title) VALUES ('public-1', 'p')")
    everyone = server.http.ok(server.root, "SELECT COUNT(*) FROM chat.rooms")[0]["rows"][0][0]
    alice = server.http.ok(server.tokens["alice"], "SELECT COUNT(*) FROM chat.rooms")[0]["rows"]
    assert int(everyone) >= 1 and alice == [[everyone]]  # a PUBLIC table: alice reads every row root inserted
    status, body = server.http.sql(server.tokens["alice"], "INSERT INTO chat.rooms (id) VALUES ('a1')")
    assert status == 403 and body["error"]["code"] == "PERMISSION_DENIED"


def test_health_and_system_tables(server):
    status, body = server.http.request("GET", "/health")
    assert status == 200 and body["status"] == "healthy" and body["api_version"] == "v1"
    assert server.http.request("GET", "/v1/api/healthcheck")[0] == 200
    stats = dict(server.http.ok(server.root, "SELECT * FROM system.stats")[0]["rows"])
    for name in (
        "server_uptime_seconds",
        "memory_rss_bytes",
        "memory_rss_mb",
        "memory_usage_bytes",
        "cpu_usage_percent",
        "thread_count",
        "pid",
        "active_connections",
        "active_subscriptions",
        "websocket_sessions",
        "total_users",
        "total_namespaces",
        "total_tables",
        "total_jobs",
        "total_live_queries",
        "jobs_running",
        "jobs_queued",
        "jobs_failed",
        "server_version",
    ):
        assert name in stats, name
    assert stats["pid"] == str(server.pid) and int(stats["total_users"]) >= 5
    users = server.http.ok(server.root, "SELECT user_id, role FROM system.users WHERE user_id = 'ops'")[0]["rows"]
    assert users == [["ops", "dba"]]
    tables = server.http.ok(server.root, "SELECT table_type FROM system.tables WHERE table_name = 'messages'")
    assert tables[0]["rows"] == [["USER"]]
    status, _ = server.http.sql(server.tokens["alice"], "SELECT * FROM system.live")
    assert status == 403


def test_flush_job_runs_to_completion(server):
    insert(server, server.root)
    message = server.http.ok(server.root, "STORAGE FLUSH TABLE chat.messages")[0]["message"]
    assert message.startswith("Storage flush started for table 'chat.messages'. Job ID: ")
    job_id = message.rsplit(" ", 1)[1]
    deadline = time.monotonic() + 10
    while True:
        rows = server.http.ok(
            server.root,
            "SELECT job_id, job_type, status, message, started_at, finished_at FROM system.jobs WHERE job_id = $1",
            [job_id],
        )[0]["rows"]
        if rows and rows[0][2] == "completed":
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.05)
    assert rows[0][1] == "flush" and rows[0][4] <= rows[0][5]
    cols = [c["name"] for c in server.http.ok(server.root, "SELECT * FROM system.jobs LIMIT 1")[0]["schema"]]
    assert cols[:10] == [
        "job_id",
        "job_type",
        "status",
        "message",
        "exception_trace",
        "retry_count",
        "created_at",
        "started_at",
        "finished_at",
        "node_id",
    ]


# ---------------------------------------------------------------- WebSocket


def test_ws_auth_errors_and_protocol_closes(server):
    ws = WsClient(server.ws_url)
    ws.send({"type": "subscribe", "subscription": {"id": "s", "sql": f"SELECT * FROM {TABLE}"}})
    assert ws.recv() == {
        "type": "error",
        "subscription_id": "subscribe",
        "code": "AUTH_REQUIRED",
        "message": "Authentication required",
    }
    ws.send({"type": "authenticate", "method": "jwt", "token": "bad", "protocol": {"serialization": "json"}})
    assert ws.recv()["type"] == "auth_error"
    assert ws.wait_close() == (1008, "Authentication failed")
    ws = WsClient(server.ws_url)
    ws.send({"type": "authenticate", "method": "jwt", "token": server.root})
    code, reason = ws.wait_close()
    assert code == 1011 and reason.startswith("Invalid message") and "protocol" in reason
    ws = ws_for(server, server.root)
    ws.ws.send("{not json")
    assert ws.wait_close()[0] == 1011
    ws = ws_for(server, server.root)
    ws.send({"type": "frobnicate"})
    assert ws.wait_close()[0] == 1011


def test_ws_header_auth_binary_frames_and_size_limit(server):
    ws = WsClient(server.ws_url, token_header=server.tokens["alice"])
    hello = ws.recv()
    assert hello["type"] == "auth_success" and hello["user"] == "alice" and hello["role"] == "user"
    ws.ws.send_binary(b"\x00\x01")
    assert ws.recv()["code"] == "UNSUPPORTED_DATA"
    ws.send({"type": "ping", "pad": "x" * (1 << 20)})
    assert ws.recv()["code"] == "MESSAGE_TOO_LARGE"
    ws.send({"type": "ping"})
    ack = ws.subscribe("s1", f"SELECT id FROM {TABLE}")
    assert ack["type"] == "subscription_ack"
    ws.close()


def test_ws_subscribe_errors(server):
    ws = ws_for(server, server.tokens["alice"])
    assert ws.subscribe(" ", f"SELECT * FROM {TABLE}")["code"] == "INVALID_SUBSCRIPTION_ID"
    assert ws.subscribe("a", "SELECT * FROM chat.nope")["code"] == "NOT_FOUND"
    assert ws.subscribe("b", "SELECT * FROM messages")["code"] == "INVALID_SQL"
    assert ws.subscribe("c", f"SELECT * FROM {TABLE} ORDER BY id")["code"] == "INVALID_SQL"
    assert ws.subscribe("d", f"SELECT _seq FROM {TABLE}")["code"] == "INVALID_SQL"
    assert ws.subscribe("e", f"SELECT * FROM {TABLE}", {"batch_size": 5, "last_rows": 6})["code"] == "UNSUPPORTED"
    ws.send({"type": "next_batch", "subscription_id": "zzz"})
    assert ws.recv()["code"] == "BATCH_FETCH_FAILED"
    ws.close()


def test_ws_ack_without_options_then_all_change_types(server):
    token = server.tokens["alice"]
    ws = ws_for(server, token)
    ack = ws.subscribe("live", f"SELECT * FROM {TABLE}")
    assert ack["batch_control"] == {"batch_num": 0, "has_more": False, "status": "ready", "last_seq_id": None}
    assert ack["total_rows"] == 0 and [c["name"] for c in ack["schema"]][-2:] == ["_seq", "_deleted"]
    key = insert(server, token, conversation=3, content="first")
    msg = ws.recv()
    assert msg["type"] == "change" and msg["change_type"] == "insert" and msg["subscription_id"] == "live"
    row = msg["rows"][0]
    assert row["id"] == str(key) and row["content"] == "first" and row["_deleted"] is False
    server.http.ok(token, "UPDATE chat.messages SET content = 'second', version = 2 WHERE id = $1", [str(key)])
    upd = ws.recv()
    assert upd["change_type"] == "update"
    assert upd["rows"][0]["content"] == "second" and "_deleted" not in upd["rows"][0]
    assert int(upd["rows"][0]["_seq"]) > int(row["_seq"])
    assert upd["old_values"] == [{"id": str(key), "version": 1, "content": "first", "_seq": row["_seq"]}]
    server.http.ok(token, "DELETE FROM chat.messages WHERE id = $1", [str(key)])
    dele = ws.recv()
    assert dele["change_type"] == "delete" and "rows" not in dele
    tomb = dele["old_values"][0]
    assert tomb["_deleted"] is True and tomb["content"] == "second" and int(tomb["_seq"]) > int(upd["rows"][0]["_seq"])
    ws.close()


def test_ws_filter_projection_and_user_isolation(server):
    alice, bob = server.tokens["alice"], server.tokens["bob"]
    ws = ws_for(server, alice)
    ws.subscribe("f", f"SELECT id, content AS body FROM {TABLE} WHERE conversation_id = 42")
    other = ws_for(server, bob)
    other.subscribe("b", f"SELECT * FROM {TABLE}")
    insert(server, alice, conversation=41)
    key = insert(server, alice, conversation=42, content="match")
    msg = ws.recv()
    assert msg["rows"] == [{"id": str(key), "body": "match", "_seq": msg["rows"][0]["_seq"]}]
    server.http.ok(alice, "UPDATE chat.messages SET conversation_id = 41 WHERE id = $1", [str(key)])
    bkey = insert(server, bob, conversation=42)
    assert other.recv()["rows"][0]["id"] == str(bkey)
    assert_silent(ws)
    ws.close()
    other.close()


def test_ws_snapshot_batches_and_last_rows(server):
    token = server.tokens["bob"]
    keys = [insert(server, token, conversation=77) for _ in range(5)]
    ws = ws_for(server, token)
    ack = ws.subscribe("snap", f"SELECT id FROM {TABLE} WHERE conversation_id = 77", {"batch_size": 2})
    assert ack["batch_control"]["status"] == "loading" and ack["batch_control"]["has_more"] is True
    assert isinstance(ack["batch_control"]["last_seq_id"], int)
    batches = [ws.recv()]
    while batches[-1]["batch_control"]["has_more"]:
        ws.send(
            {
                "type": "next_batch",
                "subscription_id": "snap",
                "last_seq_id": batches[-1]["batch_control"]["last_seq_id"],
            }
        )
        batches.append(ws.recv())
    assert [b["batch_control"]["status"] for b in batches] == ["loading", "loading_batch", "ready"]
    assert [b["batch_control"]["batch_num"] for b in batches] == [0, 1, 2]
    got = [int(r["id"]) for b in batches for r in b["rows"]]
    assert got == keys
    seqs = [int(r["_seq"]) for b in batches for r in b["rows"]]
    assert seqs == sorted(seqs)
    ack = ws.subscribe("last", f"SELECT id FROM {TABLE} WHERE conversation_id = 77", {"batch_size": 10, "last_rows": 2})
    batch = ws.recv()
    assert [int(r["id"]) for r in batch["rows"]] == keys[-2:] and batch["batch_control"]["status"] == "ready"
    ws.close()


def test_ws_changes_during_snapshot_come_after_it(server):
    token = server.tokens["bob"]
    first = insert(server, token, conversation=88)
    insert(server, token, conversation=88)
    ws = ws_for(server, token)
    ws.subscribe("s", f"SELECT id FROM {TABLE} WHERE conversation_id = 88", {"batch_size": 1})
    assert ws.recv()["batch_control"]["has_more"] is True
    late = insert(server, token, conversation=88)
    ws.send({"type": "next_batch", "subscription_id": "s"})
    rows = []
    msg = ws.recv()
    while msg["type"] == "initial_data_batch":
        rows += msg["rows"]
        if not msg["batch_control"]["has_more"]:
            break
        ws.send({"type": "next_batch", "subscription_id": "s", "last_seq_id": msg["batch_control"]["last_seq_id"]})
        msg = ws.recv()
    change = ws.recv()
    assert change["type"] == "change" and change["rows"][0]["id"] == str(late)
    assert str(first) in [r["id"] for r in rows]
    ws.close()


def test_ws_resume_with_from(server):
    token = server.tokens["alice"]
    insert(server, token, conversation=99)
    seen = int(server.http.ok(token, "SELECT MAX(_seq) FROM chat.messages WHERE conversation_id = 99")[0]["rows"][0][0])
    new = insert(server, token, conversation=99)
    ws = ws_for(server, token)
    ws.subscribe("r", f"SELECT * FROM {TABLE} WHERE conversation_id = 99", {"from": seen, "batch_size": 100})
    batch = ws.recv()
    assert [r["id"] for r in batch["rows"]] == [str(new)]
    assert all(int(r["_seq"]) > seen for r in batch["rows"])
    ws.close()


def test_ws_gzip_binary_frames_unless_compress_false(server):
    token = server.tokens["alice"]
    zipped = ws_for(server, token, compress=True)
    plain = ws_for(server, token, compress=False)
    zipped.subscribe("z", f"SELECT * FROM {TABLE} WHERE conversation_id = 55")
    plain.subscribe("p", f"SELECT * FROM {TABLE} WHERE conversation_id = 55")
    insert(server, token, conversation=55, content="abc" * 400)
    opcode, data = zipped.recv_frame()
    assert opcode == 2 and data[:2] == b"\x1f\x8b"
    opcode, data = plain.recv_frame()
    assert opcode == 1 and data.startswith(b'{"type":"change"')
    insert(server, token, conversation=55, content="s")
    assert zipped.recv_frame()[0] == 1
    zipped.close()
    plain.close()


def test_kill_live_query_and_changes_counter(server):
    token = server.tokens["alice"]
    ws = ws_for(server, token)
    ws.subscribe("k", f"SELECT id FROM {TABLE} WHERE conversation_id = 66")
    for _ in range(3):
        insert(server, token, conversation=66)
    ws.changes(3)
    rows = server.http.ok(server.root, "SELECT * FROM system.live WHERE subscription_id = 'k'")
    cols = [c["name"] for c in rows[0]["schema"]]
    assert cols == [
        "live_id",
        "connection_id",
        "subscription_id",
        "namespace_id",
        "table_name",
        "user_id",
        "query",
        "options",
        "status",
        "created_at",
        "last_update",
        "changes",
        "node_id",
        "last_ping_at",
    ]
    row = dict(zip(cols, rows[0]["rows"][0], strict=True))
    assert row["changes"] == "3" and row["user_id"] == "alice" and row["table_name"] == "messages"
    user, conn_id, sub = row["live_id"].split("-", 2)
    assert (user, sub) == ("alice", "k") and len(conn_id) == 32 and conn_id == row["connection_id"]
    msg = server.http.ok(server.root, f"KILL LIVE QUERY '{row['live_id']}'")[0]["message"]
    assert msg == f"Live query killed: {row['live_id']}"
    insert(server, token, conversation=66)
    assert_silent(ws)
    ws.send({"type": "ping"})
    assert ws.subscribe("k2", f"SELECT id FROM {TABLE}")["type"] == "subscription_ack"
    ws.close()


def test_unsubscribe_stops_changes(server):
    token = server.tokens["bob"]
    ws = ws_for(server, token)
    ws.subscribe("u", f"SELECT id FROM {TABLE} WHERE conversation_id = 12")
    ws.send({"type": "unsubscribe", "subscription_id": "u"})
    # messages are handled in order: the ack of a later subscription proves the unsubscribe was done
    assert ws.subscribe("after", f"SELECT id FROM {TABLE} WHERE conversation_id = 13")["type"] == "subscription_ack"
    insert(server, token, conversation=12)
    assert_silent(ws)
    ws.close()


def test_client_close_is_echoed(server):
    ws = ws_for(server, server.root)
    ws.ws.send_close(status=1000, reason=b"bye")
    assert ws.wait_close()[0] == 1000


def test_server_survives_garbage(server):
    status, _ = server.http.request("POST", "/v1/api/sql", raw=b"\xff\xfe", token=server.root)
    assert status == 400
    status, _ = server.http.sql(server.root, "INSERT INTO chat.messages (id, conversation_id) VALUES ('abc', 1)")
    assert status == 400
    status, _ = server.http.sql(server.root, "SELECT * FROM chat.messages WHERE nope = 1")
    assert status == 400
    assert server.http.request("GET", "/health")[0] == 200


def test_timeouts_and_shutdown_close_codes(tmp_path):
    with start_refserver(tmp_path, "--auth-timeout", "0.4", "--heartbeat-timeout", "1") as srv:
        http = Http(srv.url)
        token = http.login("root", srv.root_password)
        ws = WsClient(srv.ws_url)
        started = time.monotonic()
        assert ws.recv(timeout=3) == {"type": "auth_error", "message": "Authentication timeout"}
        assert ws.wait_close() == (1008, "Authentication timeout")
        assert time.monotonic() - started < 2.5
        idle = ws_for(srv, token)
        assert idle.wait_close(timeout=5) == (1000, "Heartbeat timeout")
        alive = ws_for(srv, token)
        for _ in range(6):
            time.sleep(0.3)
            alive.ws.ping()
        alive.send({"type": "ping"})
        srv.proc.terminate()
        assert alive.wait_close(timeout=5) == (1001, "Server shutting down")
        assert srv.proc.wait(10) == 0


def _next_second() -> int:
    """Wait for the monotonic clock (the server's limiter counts per whole second of it) to start a new second."""
    current = int(time.monotonic())
    while int(time.monotonic()) == current:
        time.sleep(0.005)
    return current + 1


def _auth_burst(srv, token: str, count: int) -> tuple[int, list[tuple[dict, WsClient]]] | None:
    """``count`` authentications sent at the start of one second on sockets opened beforehand; None when
    the sending itself ran into the next second."""
    sockets = [WsClient(srv.ws_url) for _ in range(count)]
    second = _next_second()
    for ws in sockets:
        ws.send({"type": "authenticate", "method": "jwt", "token": token, "protocol": PROTOCOL})
    if int(time.monotonic()) != second:
        for ws in sockets:
            ws.close()
        return None
    return second, [(ws.recv(), ws) for ws in sockets]


def test_auth_rate_limit_refuses_excess_per_ip(tmp_path):
    limit = 3
    with start_refserver(tmp_path, "--auth-rate-limit", str(limit)) as srv:
        token = Http(srv.url).login("root", srv.root_password)
        for _ in range(3):  # a correct limiter admits exactly `limit` in one second; retry a burst split by a tick
            burst = _auth_burst(srv, token, 12)
            if burst is not None and sum(r["type"] == "auth_success" for r, _ in burst[1]) == limit:
                break
        assert burst is not None
        second, replies = burst
        accepted = [r for r, _ in replies if r["type"] == "auth_success"]
        refused = [(r, ws) for r, ws in replies if r["type"] == "auth_error"]
        assert len(accepted) == limit and len(refused) == 12 - limit
        for reply, ws in refused:
            assert reply["message"].startswith("Too many authentication attempts")
            assert ws.wait_close() == (1008, "Authentication failed")
        while int(time.monotonic()) == second:
            time.sleep(0.005)
        ws_for(srv, token)  # a new second admits authentications again (ws_for asserts auth_success)


def test_first_run_setup_flow(tmp_path):
    with start_refserver(tmp_path, root_password=None) as srv:
        http = Http(srv.url)
        assert http.request("GET", "/v1/api/auth/status") == (
            200,
            {"needs_setup": True, "message": "Server requires initial setup"},
        )
        status, body = http.request("POST", "/v1/api/auth/login", {"user": "root", "password": ""})
        assert status == 428 and body["error"] == "setup_required"
        status, body = http.request(
            "POST",
            "/v1/api/auth/setup",
            {"user": "admin", "password": "Adm1n-Pass!", "root_password": "R00t-Pass!", "email": None},
        )
        assert status == 200 and "access_token" not in body
        assert http.request("GET", "/v1/api/auth/status")[1]["needs_setup"] is False
        assert (
            http.request("POST", "/v1/api/auth/setup", {"user": "x", "password": "y", "root_password": "z"})[0] == 409
        )
        http.login("root", "R00t-Pass!")
        admin = http.login("admin", "Adm1n-Pass!")
        assert http.ok(admin, "CREATE NAMESPACE app")[0]["row_count"] == 0


def test_data_survives_restart_in_data_dir(tmp_path):
    data = tmp_path / "data"
    with start_refserver(tmp_path, "--data-dir", str(data)) as srv:
        http = Http(srv.url)
        token = http.login("root", srv.root_password)
        http.ok(token, "CREATE NAMESPACE keep")
        http.ok(token, "CREATE SHARED TABLE keep.t (id BIGINT PRIMARY KEY, v TEXT)")
        http.ok(token, "INSERT INTO keep.t (id, v) VALUES (1, 'a')")
        seq = int(http.ok(token, "SELECT _seq FROM keep.t")[0]["rows"][0][0])
    with start_refserver(tmp_path, "--data-dir", str(data)) as srv:
        http = Http(srv.url)
        token = http.login("root", srv.root_password)
        assert http.ok(token, "SELECT v FROM keep.t")[0]["rows"] == [["a"]]
        http.ok(token, "UPDATE keep.t SET v = 'b' WHERE id = 1")
        assert int(http.ok(token, "SELECT _seq FROM keep.t")[0]["rows"][0][0]) > seq
