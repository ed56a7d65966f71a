"""The reference server is hard to misuse: forged tokens, other users' rows, oversized and malformed input,
slow clients, and a bind other hosts can reach."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
import websocket

from harness.orchestration.server import LocalServer
from tests.support.refserver import ClosedError, Http, WsClient, start_refserver

pytestmark = pytest.mark.timeout(60)

SECRET = "Hardening-Test-Secret-0123456789abcdef"
PASSWORD = "Str0ngPass!"
TABLE = "chat.m"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A server with a known JWT secret, a USER table, users alice and bob (role user), bob owning one row."""
    args = ("--jwt-secret", SECRET, "--header-timeout", "0.5", "--max-ws-message-size", "4096")
    with start_refserver(tmp_path_factory.mktemp("hardening"), *args) as srv:
        http = Http(srv.url)
        root = http.login("root", srv.root_password or "")
        http.ok(root, "CREATE NAMESPACE IF NOT EXISTS chat")
        http.ok(root, f"CREATE USER TABLE {TABLE} (id BIGINT PRIMARY KEY, c TEXT)")
        for user in ("alice", "bob"):
            http.ok(root, f"CREATE USER '{user}' WITH PASSWORD '{PASSWORD}' ROLE user")
        http.ok(http.login("bob", PASSWORD), f"INSERT INTO {TABLE} (id, c) VALUES (1, 'bob-only')")
        yield srv


def _claims(**changes: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {"sub": "root", "iss": "kalamdb", "iat": now, "exp": now + 600, "role": "system"}
    return {**claims, "token_type": "access", **changes}


FORGED = {
    "alg none": jwt.encode(_claims(), None, algorithm="none"),
    "wrong secret": jwt.encode(_claims(), "Some-Other-Secret-0123456789abcdefgh", algorithm="HS256"),
    "expired": jwt.encode(_claims(exp=int(time.time()) - 5), SECRET, algorithm="HS256"),
    "refresh token": jwt.encode(_claims(token_type="refresh"), SECRET, algorithm="HS256"),
    "other issuer": jwt.encode(_claims(iss="someone"), SECRET, algorithm="HS256"),
    "unknown user": jwt.encode(_claims(sub="mallory"), SECRET, algorithm="HS256"),
}


@pytest.mark.parametrize("kind", FORGED)
def test_forged_tokens_are_refused_over_http_and_websocket(server: LocalServer, kind: str) -> None:
    http = Http(server.url)
    good = jwt.encode(_claims(), SECRET, algorithm="HS256")
    assert http.sql(good, "SELECT 1")[0] == 200  # the same claims, properly signed, are accepted
    status, body = http.sql(FORGED[kind], "SELECT 1")
    assert status == 401, body
    ws = WsClient(server.ws_url)
    assert ws.authenticate(FORGED[kind])["type"] == "auth_error"
    assert ws.wait_close()[0] == 1008


def _tokens(server: LocalServer) -> tuple[Http, str, str]:
    http = Http(server.url)
    return http, http.login("alice", PASSWORD), http.login("bob", PASSWORD)


@pytest.mark.parametrize(
    "sql",
    [
        f'SELECT (SELECT c FROM "{TABLE}" LIMIT 1) AS leak',
        f'SELECT * FROM {TABLE} WHERE id IN (SELECT id FROM "{TABLE}")',
        f"SELECT COUNT(*) FROM {TABLE} WHERE EXISTS (SELECT 1 FROM \"{TABLE}\" WHERE c = 'bob-only')",
        f"SELECT * FROM {TABLE} WHERE _owner = 'bob'",
        f"WITH q AS (SELECT * FROM {TABLE}) SELECT * FROM q",
        f"SELECT a.c FROM {TABLE} a JOIN {TABLE} b ON a.id = b.id",
        f"EXECUTE AS USER 'bob' (SELECT * FROM {TABLE})",
        f'DELETE FROM {TABLE} WHERE id IN (SELECT id FROM "{TABLE}")',
        'SELECT (SELECT password_hash FROM "system.users") AS leak',
    ],
)
def test_a_user_cannot_reach_another_users_rows_by_sql(server: LocalServer, sql: str) -> None:
    http, alice, bob = _tokens(server)
    status, body = http.sql(alice, sql)
    assert status in (400, 403), body
    assert "bob-only" not in str(body)
    assert http.ok(bob, f"SELECT c FROM {TABLE}")[0]["rows"] == [["bob-only"]]
    assert http.ok(alice, f"SELECT * FROM {TABLE} WHERE 1 = 1 OR id = 1")[0]["rows"] == []


def test_a_user_cannot_subscribe_to_another_users_rows(server: LocalServer) -> None:
    http, alice, bob = _tokens(server)
    ws = WsClient(server.ws_url)
    assert ws.authenticate(alice)["type"] == "auth_success"
    for i, sql in enumerate(
        [
            f"SELECT * FROM {TABLE} WHERE _owner = 'bob'",
            f'SELECT * FROM {TABLE} WHERE id IN (SELECT id FROM "{TABLE}")',
            f"EXECUTE AS USER 'bob' (SELECT * FROM {TABLE})",
        ]
    ):
        assert ws.subscribe(f"bad{i}", sql, {"batch_size": 10})["type"] == "error"
    ack = ws.subscribe("all", f"SELECT * FROM {TABLE} WHERE 1 = 1 OR id = 1", {"batch_size": 10})
    assert ack["type"] == "subscription_ack" and ws.recv()["rows"] == []  # the snapshot holds none of bob's rows
    http.ok(bob, f"INSERT INTO {TABLE} (id, c) VALUES (2, 'bob-later')")
    with pytest.raises(websocket.WebSocketTimeoutException):
        ws.recv(timeout=1.0)
    http.ok(alice, f"INSERT INTO {TABLE} (id, c) VALUES (3, 'alice-own')")
    assert ws.recv()["rows"][0]["c"] == "alice-own"  # the subscription is live: silence above meant isolation
    ws.close()


def test_oversized_http_body_is_refused_and_the_server_stays_up(server: LocalServer) -> None:
    http, alice, _ = _tokens(server)
    status, body = http.request("POST", "/v1/api/sql", raw=b'{"sql": "' + b"x" * (11 << 20) + b'"}', token=alice)
    assert status == 413 and body["error"]["code"] == "INVALID_INPUT"
    status, body = http.request("POST", "/v1/api/auth/login", raw=b" " * (11 << 20))
    assert status == 413 and body["error"] == "payload_too_large"
    assert http.request("GET", "/health")[0] == 200


def test_oversized_and_malformed_websocket_frames_are_bounded(server: LocalServer) -> None:
    http, alice, _ = _tokens(server)
    ws = WsClient(server.ws_url)
    ws.authenticate(alice)
    ws.send({"type": "ping", "pad": "x" * 8192})  # over --max-ws-message-size: an error, the socket stays
    assert ws.recv()["code"] == "MESSAGE_TOO_LARGE"
    with pytest.raises((ClosedError, websocket.WebSocketException, OSError)):
        ws.ws.send("y" * (5 << 20))  # over the frame bound: the server closes the socket
        for _ in range(3):
            ws.recv_frame(5)
    raw = WsClient(server.ws_url)
    raw.ws.sock.sendall(b"\x83\x80\x00\x00\x00\x00")  # reserved opcode 3, masked, empty
    with pytest.raises((ClosedError, websocket.WebSocketException, OSError)):
        for _ in range(3):
            raw.recv_frame(5)
    assert http.request("GET", "/health")[0] == 200


def test_slow_clients_are_cut_off_and_others_served(server: LocalServer) -> None:
    """Slowloris: clients trickling a request head byte by byte are closed after --header-timeout (0.5 s)."""
    host, port = server.url.removeprefix("http://").rsplit(":", 1)
    slow = [socket.create_connection((host, int(port)), timeout=5) for _ in range(20)]
    started = time.monotonic()
    for s in slow:
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
    closed: set[int] = set()
    while len(closed) < len(slow) and time.monotonic() - started < 5:
        assert Http(server.url).request("GET", "/health")[0] == 200
        for i, s in enumerate(slow):
            if i in closed:
                continue
            try:
                s.sendall(b"X")
                s.settimeout(0.01)
                if s.recv(1) == b"":
                    closed.add(i)
            except TimeoutError:
                pass
            except OSError:
                closed.add(i)
        time.sleep(0.1)
    for s in slow:
        s.close()
    assert len(closed) == len(slow)
    assert time.monotonic() - started < 3


def _serve(*args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "KALAMDB_ROOT_PASSWORD"}
    if password:
        env["KALAMDB_ROOT_PASSWORD"] = password
    cmd = [sys.executable, "-m", "harness.cli", "serve", "--port", "0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30, env=env)


@pytest.mark.parametrize(
    ("args", "password", "message"),
    [
        (("--host", "0.0.0.0"), "Root-Pass-123", "add --allow-remote"),
        (("--host", "0.0.0.0", "--allow-remote"), None, "needs a root password"),
    ],
)
def test_a_reachable_bind_needs_a_flag_and_a_password(
    args: tuple[str, ...], password: str | None, message: str
) -> None:
    done = _serve(*args, password=password)
    assert done.returncode == 2 and message in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_loopback_names_need_no_flag(tmp_path: Path) -> None:
    from harness.commands.serve import is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("localhost") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("::") and not is_loopback("no-such-host.invalid")
