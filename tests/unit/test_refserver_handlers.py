"""The reference server's handlers built from their narrow collaborators, without a RefServer."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from refserver.accounts import Accounts
from refserver.auth import Tokens
from refserver.engine import Principal
from refserver.faults import PassThrough
from refserver.http_api import HttpApi
from refserver.live import LiveManager
from refserver.snowflake import Snowflake
from refserver.storage import Store
from refserver.system_stats import StatsSources, SystemStats
from refserver.ws import WsEndpoint, WsSettings

PASSWORD = "Root-Pass-123"


class RecordingEngine:
    """An engine that answers every statement with one row and remembers who asked."""

    def __init__(self) -> None:
        self.calls: list[tuple[Principal, list[str], list[Any], str]] = []

    def split(self, sql: str) -> list[str]:
        return [part for part in sql.split(";") if part.strip()]

    def execute(
        self, principal: Principal, statements: Sequence[str], params: list[Any], namespace: str
    ) -> list[dict[str, Any]]:
        self.calls.append((principal, list(statements), params, namespace))
        return [{"schema": [{"name": "x", "data_type": "Int", "index": 0}], "rows": [[1]], "row_count": 1}]


class Session:
    def __init__(self, authenticated: bool) -> None:
        self.authenticated = authenticated


class FakeLive:
    """Live counts as system.stats reads them."""

    def __init__(self) -> None:
        self.connections = [Session(True), Session(False)]
        self.dropped_total = 7
        self.blocked_disconnects = 2

    def subscriptions(self) -> list[object]:
        return [object(), object(), object()]

    def live_rows(self) -> list[tuple[Any, ...]]:
        return [()] * 3


def accounts(tmp_path: Path) -> Accounts:
    users = Accounts(Store(tmp_path / "db.sqlite3"), Tokens("unit-test-secret-" + "x" * 32))
    users.ensure_root(PASSWORD)
    return users


async def _with_client(app: web.Application, body) -> Any:
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        return await body(client)
    finally:
        await client.close()


def test_http_api_logs_in_and_runs_sql_through_its_engine(tmp_path: Path) -> None:
    engine = RecordingEngine()
    app = web.Application()
    app.add_routes(HttpApi(accounts(tmp_path), engine).routes())

    async def body(client: TestClient) -> tuple[int, dict[str, Any]]:
        login = await client.post("/v1/api/auth/login", json={"user": "root", "password": PASSWORD})
        token = (await login.json())["access_token"]
        headers = {"Authorization": f"Bearer {token}"}
        response = await client.post("/v1/api/sql", json={"sql": "SELECT 1; SELECT 2"}, headers=headers)
        return response.status, await response.json()

    status, answer = asyncio.run(_with_client(app, body))
    assert status == 200 and answer["status"] == "success"
    assert engine.calls == [(Principal("root", "system"), ["SELECT 1", " SELECT 2"], [], "default")]


def test_ws_endpoint_authenticates_with_its_principal_lookup(tmp_path: Path) -> None:
    async def body() -> dict[str, Any]:
        store = Store(tmp_path / "db.sqlite3")
        live = LiveManager(store, Snowflake(1), PassThrough(), 1, 16, "block", 1.0)
        seen: list[str] = []

        def principal_for(token: str) -> Principal:
            seen.append(token)
            return Principal("alice", "user")

        endpoint = WsEndpoint(live, principal_for, store.tables, WsSettings(), asyncio.Event())
        app = web.Application()
        app.add_routes([web.get("/v1/ws", endpoint.handle)])

        async def talk(client: TestClient) -> dict[str, Any]:
            ws = await client.ws_connect("/v1/ws")
            await ws.send_json({"type": "authenticate", "method": "jwt", "token": "t0k", "protocol": {}})
            reply = await ws.receive_json(timeout=5)
            await ws.close()
            return reply

        reply = await _with_client(app, talk)
        assert seen == ["t0k"]
        return reply

    reply = asyncio.run(body())
    assert reply["type"] == "auth_success" and reply["user"] == "alice" and reply["role"] == "user"


def test_system_stats_reads_only_its_sources(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    stats = SystemStats(StatsSources(FakeLive(), store, lambda: 5, memory_limit_bytes=64 << 20, node_id=9))
    rows = dict(stats.rows())
    assert rows["active_connections"] == "2" and rows["websocket_sessions"] == "1"
    assert rows["active_subscriptions"] == "3" and rows["total_live_queries"] == "3"
    assert rows["notifications_dropped"] == "7" and rows["slow_consumer_disconnects"] == "2"
    assert rows["plan_cache_size"] == "5" and rows["node_id"] == "9"
    assert rows["memory_limit_bytes"] == str(64 << 20) and rows["total_namespaces"] == "1"


def test_store_commit_durability_is_sqlites_synchronous_setting(tmp_path: Path) -> None:
    """`--synchronous full` makes every commit fsync (SQLite level 2); normal is level 1; others are refused."""
    assert Store(tmp_path / "normal.sqlite3").db.execute("PRAGMA synchronous").fetchone() == (1,)
    full = Store(tmp_path / "full.sqlite3", synchronous="full")
    assert full.db.execute("PRAGMA synchronous").fetchone() == (2,)
    with pytest.raises(ValueError, match="normal or full"):
        Store(tmp_path / "off.sqlite3", synchronous="off")
