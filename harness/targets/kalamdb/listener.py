"""One KalamDB live query on its own ``/v1/ws`` WebSocket: authentication, heartbeat, resume.

websocket-client cooperates with gevent once the process is monkey-patched, so a listener
blocks only its own greenlet. websocket-client opens the socket and sends; frames are read by
``frames.FrameReader``, many per socket call. The connection is driven from ``recv``: the client pings when
it has been quiet for ``heartbeat`` seconds (KalamDB drops silent clients), snapshot batches
are requested as they are consumed, and a lost socket surfaces as ``Disconnected``.

The subscribe exchange is where the protocol generations differ (``docs/kalamdb-0.7.md``):
a 0.4 resume gets the current rows changed since the cursor as snapshot rows; a 0.7 resume
gets an empty batch and then the missed changes replayed from the server's log (``replayed``),
or ``CURSOR_EXPIRED``, after which the listener subscribes again without a cursor and keeps
the fresh snapshot's rows newer than it (current rows only, as a 0.4 resume).
"""

from __future__ import annotations

import collections
import secrets
import time
from typing import Any

import gevent
import orjson
import websocket

from harness.targets.base import Change, Disconnected, Eq, Schema, TargetError
from harness.targets.http_session import describe
from harness.targets.kalamdb import dialect, frames, wire
from harness.targets.kalamdb.auth import Credentials
from harness.targets.kalamdb.generation import MEMORY
from harness.targets.kalamdb.settings import Settings
from harness.targets.kalamdb.sql import SqlSession, probe_generation
from harness.targets.kalamdb.transport import Http

__all__ = ["KalamListener"]

CLOSE_TIMEOUT = 1.0
RATE_LIMITED_AUTH = "too many authentication"  # KalamDB's auth_error text past its per-IP limit (protocol 4.2)
AUTH_RETRY_SECONDS = 30.0  # how long a rate-limited WebSocket authentication keeps retrying
AUTH_BACKOFF_FIRST = 0.05
AUTH_BACKOFF_MAX = 1.0
JWT_SUBPROTOCOL = "kalamdb.jwt."  # 0.7: the JWT as a WebSocket subprotocol (the server echoes it)


class KalamListener:
    """One live subscription on its own WebSocket, with client heartbeat and resume by ``_seq``."""

    def __init__(self, settings: Settings, schema: Schema, creds: Credentials) -> None:
        self._settings = settings
        self._schema = schema
        self._creds = creds
        self._http = Http(settings.endpoint, settings.timeout)
        self._bigints = wire.schema_bigints(schema)
        self._name = secrets.token_hex(6)
        self._count = 0
        self._ws: websocket.WebSocket | None = None
        self._reader: frames.FrameReader | None = None  # owns the socket's receive side once open
        self._sub_id: str | None = None
        self._ready = False
        self._snapshot_wanted = False
        self._resuming = False  # a 0.7 resume is waiting for its ack, or for CURSOR_EXPIRED
        self._expired = False
        self._replayed = False
        self._after: int | None = None  # after CURSOR_EXPIRED: snapshot rows at or below this were seen
        self._buffer: collections.deque[Change] = collections.deque()
        self._last_seq: int | None = None
        self._next_ping = 0.0
        self._dead: Disconnected | None = None
        self._closed = False

    @property
    def subscription_id(self) -> str | None:
        return self._sub_id

    @property
    def last_seq(self) -> int | None:
        return self._last_seq

    @property
    def replayed(self) -> bool:
        """True when the last subscribe resumed from the server's replay log (0.7): every change follows."""
        return self._replayed

    # -- connection ---------------------------------------------------------------------------

    def _open(self, token: str | None = None) -> websocket.WebSocket:
        """Open the socket; with ``token`` the JWT travels as the ``kalamdb.jwt.`` subprotocol (0.7)."""
        url = self._settings.endpoint.ws_url + ("" if self._settings.compress else "?compress=false")
        try:
            return websocket.create_connection(
                url,
                timeout=self._settings.timeout,
                enable_multithread=True,
                skip_utf8_validation=True,
                subprotocols=None if token is None else [JWT_SUBPROTOCOL + token],
            )
        except websocket.WebSocketBadStatusException as exc:
            raise TargetError(f"websocket upgrade refused at {url}: HTTP {exc.status_code}") from None
        except (OSError, websocket.WebSocketException) as exc:
            raise TargetError(f"cannot open websocket {url}: {describe(exc)}") from None

    def _connect(self) -> None:
        """Open the socket and authenticate in-band.

        A rejected cached token is renewed once. A refusal for too many authentications from
        this address (KalamDB's per-IP limit, protocol 4.2) is retried with a growing,
        jittered back-off for up to ``AUTH_RETRY_SECONDS``.
        """
        renewed = False
        give_up = time.monotonic() + AUTH_RETRY_SECONDS
        backoff = AUTH_BACKOFF_FIRST
        while True:
            token = self._creds.token(self._http, self._settings.timeout)
            refusal = self._authenticate(token)
            if refusal is None:
                return
            if RATE_LIMITED_AUTH in refusal.lower():
                if time.monotonic() + backoff > give_up:
                    raise TargetError(
                        f"websocket authentication as {self._creds.user!r} still rate-limited after "
                        f"{AUTH_RETRY_SECONDS:g}s: {refusal} (raise the server's "
                        "rate_limit.max_auth_requests_per_ip_per_sec)"
                    )
                gevent.sleep(backoff * (0.5 + secrets.randbelow(1000) / 1000))
                backoff = min(backoff * 2, AUTH_BACKOFF_MAX)
                continue
            if renewed:
                raise TargetError(f"websocket authentication as {self._creds.user!r} failed: {refusal}")
            self._creds.invalidate(token)
            renewed = True

    def _authenticate(self, token: str) -> str | None:
        """Open a socket and authenticate (``authenticate``, or the JWT subprotocol); None on success,
        else the server's refusal text."""
        by_subprotocol = self._settings.ws_auth == "subprotocol"
        self._ws = self._open(token if by_subprotocol else None)
        self._reader = frames.FrameReader(self._ws.sock, wire.MAX_FRAME_BYTES)
        self._dead = None
        if not by_subprotocol:  # with the subprotocol the server pushes its reply unprompted
            self._send(
                {
                    "type": "authenticate",
                    "method": "jwt",
                    "token": token,
                    "protocol": {
                        "serialization": "json",
                        "compression": "gzip" if self._settings.compress else "none",
                    },
                }
            )
        deadline = time.monotonic() + self._settings.timeout
        while (remaining := deadline - time.monotonic()) > 0:
            msg = self._read(remaining)
            if msg is None:
                continue
            kind = msg[0].get("type")
            if kind == "auth_success":
                return None
            if kind == "auth_error":
                self._shutdown()
                return str(msg[0].get("message", ""))
        self._shutdown()
        raise TargetError(f"no authentication reply within {self._settings.timeout:g}s")

    def _send(self, msg: dict[str, Any]) -> None:
        assert self._ws is not None
        try:
            self._ws.settimeout(self._settings.timeout)
            self._ws.send(orjson.dumps(msg).decode())
        except (OSError, websocket.WebSocketException) as exc:
            self._lost(f"send failed: {describe(exc)}")
            raise self._dead from None  # type: ignore[misc]
        self._next_ping = time.monotonic() + self._settings.heartbeat

    def _heartbeat(self) -> None:
        """Send a WebSocket ping when the connection has been quiet on our side for ``heartbeat`` s."""
        if self._ws is None or self._dead is not None or time.monotonic() < self._next_ping:
            return
        try:
            self._ws.settimeout(self._settings.timeout)
            self._ws.ping()
        except (OSError, websocket.WebSocketException) as exc:
            self._lost(f"ping failed: {describe(exc)}")
            return
        self._next_ping = time.monotonic() + self._settings.heartbeat

    def _lost(self, reason: str, expected: bool = False) -> None:
        if self._dead is None:
            self._dead = Disconnected(reason, expected=expected)
        self._shutdown()

    def _shutdown(self) -> None:
        if self._ws is not None:
            try:
                self._ws.shutdown()
            except (OSError, websocket.WebSocketException):
                pass

    def _read(self, timeout: float | None) -> tuple[dict[str, Any], int, int] | None:
        """One server message (message, received_ns, payload bytes), or None after ``timeout``
        (None: only a message already received, without a socket call)."""
        if self._dead is not None:
            raise self._dead
        assert self._reader is not None
        try:
            got = self._reader.read(timeout)
        except frames.ConnectionClosed:
            self._lost("connection closed without a close frame")
            raise self._dead from None  # type: ignore[misc]
        except frames.FrameError as exc:
            self._lost(f"connection lost: bad frame: {exc}")
            raise self._dead from None  # type: ignore[misc]
        except (OSError, websocket.WebSocketException) as exc:
            self._lost(f"connection lost: {describe(exc)}")
            raise self._dead from None  # type: ignore[misc]
        if got is None:
            return None
        received = time.time_ns()
        opcode, data = got
        if opcode == frames.OPCODE_TEXT or opcode == frames.OPCODE_BINARY:
            return wire.decode_frame(data), received, len(data)
        if opcode == frames.OPCODE_CLOSE:
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
            text = data[2:].decode("utf-8", "replace")
            self._lost(f"closed by server: {code} {text}".rstrip())
            raise self._dead from None  # type: ignore[misc]
        if opcode == frames.OPCODE_PING:
            self._pong(data)
        return None

    def _pong(self, data: bytes) -> None:
        assert self._ws is not None
        try:
            self._ws.settimeout(self._settings.timeout)
            self._ws.pong(data)
        except (OSError, websocket.WebSocketException) as exc:
            self._lost(f"pong failed: {describe(exc)}")
            raise self._dead from None  # type: ignore[misc]

    def backlog_bytes(self) -> int | None:
        """Bytes received for this subscription and not yet handed out (buffered plus the socket's queue)."""
        if self._reader is None or self._dead is not None:
            return None
        return self._reader.backlog()

    # -- subscription -------------------------------------------------------------------------

    def subscribe(self, filter: Eq | None = None, resume_from: int | None = None, snapshot: bool = False) -> None:
        """Subscribe to the rows matching ``filter`` (a live ``SELECT *``); returns once the server says ``ready``."""
        if self._sub_id is not None or self._closed:
            raise TargetError("this listener is already subscribed or closed; open a new one")
        try:
            sql = dialect.subscription_sql(self._schema, filter)
            self._connect()
            batch = {"batch_size": self._settings.batch_size}
            if resume_from is None:
                self._request(sql, batch if snapshot else None)
                return
            generation = self._generation()
            domain = MEMORY.domain(self._http.base_url, self._schema.qualified) if generation == "0.7" else None
            self._resuming = generation == "0.7"
            self._request(sql, wire.resume_options(resume_from, self._settings.batch_size, generation, domain))
            self._resuming = False
            if self._expired:
                self._expired = False
                self._after = resume_from
                self._request(sql, batch)
            else:
                self._replayed = generation == "0.7"
        except TargetError:
            self.close()
            raise

    def _request(self, sql: str, options: dict[str, Any] | None) -> None:
        """Send one ``subscribe`` and read until it is ready (or, resuming under 0.7, refused as expired)."""
        self._count += 1
        self._sub_id = f"lqh_{self._name}_{self._count}"
        sub: dict[str, Any] = {"id": self._sub_id, "sql": sql}
        if options is not None:
            sub["options"] = options
        self._snapshot_wanted = options is not None
        self._send({"type": "subscribe", "subscription": sub})
        deadline = time.monotonic() + self._settings.subscribe_timeout
        while not self._ready and not self._expired:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TargetError(f"subscription {self._sub_id} not ready within {self._settings.subscribe_timeout:g}s")
            self._pump(remaining)

    def _generation(self) -> str:
        """The server's protocol generation: forced, remembered, or read from a ``SELECT *`` on the table."""
        forced = self._settings.protocol or MEMORY.generation(self._http.base_url)
        if forced is not None:
            return forced
        session = SqlSession(self._settings.endpoint, self._creds, self._settings.timeout)
        try:
            found = probe_generation(session, self._schema)
        finally:
            session.close()
        if found is None:
            raise TargetError(f"cannot tell the protocol generation of {self._http.base_url}: no _seq or _version")
        return found

    def _pump(self, timeout: float) -> None:
        """Read until one message or ``timeout`` s (at least one poll), in slices that keep the heartbeat going."""
        deadline = time.monotonic() + timeout
        while True:
            self._heartbeat()
            got = self._read(max(0.0, min(deadline, self._next_ping) - time.monotonic()))
            if got is not None:
                self._handle(*got)
                return
            if time.monotonic() >= deadline:
                return

    def _handle(self, msg: dict[str, Any], received_ns: int, size: int) -> None:
        kind = msg.get("type")
        if kind == "change":
            self._buffer.extend(wire.change_events(msg, received_ns, size, self._bigints))
        elif kind == "initial_data_batch":
            rows = wire.snapshot_events(msg.get("rows") or [], received_ns, size, self._bigints)
            after = self._after
            if after is not None:  # a fresh snapshot after CURSOR_EXPIRED: what is new since the cursor
                rows = [c for c in rows if c.server_seq is None or c.server_seq > after]
            self._buffer.extend(rows)
            control = msg.get("batch_control") or {}
            if control.get("has_more"):
                request: dict[str, Any] = {"type": "next_batch", "subscription_id": self._sub_id}
                if control.get("last_seq_id") is not None:
                    request["last_seq_id"] = control["last_seq_id"]
                self._send(request)
            else:
                self._ready = True
        elif kind == "subscription_ack":
            fields = msg.get("schema") or []
            self._bigints = self._bigints | wire.wire_bigints(fields)
            control = msg.get("batch_control") or {}
            generation = wire.generation_of(f.get("name", "") for f in fields)
            if generation is not None:
                MEMORY.note_generation(self._http.base_url, generation)
            if generation == "0.7" and not self._resuming:
                MEMORY.note_domain(self._http.base_url, self._schema.qualified, control.get("version_domain"))
            if not self._snapshot_wanted and not control.get("has_more"):
                self._ready = True
        elif kind == "error" and self._resuming and msg.get("code") == wire.CURSOR_EXPIRED:
            self._expired = True
        elif kind == "error":
            raise TargetError(
                f"server error for subscription {msg.get('subscription_id')}: {msg.get('code')}: {msg.get('message')}"
            )

    def recv(self, timeout: float) -> Change | None:
        """Next change (snapshot rows first), None after ``timeout`` s, Disconnected when the socket ends."""
        if self._sub_id is None:
            raise TargetError("recv before subscribe")
        buffer = self._buffer
        if not buffer:  # a message already received first: no clock, no socket call
            got = self._read(None)
            if got is not None:
                self._handle(*got)
        if not buffer:
            deadline = time.monotonic() + timeout
            while not buffer:
                if self._dead is not None:
                    raise self._dead
                self._pump(max(0.0, deadline - time.monotonic()))
                if not buffer and time.monotonic() >= deadline:
                    return None
        change = buffer.popleft()  # the heartbeat is checked before each socket read (``_pump``)
        seq = change.server_seq
        if seq is not None and (self._last_seq is None or seq > self._last_seq):
            self._last_seq = seq
        return change

    def close(self) -> None:
        """Close with code 1000 (waiting at most a second for the echo); later recv calls raise Disconnected."""
        self._closed = True
        if self._ws is not None and self._dead is None:
            try:
                self._ws.settimeout(CLOSE_TIMEOUT)
                self._ws.send_close(websocket.STATUS_NORMAL)
                self._await_close_echo()
            except (OSError, websocket.WebSocketException):
                pass
        self._lost("closed by client", expected=True)
        self._http.close()

    def _await_close_echo(self) -> None:
        """Read (and drop) what the server still sends until its close frame, for at most ``CLOSE_TIMEOUT``."""
        assert self._reader is not None
        deadline = time.monotonic() + CLOSE_TIMEOUT
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                got = self._reader.read(remaining)
            except (frames.FrameError, frames.ConnectionClosed):
                return
            if got is None or got[0] == frames.OPCODE_CLOSE:
                return
