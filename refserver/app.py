"""The reference server process: wires store, engine, live fan-out, jobs and routes; runs until a signal."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import shutil
import signal
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from harness.errors import HarnessError
from refserver.accounts import Accounts
from refserver.auth import Tokens
from refserver.catalog import TableDef
from refserver.engine import CommittedChange, Engine
from refserver.faults import Faults
from refserver.generation import GENERATIONS
from refserver.guard import HeadDeadline
from refserver.http_api import MAX_BODY, HttpApi
from refserver.idle import IdleRelease
from refserver.jobs import Jobs
from refserver.live import LiveManager
from refserver.snowflake import Snowflake
from refserver.storage import Store
from refserver.system_stats import StatsSources, SystemStats
from refserver.ws import WsEndpoint, WsSettings

log = logging.getLogger("lqrefserver")


@dataclass(slots=True)
class ServerConfig:
    """Every setting of ``lqharness serve`` (see its ``--help``)."""

    host: str = "127.0.0.1"
    port: int = 2900
    data_dir: Path | None = None
    root_password: str | None = None
    jwt_secret: str | None = None
    node_id: int = 1
    queue_size: int = 1024
    queue_overflow: str = "block"
    block_timeout: float = 10.0
    heartbeat_timeout: float = 10.0
    auth_timeout: float = 3.0
    auth_rate_limit: int = 0  # WebSocket authentications per client IP per second; 0 = unlimited
    max_ws_message_size: int = 1 << 20
    header_timeout: float = 10.0  # seconds a new connection may take to send its first request head
    ready_file: Path | None = None
    memory_limit_mb: int | None = None
    synchronous: str = "normal"  # SQLite's PRAGMA synchronous: normal or full (an fsync per commit)
    faults: Faults = field(default_factory=Faults)
    protocol: str = "0.7"  # the KalamDB protocol generation: 0.7 or 0.4 (refserver.generation)
    max_subscriptions_per_user: int = 0  # 0 = unlimited
    max_subscriptions_per_connection: int = 100


class RefServer:
    """One running reference server (one event loop, one SQLite database)."""

    def __init__(self, config: ServerConfig, data_dir: Path) -> None:
        self.config = config
        self.faults = config.faults
        self.stage = config.faults.stage()
        limit = config.memory_limit_mb << 20 if config.memory_limit_mb else None
        self.store = Store(data_dir / "kalamdb.sqlite3", memory_limit_bytes=limit, synchronous=config.synchronous)
        self.generation = GENERATIONS[config.protocol]
        self.ids = Snowflake(config.node_id)
        self.versions = self.generation.version_ids(config.node_id)
        self.ids.observe(self.store.max_seq())
        self.versions.observe(self.store.max_seq())
        self.accounts = Accounts(self.store, Tokens(config.jwt_secret or secrets.token_urlsafe(48)))
        self.jobs = Jobs(self.store, config.node_id)
        self.live = LiveManager(
            self.store,
            self.versions,
            self.stage,
            config.node_id,
            config.queue_size,
            config.queue_overflow,
            config.block_timeout,
            self.generation,
        )
        self.engine = Engine(
            self.store,
            self.ids,
            self,
            config.node_id,
            self.versions,
            self.generation.version_column,
            row_policies=self.generation.row_policies,
        )
        self.stats = SystemStats(
            StatsSources(
                self.live,
                self.store,
                lambda: len(self.engine.plans),
                (config.memory_limit_mb or 0) << 20,
                config.node_id,
            )
        )
        self.stopping = asyncio.Event()  # set when the server shuts down
        self.ws_endpoint = WsEndpoint(
            self.live,
            self.accounts.principal_for,
            self.store.tables,
            WsSettings(
                config.auth_timeout,
                config.heartbeat_timeout,
                config.auth_rate_limit,
                config.max_ws_message_size,
                self.generation,
                config.max_subscriptions_per_user,
                config.max_subscriptions_per_connection,
            ),
            self.stopping,
            self.store.table_policies,
        )
        self.app: web.Application | None = None
        self.accounts.ensure_root(config.root_password)

    # ------------------------------------------------------------ engine hooks

    def live_rows(self) -> list[tuple[Any, ...]]:
        return self.live.live_rows()

    def stats_rows(self) -> list[tuple[str, str]]:
        return self.stats.rows()

    def kill_live(self, live_id: str) -> bool:
        return self.live.kill(live_id)

    def start_flush(self, table: TableDef) -> str | None:
        return self.jobs.start_flush(table)

    def kill_job(self, job_id: str) -> bool:
        return self.jobs.kill(job_id)

    def on_changes(self, changes: list[CommittedChange]) -> None:
        if changes:
            self.jobs.note_writes(changes[0].table.key, len(changes))
            self.live.publish(changes)

    def on_user_dropped(self, user_id: str) -> None:
        self.accounts.forget(user_id)
        self.live.drop_user(user_id)

    def on_table_dropped(self, key: str) -> None:
        self.live.table_dropped(key)

    # ------------------------------------------------------------ lifecycle

    def build_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        app.add_routes(HttpApi(self.accounts, self.engine).routes())
        app.add_routes([web.get("/v1/ws", self.ws_endpoint.handle)])
        app.on_shutdown.append(self._on_shutdown)
        return app

    async def _on_shutdown(self, app: web.Application) -> None:
        self.stopping.set()
        conns = list(self.live.connections)
        for conn in conns:
            conn.close_soon(1001, "Server shutting down")
        if conns:
            await asyncio.sleep(0.2)

    async def serve(self) -> None:
        """Listen, announce, run until SIGTERM/SIGINT (or a crash fault), then shut down cleanly."""
        loop = asyncio.get_running_loop()
        self.live.start()
        watchdog = loop.create_task(self.ws_endpoint.watchdog())
        checkpoints = loop.create_task(self.jobs.checkpoint_loop())
        idle = loop.create_task(IdleRelease(self.store, lambda: self.jobs.writes_total).loop())
        assert self.app is not None
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=2)
        await runner.setup()
        sock = _bind(self.config.host, self.config.port)
        assert runner.server is not None
        guarded = HeadDeadline(runner.server, self.config.header_timeout)
        listener = await loop.create_server(guarded, sock=sock, backlog=4096)
        port = sock.getsockname()[1]
        url = f"http://{self.config.host}:{port}"
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        self.stage.arm(loop)
        faults = f" faults: {self.faults.describe()}" if self.faults.enabled else ""
        print(
            f"lqharness serve: KalamDB {self.generation.name} protocol, listening on {url} (pid {os.getpid()}){faults}",
            flush=True,
        )
        if self.config.ready_file is not None:
            tmp = self.config.ready_file.with_suffix(".tmp")
            tmp.write_bytes(orjson.dumps({"url": url, "pid": os.getpid()}))
            tmp.replace(self.config.ready_file)
        try:
            await stop.wait()
        finally:
            log.info("shutting down")
            watchdog.cancel()
            checkpoints.cancel()
            idle.cancel()
            listener.close()
            await runner.cleanup()
            if self.live.dispatcher is not None:
                self.live.dispatcher.cancel()


def _bind(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise HarnessError(f"cannot resolve --host {host}: {exc.strerror or exc}") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise HarnessError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(4096)
    sock.setblocking(False)
    return sock


def run_server(config: ServerConfig) -> int:
    """Run the server to completion (the body of ``lqharness serve``)."""
    owned = config.data_dir is None
    data_dir = Path(tempfile.mkdtemp(prefix="lqh-refserver-")) if owned else config.data_dir
    assert data_dir is not None
    data_dir.mkdir(parents=True, exist_ok=True)
    import uvloop

    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(_main(config, data_dir))
    finally:
        if owned:
            shutil.rmtree(data_dir, ignore_errors=True)


async def _main(config: ServerConfig, data_dir: Path) -> int:
    server = RefServer(config, data_dir)
    try:
        server.app = server.build_app()
        await server.serve()
    finally:
        server.store.close()
    return 0
