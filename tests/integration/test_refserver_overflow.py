"""Queue overflow of ``lqharness serve``: ``block`` never loses a notification, ``drop`` drops like KalamDB."""

from __future__ import annotations

import threading

import pytest
import websocket

from tests.support.refserver import Http, WsClient, start_refserver

pytestmark = pytest.mark.timeout(60)

ROWS = 100
BIG = "x" * 200_000  # 20 MB in all: more than the kernel's socket buffers can hold for a reader that stalls


def prepare(srv) -> tuple[Http, str]:
    http = Http(srv.url)
    token = http.login("root", srv.root_password)
    http.ok(token, "CREATE NAMESPACE app")
    http.ok(token, "CREATE USER TABLE app.items (id BIGINT PRIMARY KEY, v TEXT)")
    return http, token


def subscriber(srv, token: str) -> WsClient:
    ws = WsClient(srv.ws_url)
    assert ws.authenticate(token)["type"] == "auth_success"
    assert ws.subscribe("s", "SELECT * FROM app.items")["type"] == "subscription_ack"
    return ws


def drain(ws: WsClient, quiet: float = 1.0) -> tuple[list[int], tuple[int | None, str] | None]:
    """Change ids until ``quiet`` seconds pass without one, and the close (code, reason) if the server closed."""
    from tests.support.refserver import ClosedError

    ids = []
    while True:
        try:
            msg = ws.recv(timeout=quiet)
        except websocket.WebSocketTimeoutException:
            return ids, None
        except ClosedError as closed:
            return ids, (closed.code, closed.reason)
        ids.append(int(msg["rows"][0]["id"]))


def write_rows(http: Http, token: str) -> None:
    for key in range(1, ROWS + 1):
        http.ok(token, "INSERT INTO app.items (id, v) VALUES ($1, $2)", [key, BIG])


def test_block_disconnects_a_stuck_consumer_and_loses_nothing_for_others(tmp_path):
    with start_refserver(tmp_path, "--queue-size", "4", "--block-timeout", "1") as srv:
        http, token = prepare(srv)
        stuck = subscriber(srv, token)
        fast = subscriber(srv, token)
        fast_ids: list[int] = []
        # fan-out stalls for up to --block-timeout while the stuck consumer blocks it: wait longer than that
        reader = threading.Thread(target=lambda: fast_ids.extend(drain(fast, quiet=3.0)[0]), daemon=True)
        reader.start()
        write_rows(http, token)
        reader.join(30)
        assert fast_ids == list(range(1, ROWS + 1))
        ids, closed = drain(stuck)
        assert closed == (1013, "Notification queue full")
        assert ids == list(range(1, len(ids) + 1)) and len(ids) < ROWS  # a prefix: nothing skipped
        assert "notification queue full" in srv.log()


def test_block_waits_for_a_slow_consumer_within_the_timeout(tmp_path):
    with start_refserver(tmp_path, "--queue-size", "2", "--block-timeout", "10") as srv:
        http, token = prepare(srv)
        slow = subscriber(srv, token)
        got: list[int] = []
        written = threading.Event()

        def read_slowly() -> None:
            # start reading only once every row is written: the 2-slot queue has long been full
            written.wait(30)
            got.extend(drain(slow)[0])

        reader = threading.Thread(target=read_slowly, daemon=True)
        reader.start()
        write_rows(http, token)
        written.set()
        reader.join(30)
        assert got == list(range(1, ROWS + 1))


def test_drop_loses_notifications_and_counts_exactly(tmp_path):
    with start_refserver(tmp_path, "--queue-overflow", "drop", "--queue-size", "4") as srv:
        http, token = prepare(srv)
        stuck = subscriber(srv, token)
        write_rows(http, token)
        ids, closed = drain(stuck)
        assert closed is None and 0 < len(ids) < ROWS
        assert ids == sorted(ids)
        changes = http.ok(token, "SELECT changes FROM system.live")[0]["rows"][0][0]
        assert int(changes) == len(ids)
        stats = dict(http.ok(token, "SELECT * FROM system.stats")[0]["rows"])
        assert int(stats["notifications_dropped"]) == ROWS - len(ids)
