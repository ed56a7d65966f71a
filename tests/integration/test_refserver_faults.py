"""Each ``--fault`` of ``lqharness serve`` has a visible, deterministic effect on the wire."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from unittest.mock import ANY

import pytest
import websocket

from tests.support.refserver import Http, WsClient, start_refserver

pytestmark = pytest.mark.timeout(60)

SQL = "SELECT * FROM app.items"


def prepare(srv) -> tuple[Http, str, WsClient]:
    """Namespace, table, and one subscribed WebSocket (live changes only)."""
    http = Http(srv.url)
    token = http.login("root", srv.root_password)
    http.ok(token, "CREATE NAMESPACE app")
    http.ok(token, "CREATE USER TABLE app.items (id BIGINT PRIMARY KEY, v TEXT)")
    ws = WsClient(srv.ws_url)
    assert ws.authenticate(token)["type"] == "auth_success"
    assert ws.subscribe("s", SQL)["type"] == "subscription_ack"
    return http, token, ws


def insert(http: Http, token: str, *keys: int) -> None:
    for key in keys:
        http.ok(token, "INSERT INTO app.items (id, v) VALUES ($1, $2)", [key, f"v{key}"])


def received_ids(ws: WsClient, timeout: float = 0.7) -> list[int]:
    """Ids of change rows until the socket is quiet for ``timeout``."""
    ids = []
    while True:
        try:
            msg = ws.recv(timeout)
        except websocket.WebSocketTimeoutException:
            return ids
        ids.append(int((msg.get("rows") or msg["old_values"])[0]["id"]))


def live_changes(http: Http, token: str) -> int:
    return int(http.ok(token, "SELECT changes FROM system.live WHERE subscription_id = 's'")[0]["rows"][0][0])


def test_drop_every_n(tmp_path):
    with start_refserver(tmp_path, "--fault", "drop:every=3") as srv:
        http, token, ws = prepare(srv)
        insert(http, token, 1, 2, 3, 4, 5, 6, 7)
        assert received_ids(ws) == [1, 2, 4, 5, 7]
        assert live_changes(http, token) == 5


def test_duplicate_every_n(tmp_path):
    with start_refserver(tmp_path, "--fault", "duplicate:every=2") as srv:
        http, token, ws = prepare(srv)
        insert(http, token, 1, 2, 3, 4)
        assert received_ids(ws) == [1, 2, 2, 3, 4, 4]


def test_reorder_every_n(tmp_path):
    with start_refserver(tmp_path, "--fault", "reorder:every=2") as srv:
        http, token, ws = prepare(srv)
        insert(http, token, 1, 2, 3, 4, 5)
        assert received_ids(ws) == [1, 3, 2, 5, 4]


def test_delay_every_k(tmp_path):
    """Only the 2nd notification waits 2 s: each time is bounded on one side, with a wide margin."""
    with start_refserver(tmp_path, "--fault", "delay:ms=2000,every=2") as srv:
        http, token, ws = prepare(srv)
        timings = []
        for key in (1, 2):
            started = time.monotonic()
            insert(http, token, key)
            ws.recv()
            timings.append(time.monotonic() - started)
        assert timings[0] < 1.5 and timings[1] >= 1.99


def test_stale_old_values(tmp_path):
    with start_refserver(tmp_path, "--fault", "stale-old") as srv:
        http, token, ws = prepare(srv)
        insert(http, token, 1)
        ws.recv()
        http.ok(token, "UPDATE app.items SET v = 'second' WHERE id = 1")
        first = ws.recv()
        assert first["old_values"][0]["v"] == "second"  # a row's first update: the new value sent as the old one
        http.ok(token, "UPDATE app.items SET v = 'third' WHERE id = 1")
        second = ws.recv()
        assert second["old_values"][0]["v"] == "v1"  # one version too old


def test_corrupt_new_values(tmp_path):
    with start_refserver(tmp_path, "--fault", "corrupt-new:every=2") as srv:
        http, token, ws = prepare(srv)
        insert(http, token, 1, 2)
        assert ws.recv()["rows"][0]["v"] == "v1"
        assert ws.recv()["rows"][0]["v"] == "v2~corrupt"
        http.ok(token, "UPDATE app.items SET v = 'second' WHERE id = 1")
        update = ws.recv()
        assert update["rows"][0]["v"] == "second" and update["old_values"][0]["v"] == "v1"
        http.ok(token, "UPDATE app.items SET v = 'third' WHERE id = 1")
        update = ws.recv()
        assert update["rows"][0]["v"] == "third~corrupt" and update["old_values"][0]["v"] == "second"
        assert http.ok(token, "SELECT v FROM app.items WHERE id = 1")[0]["rows"] == [["third"]]


def test_sub_error_replaces_a_notification_with_an_error(tmp_path):
    with start_refserver(tmp_path, "--fault", "sub-error:every=2") as srv:
        http, token, ws = prepare(srv)
        insert(http, token, 1, 2, 3)
        assert ws.recv()["rows"][0]["id"] == "1"
        error = ws.recv()
        assert error["type"] == "error" and error["subscription_id"] == "s" and error["code"] == "SUBSCRIPTION_FAILED"
        assert ws.recv()["rows"][0]["id"] == "3"
        assert live_changes(http, token) == 2  # the error frame is not a change


def test_no_deleted_flag(tmp_path):
    with start_refserver(tmp_path, "--fault", "no-deleted") as srv:
        http, token, ws = prepare(srv)
        insert(http, token, 1)
        ws.recv()
        http.ok(token, "DELETE FROM app.items WHERE id = 1")
        tomb = ws.recv()["old_values"][0]
        assert tomb["id"] == "1" and "_deleted" not in tomb


def test_skew_changes_counter(tmp_path):
    with start_refserver(tmp_path, "--fault", "skew-changes:by=5") as srv:
        http, token, ws = prepare(srv)
        insert(http, token, 1, 2)
        assert received_ids(ws) == [1, 2]
        assert live_changes(http, token) == 7


def test_leak_grows_rss(tmp_path):
    with start_refserver(tmp_path, "--fault", "leak:bytes=1000000") as srv:
        http, token, ws = prepare(srv)

        def rss() -> int:
            rows = http.ok(token, "SELECT metric_value FROM system.stats WHERE metric_name = 'memory_rss_bytes'")
            return int(rows[0]["rows"][0][0])

        before = rss()
        insert(http, token, *range(1, 61))
        assert len(received_ids(ws)) == 60
        assert rss() - before > 40_000_000


def test_keep_closed_leaves_half_open_socket_and_listing(tmp_path):
    with start_refserver(tmp_path, "--fault", "keep-closed") as srv:
        http, token, ws = prepare(srv)
        ws.ws.send_close(status=1000, reason=b"bye")
        with pytest.raises(websocket.WebSocketTimeoutException):
            ws.recv_frame(timeout=1.0)
        rows = http.ok(token, "SELECT subscription_id, status FROM system.live")[0]["rows"]
        assert rows == [["s", "active"]]


def test_stall_stops_everything(tmp_path):
    """Health checks, one after another, until one waits out the stall (bounded at 10 s)."""
    with start_refserver(tmp_path, "--fault", "stall:after=1,for=2") as srv:
        http = Http(srv.url)
        deadline = time.monotonic() + 10
        longest = 0.0
        while longest <= 1.0 and time.monotonic() < deadline:
            started = time.monotonic()
            assert http.request("GET", "/health")[0] == 200
            longest = max(longest, time.monotonic() - started)
        assert longest > 1.0, "no request was held up by the stall"


def test_crash_exits_hard(tmp_path):
    with start_refserver(tmp_path, "--fault", "crash:after=1") as srv:
        assert srv.proc.wait(10) == 70
        assert "fault crash" in srv.log()


@pytest.mark.parametrize("spec", ["explode", "drop", "drop:every=0", "delay:ms=x", "stall:after=1", "drop:often=2"])
def test_bad_fault_spec_is_one_line_error(spec):
    proc = subprocess.run(
        [sys.executable, "-m", "harness.cli", "serve", "--port", "0", "--fault", spec],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("lqharness: error: --fault")
    assert "Traceback" not in proc.stderr


def received(ws: WsClient, timeout: float = 0.7) -> list[tuple[str, int]]:
    """(change_type, id) of change frames until the socket is quiet for ``timeout``."""
    seen = []
    while True:
        try:
            msg = ws.recv(timeout)
        except websocket.WebSocketTimeoutException:
            return seen
        seen.append((msg["change_type"], int((msg.get("rows") or msg["old_values"])[0]["id"])))


def raw_change(ws: WsClient) -> bytes:
    """The next frame's text as sent (the socket is uncompressed)."""
    return ws.recv_frame()[1]


def test_malformed_row_every_n(tmp_path):
    with start_refserver(tmp_path, "--fault", "malformed-row:every=2") as srv:
        http, token, ws = prepare(srv)
        insert(http, token, 1, 2, 3)
        http.ok(token, "UPDATE app.items SET v = 'second' WHERE id = 1")
        assert ws.recv()["rows"][0]["id"] == "1"
        second = ws.recv()["rows"][0]
        assert isinstance(second, list) and second[:2] == ["2", "v2"] and second[3] is False
        assert ws.recv()["rows"][0]["id"] == "3"
        update = ws.recv()
        assert update["rows"][0][:2] == ["1", "second"] and len(update["rows"][0]) == 3
        assert update["old_values"][0]["v"] == "v1"  # only the change's row is malformed


def test_mutate_sets_an_integer_beyond_64_bits_as_a_json_number(tmp_path):
    with start_refserver(tmp_path, "--fault", "mutate:column=v,action=set,value=18446744073709551616,op=insert") as srv:
        http, token, ws = prepare(srv)
        insert(http, token, 1)
        frame = raw_change(ws)
        assert b'"v":18446744073709551616' in frame
        assert json.loads(frame)["rows"][0] == {"id": "1", "v": 2**64, "_seq": ANY, "_deleted": False}
        http.ok(token, "UPDATE app.items SET v = 'second' WHERE id = 1")
        assert ws.recv()["rows"][0]["v"] == "second"  # op=insert: the update is left alone


def test_mutate_sets_a_decimal_as_a_float_every_n(tmp_path):
    with start_refserver(tmp_path, "--fault", "mutate:column=v,action=set,value=1.9,every=2") as srv:
        http, token, ws = prepare(srv)
        insert(http, token, 1, 2)
        assert ws.recv()["rows"][0]["v"] == "v1"
        frame = raw_change(ws)
        assert b'"v":1.9,' in frame and json.loads(frame)["rows"][0]["v"] == 1.9


def test_mutate_drops_a_column_of_updates_only(tmp_path):
    with start_refserver(tmp_path, "--fault", "mutate:column=v,action=drop,op=update") as srv:
        http, token, ws = prepare(srv)
        insert(http, token, 1)
        assert ws.recv()["rows"][0]["v"] == "v1"
        http.ok(token, "UPDATE app.items SET v = 'second' WHERE id = 1")
        update = ws.recv()
        assert "v" not in update["rows"][0] and update["rows"][0]["id"] == "1"
        assert update["old_values"][0]["v"] == "v1"


def test_mutate_nulls_a_column(tmp_path):
    with start_refserver(tmp_path, "--fault", "mutate:column=v,action=null") as srv:
        http, token, ws = prepare(srv)
        insert(http, token, 1)
        row = ws.recv()["rows"][0]
        assert "v" in row and row["v"] is None and row["id"] == "1"
        assert http.ok(token, "SELECT v FROM app.items WHERE id = 1")[0]["rows"] == [["v1"]]


def test_mutate_a_delete_tombstone_names_another_id_or_garbled_content(tmp_path):
    with start_refserver(tmp_path, "--fault", "mutate:column=id,action=set,value=99,op=delete,every=2") as srv:
        http, token, ws = prepare(srv)
        insert(http, token, 1, 2)
        http.ok(token, "DELETE FROM app.items WHERE id = 1")
        http.ok(token, "DELETE FROM app.items WHERE id = 2")
        assert received(ws) == [("insert", 1), ("insert", 2), ("delete", 1), ("delete", 99)]
    with start_refserver(tmp_path / "garbled", "--fault", "mutate:column=v,action=set,value=x~y,op=delete") as srv:
        http, token, ws = prepare(srv)
        insert(http, token, 1)
        http.ok(token, "DELETE FROM app.items WHERE id = 1")
        ws.recv()
        tomb = ws.recv()["old_values"][0]
        assert tomb["id"] == "1" and tomb["v"] == "x~y" and tomb["_deleted"] is True


def test_reorder_op_delete_sends_each_delete_after_the_next_notification(tmp_path):
    with start_refserver(tmp_path, "--fault", "reorder:op=delete,every=1") as srv:
        http, token, ws = prepare(srv)
        insert(http, token, 1, 2, 3)
        http.ok(token, "DELETE FROM app.items WHERE id = 1")
        insert(http, token, 4)
        http.ok(token, "DELETE FROM app.items WHERE id = 2")
        http.ok(token, "DELETE FROM app.items WHERE id = 3")
        insert(http, token, 5)
        assert received(ws) == [
            ("insert", 1),
            ("insert", 2),
            ("insert", 3),
            ("insert", 4),
            ("delete", 1),
            ("delete", 2),  # released when the next delete is held
            ("insert", 5),
            ("delete", 3),
        ]


def test_drop_and_duplicate_with_op_count_only_that_change_type(tmp_path):
    with start_refserver(
        tmp_path, "--fault", "drop:op=delete,every=2", "--fault", "duplicate:op=update,every=1"
    ) as srv:
        http, token, ws = prepare(srv)
        insert(http, token, 1, 2, 3)
        http.ok(token, "UPDATE app.items SET v = 'second' WHERE id = 1")
        for key in (1, 2, 3):
            http.ok(token, "DELETE FROM app.items WHERE id = $1", [key])
        assert received(ws) == [
            ("insert", 1),
            ("insert", 2),
            ("insert", 3),
            ("update", 1),
            ("update", 1),
            ("delete", 1),
            ("delete", 3),
        ]


def test_stale_delete_sends_the_version_before_the_rows_last_update_every_nth_delete(tmp_path):
    with start_refserver(tmp_path, "--fault", "stale-delete:every=2") as srv:
        http, token, ws = prepare(srv)
        insert(http, token, 1, 2, 3, 4)
        for _ in range(4):
            ws.recv()
        for key in (1, 2, 3):  # row 4 keeps its only version
            http.ok(token, f"UPDATE app.items SET v = 'new{key}' WHERE id = {key}")
            ws.recv()
        tombs = []
        for key in (1, 2, 3, 4):
            http.ok(token, f"DELETE FROM app.items WHERE id = {key}")
            tombs.append(ws.recv()["old_values"][0])
        assert [t["v"] for t in tombs] == ["new1", "v2", "new3", "v4"]  # the 2nd delete: row 2 before its update
        assert all(t["_deleted"] is True for t in tombs) and [t["id"] for t in tombs] == ["1", "2", "3", "4"]
