"""``GET /v1/ws``: KalamDB's live-query WebSocket (authenticate, subscribe, batches, changes, keepalive).

Frames to the client all pass through the connection's ordered queue (see ``live``). Protocol
errors close with 1011 "Invalid message: ...", auth failures with 1008, idle sockets with 1000
"Heartbeat timeout", server shutdown with 1001.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import WSMsgType, web

from refserver.auth import TokenError
from refserver.catalog import TableDef
from refserver.engine import Principal
from refserver.generation import GENERATIONS, Generation
from refserver.live import MAX_SUBS_PER_CONNECTION, Connection, LiveManager, Subscription
from refserver.live_query import LiveQueryError, compile_live_query
from refserver.policies import Policy, visible_rows

log = logging.getLogger("lqrefserver.ws")

JWT_SUBPROTOCOL = "kalamdb.jwt."  # 0.7: the JWT as a WebSocket subprotocol, echoed by the server
CURSOR_EXPIRED = "stale resume cursor expired; resubscribe without a resume token"


class InvalidMessage(Exception):
    """A client message that is not valid JSON of a known type with its required fields."""


def _error(sub_id: str, code: str, message: str) -> dict[str, Any]:
    return {"type": "error", "subscription_id": sub_id, "code": code, "message": message}


def _field(obj: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    if name not in obj:
        raise InvalidMessage(f"missing field `{name}`")
    value = obj[name]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise InvalidMessage(f"invalid type for field `{name}`")
    return value


@dataclass(frozen=True, slots=True)
class WsSettings:
    """The ``lqharness serve`` flags the WebSocket endpoint obeys."""

    auth_timeout: float = 3.0
    heartbeat_timeout: float = 10.0
    auth_rate_limit: int = 0  # authentications per client IP per second; 0 = unlimited
    max_ws_message_size: int = 1 << 20
    generation: Generation = GENERATIONS["0.4"]
    max_subscriptions_per_user: int = 0  # over all of a user's connections; 0 = unlimited
    max_subscriptions_per_connection: int = MAX_SUBS_PER_CONNECTION


class WsEndpoint:
    """The WebSocket route and the watchdog enforcing auth and heartbeat timeouts.

    It needs the live manager (connections, subscriptions), a way to turn a token into a
    principal, the tables to subscribe to, its settings, and the event set when the server stops.
    """

    def __init__(
        self,
        live: LiveManager,
        principal_for: Callable[[str], Principal],
        tables: Mapping[str, TableDef],
        settings: WsSettings,
        stopping: asyncio.Event,
        policies: Callable[[str], list[Policy]] | None = None,
    ) -> None:
        self.live = live
        self.principal_for = principal_for
        self.tables = tables
        self.policies = policies or (lambda _key: [])  # a table's row-level policies (0.7)
        self.cfg = settings
        self.stopping = stopping
        self._auth_window: tuple[int, dict[str, int]] = (0, {})  # (second, attempts per IP in it)

    def _policy(self, role: str) -> Callable[[TableDef], str | None]:
        """0.7: the rows of a SHARED table a subscriber of ``role`` may see, under the table's policies."""

        def rows(table: TableDef) -> str | None:
            return visible_rows(self.policies(table.key), role) if table.kind == "SHARED" else None

        return rows

    async def watchdog(self) -> None:
        """Close sockets that did not authenticate in time or went quiet (checked 4× per timeout)."""
        interval = max(0.05, min(1.0, self.cfg.auth_timeout / 4, self.cfg.heartbeat_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            for conn in list(self.live.connections):
                if conn.closed:
                    continue
                if not conn.authenticated and now - conn.opened > self.cfg.auth_timeout:
                    conn.send_control({"type": "auth_error", "message": "Authentication timeout"})
                    conn.close_after(1008, "Authentication timeout")
                    conn.closed = True
                elif now - conn.last_activity > self.cfg.heartbeat_timeout:
                    log.info("connection %s: heartbeat timeout", conn.connection_id)
                    conn.close_soon(1000, "Heartbeat timeout")

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Upgrade, authenticate (header or in-band), then serve messages until the socket ends."""
        if self.stopping.is_set():
            return web.json_response({"error": "SERVICE_UNAVAILABLE", "message": "Server shutting down"}, status=503)
        compress = request.query.get("compress", "true").lower() != "false"
        keep_closed = self.live.stage.keep_closed
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else None
        echoed: tuple[str, ...] = ()
        if self.cfg.generation.jwt_subprotocol:
            offered = [p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",")]
            carrying = [p for p in offered if p.startswith(JWT_SUBPROTOCOL)]
            if carrying:
                echoed = (carrying[0],)
                token = token or carrying[0][len(JWT_SUBPROTOCOL) :]  # Bearer wins
        ws = web.WebSocketResponse(
            autoping=False,
            autoclose=not keep_closed,
            max_msg_size=max(self.cfg.max_ws_message_size * 4, 4 << 20),
            compress=False,
            protocols=echoed,
        )
        await ws.prepare(request)
        conn = Connection(self.live, ws, compress, request.transport)  # type: ignore[arg-type]
        conn.peer_ip = request.remote or ""
        self.live.add_connection(conn)
        try:
            if token is not None:
                self._authenticate(conn, token, {"serialization": "json", "compression": "gzip"})
            await self._serve(conn, keep_closed)
        finally:
            self.live.remove_connection(conn)
        return ws

    async def _serve(self, conn: Connection, keep_closed: bool) -> None:
        ws = conn.ws
        while True:
            if conn.closed:
                await self._drain(conn)
                return
            msg = await ws.receive()
            conn.touch()
            if msg.type == WSMsgType.TEXT:
                if len(msg.data.encode()) > self.cfg.max_ws_message_size:
                    conn.send_control(
                        _error(
                            "protocol",
                            "MESSAGE_TOO_LARGE",
                            f"Message exceeds {self.cfg.max_ws_message_size} bytes",
                        )
                    )
                    continue
                try:
                    self._on_text(conn, msg.data)
                except InvalidMessage as exc:
                    conn.close_after(1011, f"Invalid message: {exc}"[:120])
                    conn.closed = True
                except Exception as exc:  # noqa: BLE001 - a bug fails the request, never the socket or server
                    log.exception("connection %s: failed to handle a message", conn.connection_id)
                    conn.send_control(_error("protocol", "SUBSCRIPTION_FAILED", f"Internal error: {exc}"))
            elif msg.type == WSMsgType.BINARY:
                if len(msg.data) > self.cfg.max_ws_message_size:
                    conn.send_control(
                        _error(
                            "protocol",
                            "MESSAGE_TOO_LARGE",
                            f"Message exceeds {self.cfg.max_ws_message_size} bytes",
                        )
                    )
                else:
                    conn.send_control(
                        _error("protocol", "UNSUPPORTED_DATA", "Binary frames are not supported in JSON mode")
                    )
            elif msg.type == WSMsgType.PING:
                await ws.pong(msg.data)
            elif msg.type == WSMsgType.PONG:
                continue
            elif msg.type == WSMsgType.CLOSE and keep_closed:
                await self._hold_half_open(conn)
                return
            else:
                if msg.type == WSMsgType.ERROR:
                    log.debug("connection %s: %s", conn.connection_id, ws.exception())
                return

    async def _drain(self, conn: Connection) -> None:
        """Let the sender flush queued frames (and the closing frame) before the handler ends."""
        if not conn.sender.done():
            try:
                await asyncio.wait_for(asyncio.shield(conn.sender), 5)
            except (TimeoutError, asyncio.CancelledError):
                pass

    async def _hold_half_open(self, conn: Connection) -> None:
        """keep-closed fault: never answer the client's close; keep its subscriptions listed."""
        for sub_id in list(conn.subs):
            self.live.unsubscribe(conn, sub_id)
        self.live.connections.discard(conn)
        await self.stopping.wait()

    # ------------------------------------------------------------ messages

    def _on_text(self, conn: Connection, text: str) -> None:
        try:
            message = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise InvalidMessage(str(exc)) from None
        if not isinstance(message, dict):
            raise InvalidMessage("expected a JSON object")
        kind = _field(message, "type", str)
        if kind == "authenticate":
            method = _field(message, "method", str)
            token = _field(message, "token", str)
            protocol = _field(message, "protocol", dict)
            if method != "jwt":
                raise InvalidMessage(f"unknown variant `{method}`, expected `jwt`")
            self._authenticate(conn, token, protocol)
        elif kind == "subscribe":
            request = _field(message, "subscription", dict)
            sub_id = _field(request, "id", str)
            sql = _field(request, "sql", str)
            options = request.get("options")
            if options is not None and not isinstance(options, dict):
                raise InvalidMessage("invalid type for field `options`")
            if options is not None and self.cfg.generation.string_cursors:
                for key in ("from", "from_seq_id"):
                    if options.get(key) is not None and not _decimal(options[key]):
                        raise InvalidMessage(f"invalid type for field `{key}`: expected a decimal string")
            if not conn.authenticated:
                conn.send_control(_error("subscribe", "AUTH_REQUIRED", "Authentication required"))
                return
            self._subscribe(conn, sub_id, sql, options)
        elif kind == "next_batch":
            sub_id = _field(message, "subscription_id", str)
            last = message.get("last_seq_id")
            if self.cfg.generation.string_cursors:
                if last is not None and not _decimal(last):
                    raise InvalidMessage("invalid type for field `last_seq_id`: expected a decimal string")
                last = None if last is None else int(last)
            elif last is not None and (not isinstance(last, int) or isinstance(last, bool)):
                raise InvalidMessage("invalid type for field `last_seq_id`")
            if conn.authenticated:
                self._next_batch(conn, sub_id, last)
        elif kind == "unsubscribe":
            sub_id = _field(message, "subscription_id", str)
            if conn.authenticated:
                self.live.unsubscribe(conn, sub_id)
        elif kind != "ping":
            raise InvalidMessage(f"unknown variant `{kind}`")

    def _authenticate(self, conn: Connection, token: str, protocol: dict[str, Any]) -> None:
        if conn.authenticated:
            conn.send_control(self._auth_success(conn, protocol))
            return
        if not self._auth_allowed(conn.peer_ip):
            log.info("connection %s: authentication rate-limited for %s", conn.connection_id, conn.peer_ip)
            conn.send_control({"type": "auth_error", "message": "Too many authentication attempts, retry later"})
            conn.close_after(1008, "Authentication failed")
            conn.closed = True
            return
        serialization = protocol.get("serialization", "json")
        if serialization not in ("json", "msgpack") or protocol.get("compression", "none") not in (
            "gzip",
            "none",
        ):
            raise InvalidMessage("unknown variant in `protocol`")
        try:
            principal = self.principal_for(token)
        except TokenError as exc:
            log.info("connection %s: authentication failed: %s", conn.connection_id, exc.message)
            conn.send_control({"type": "auth_error", "message": "Invalid credentials"})
            conn.close_after(1008, "Authentication failed")
            conn.closed = True
            return
        if serialization == "msgpack":
            conn.send_control(
                {"type": "auth_error", "message": "msgpack serialization is not supported by this server"}
            )
            conn.close_after(1008, "Authentication failed")
            conn.closed = True
            return
        conn.user_id = principal.user_id
        conn.role = principal.role
        conn.send_control(self._auth_success(conn, protocol))

    def _auth_allowed(self, peer_ip: str) -> bool:
        """Count one authentication from ``peer_ip`` in the current second against ``auth_rate_limit``."""
        limit = self.cfg.auth_rate_limit
        if limit <= 0:
            return True
        second = int(time.monotonic())
        window, counts = self._auth_window
        if window != second:
            counts = {}
            self._auth_window = (second, counts)
        counts[peer_ip] = counts.get(peer_ip, 0) + 1
        return counts[peer_ip] <= limit

    def _auth_success(self, conn: Connection, protocol: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "auth_success",
            "user": conn.user_id,
            "role": conn.role,
            "protocol": {"serialization": "json", "compression": protocol.get("compression", "gzip")},
        }

    def _subscribe(self, conn: Connection, sub_id: str, sql: str, options: dict[str, Any] | None) -> None:
        if not sub_id.strip():
            conn.send_control(
                _error("invalid_subscription", "INVALID_SUBSCRIPTION_ID", "Subscription ID cannot be empty")
            )
            return
        cap = self.cfg.max_subscriptions_per_connection
        if len(conn.subs) >= cap and sub_id not in conn.subs:
            conn.send_control(_error(sub_id, "UNSUPPORTED", f"At most {cap} subscriptions per connection"))
            return
        per_user = self.cfg.max_subscriptions_per_user
        if per_user and sub_id not in conn.subs:
            held = sum(len(c.subs) for c in self.live.connections if c.user_id == conn.user_id)
            if held >= per_user:
                conn.send_control(_error(sub_id, "SUBSCRIPTION_LIMIT_EXCEEDED", "Maximum subscriptions reached"))
                return
        generation = self.cfg.generation
        problem = _check_options(options, generation)
        if problem:
            conn.send_control(_error(sub_id, "UNSUPPORTED", problem))
            return
        role = conn.role or "user"
        policy = self._policy(role) if generation.row_policies else None
        try:
            query = compile_live_query(sql, self.tables, generation.version_column, policy)
        except LiveQueryError as exc:
            conn.send_control(_error(sub_id, exc.code, exc.message))
            return
        if not generation.row_policies and not query.table.readable_by(role):
            conn.send_control(_error(sub_id, "UNAUTHORIZED", f"Access denied to table '{query.table.key}'"))
            return
        sub = self.live.subscribe(conn, sub_id, sql, query, options)
        ack: dict[str, Any] = {"type": "subscription_ack", "subscription_id": sub_id, "total_rows": 0}
        domain = self.live.version_domain(sub) if generation.version_domain and query.table.kind == "SHARED" else None
        cursor = _cursor(options)
        if generation.replay_log and cursor is not None:
            self._resume(conn, sub, ack, cursor, domain)
            return
        if options is None:
            ack["batch_control"] = self.live.batch_control(0, False, None)
            self.live.track(sub)
        else:
            self.live.begin_snapshot(sub)
            self.live.track(sub)
            batch = self.live.snapshot_batch(sub, None)
            ack["batch_control"] = dict(batch["batch_control"])
        if domain is not None:
            ack["batch_control"]["version_domain"] = domain
        ack["schema"] = query.schema
        conn.send_control(ack)
        if options is not None:
            conn.send_control(batch)
            if not batch["batch_control"]["has_more"]:
                self.live.finish_snapshot(sub)

    def _resume(
        self, conn: Connection, sub: Subscription, ack: dict[str, Any], cursor: int, domain: dict[str, Any] | None
    ) -> None:
        """0.7: an ack and an empty ready batch, then the missed changes; CURSOR_EXPIRED outside the replay log."""
        options = sub.options or {}
        missed = self.live.missed(sub, cursor)
        if missed is None or (domain is not None and options.get("version_domain") != domain):
            self.live.unsubscribe(conn, sub.sub_id, keep=False)
            conn.send_control(_error(sub.sub_id, "CURSOR_EXPIRED", CURSOR_EXPIRED))
            return
        self.live.track(sub)
        control = self.live.batch_control(0, False, cursor)
        ack["batch_control"] = {**control, **({"version_domain": domain} if domain is not None else {})}
        ack["schema"] = sub.query.schema
        conn.send_control(ack)
        conn.send_control(
            {"type": "initial_data_batch", "subscription_id": sub.sub_id, "rows": [], "batch_control": control}
        )
        self.live.replay_to(sub, missed)

    def _next_batch(self, conn: Connection, sub_id: str, last_seq: int | None) -> None:
        sub = conn.subs.get(sub_id)
        if sub is None or not sub.loading:
            conn.send_control(_error(sub_id, "BATCH_FETCH_FAILED", f"No snapshot in progress for '{sub_id}'"))
            return
        batch = self.live.snapshot_batch(sub, last_seq)
        conn.send_control(batch)
        if not batch["batch_control"]["has_more"]:
            self.live.finish_snapshot(sub)


def _decimal(value: Any) -> bool:
    """Whether ``value`` is a 0.7 cursor: a string of decimal digits."""
    return isinstance(value, str) and value.isascii() and value.isdigit()


def _cursor(options: dict[str, Any] | None) -> int | None:
    """The resume point of a subscription's options (``from``, alias ``from_seq_id``), as an integer."""
    value = (options or {}).get("from", (options or {}).get("from_seq_id"))
    return None if value is None else int(value)


def _check_options(options: dict[str, Any] | None, generation: Generation) -> str | None:
    """Why the options are refused (``UNSUPPORTED``), or None; 0.7 cursors were checked as strings already."""
    if options is None:
        return None
    keys = (
        ("batch_size", "last_rows") if generation.string_cursors else ("batch_size", "last_rows", "from", "from_seq_id")
    )
    for key in keys:
        value = options.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            return f"options.{key} must be a non-negative integer"
    if options.get("batch_size") == 0 and not generation.clamp_batch_size:
        return "options.batch_size must be positive"
    batch_size = options.get("batch_size") or 1000
    if generation.clamp_batch_size:
        batch_size = max(1, min(1000, batch_size))
    last_rows = options.get("last_rows")
    if last_rows is not None and last_rows > batch_size:
        return f"last_rows ({last_rows}) cannot exceed batch_size ({batch_size})"
    return None
