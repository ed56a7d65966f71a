"""One LiveQuery subscription on its own WebSocket (websocket-client, gevent-friendly once patched).

``connect`` with the app id and master key, then ``subscribe`` with a ``where`` built from the
interface's filter; row events (``create``, ``update``, ``delete``, ``enter``, ``leave``) become
``Change``s. Parse's LiveQuery has no sequence numbers, no resume and no initial snapshot: a
resubscription after a disconnect starts from now, and whatever changed while away is not sent.
The server pings every 10 s and drops a client that does not answer; websocket-client answers
pings while ``recv`` reads, so a listener that keeps calling ``recv`` stays connected.
"""

from __future__ import annotations

import collections
import time
from typing import Any

import orjson
import websocket

from harness.targets.base import Change, Disconnected, Eq, Schema, TargetError
from harness.targets.parse import wire

__all__ = ["ParseListener"]

REQUEST_ID = 1  # one subscription per connection
CLOSE_TIMEOUT = 1.0


class ParseListener:
    """A LiveQuery client with one subscription; ``recv`` returns its row events one at a time."""

    def __init__(self, ws_url: str, app_id: str, master_key: str, schema: Schema, timeout: float) -> None:
        self._url = ws_url
        self._app_id = app_id
        self._master_key = master_key
        self._schema = schema
        self._timeout = timeout
        self._ws: websocket.WebSocket | None = None
        self._client_id: Any = None
        self._subscribed = False
        self._closed = False
        self._dead: Disconnected | None = None
        self._buffer: collections.deque[Change] = collections.deque()

    @property
    def subscription_id(self) -> str | None:
        """``<clientId>:<requestId>``, once subscribed."""
        return f"{self._client_id}:{REQUEST_ID}" if self._subscribed else None

    @property
    def last_seq(self) -> int | None:
        """Always None: LiveQuery events carry no sequence number to resume from."""
        return None

    @property
    def replayed(self) -> bool:
        """Always False: a subscription never resumes, so nothing missed is replayed."""
        return False

    def subscribe(self, filter: Eq | None = None, resume_from: int | None = None, snapshot: bool = False) -> None:
        """Connect and subscribe to the rows matching ``filter``; returns once the server says ``subscribed``.

        ``resume_from`` cannot be honoured (there is no resume point): the subscription starts
        from now. ``snapshot`` is refused, as LiveQuery sends no current rows.
        """
        if self._subscribed or self._closed:
            raise TargetError("this listener is already subscribed or closed; open a new one")
        if snapshot:
            raise TargetError("Parse LiveQuery sends no initial snapshot of the matching rows")
        try:
            self._open()
            self._send({"op": "connect", "applicationId": self._app_id, "masterKey": self._master_key})
            connected = self._await("connected")
            self._client_id = connected.get("clientId")
            query = {"className": wire.class_name(self._schema), "where": wire.where_of(filter)}
            self._send({"op": "subscribe", "requestId": REQUEST_ID, "query": query})
            self._await("subscribed")
            self._subscribed = True
        except TargetError:
            self.close()
            raise

    def _open(self) -> None:
        try:
            self._ws = websocket.create_connection(
                self._url, timeout=self._timeout, enable_multithread=True, skip_utf8_validation=True
            )
        except websocket.WebSocketBadStatusException as exc:
            raise TargetError(f"websocket upgrade refused at {self._url}: HTTP {exc.status_code}") from None
        except (OSError, websocket.WebSocketException) as exc:
            raise TargetError(f"cannot open websocket {self._url}: {type(exc).__name__}: {exc}") from None

    def _send(self, msg: dict[str, Any]) -> None:
        assert self._ws is not None
        try:
            self._ws.settimeout(self._timeout)
            self._ws.send(orjson.dumps(msg).decode())
        except (OSError, websocket.WebSocketException) as exc:
            self._lost(f"send failed: {type(exc).__name__}: {exc}")
            raise self._dead from None  # type: ignore[misc]

    def _await(self, op: str) -> dict[str, Any]:
        """Read until the server's ``op`` reply; an ``error`` frame or the timeout is a TargetError."""
        deadline = time.monotonic() + self._timeout
        while (remaining := deadline - time.monotonic()) > 0:
            got = self._read(remaining)
            if got is None:
                continue
            msg = got[0]
            if msg.get("op") == op:
                return msg
            if msg.get("op") == "error":
                raise TargetError(f"LiveQuery refused {op!r}: code {msg.get('code')}: {msg.get('error')}")
        raise TargetError(f"no LiveQuery {op!r} reply within {self._timeout:g}s")

    def _lost(self, reason: str, expected: bool = False) -> None:
        if self._dead is None:
            self._dead = Disconnected(reason, expected=expected)
        if self._ws is not None:
            try:
                self._ws.shutdown()
            except (OSError, websocket.WebSocketException):
                pass

    def _read(self, timeout: float) -> tuple[dict[str, Any], int, int] | None:
        """One JSON frame (message, received_ns, bytes), or None after ``timeout``; Disconnected when it ends."""
        if self._dead is not None:
            raise self._dead
        assert self._ws is not None
        try:
            self._ws.settimeout(max(timeout, 0.001))
            opcode, frame = self._ws.recv_data_frame(control_frame=True)
        except websocket.WebSocketTimeoutException:
            return None
        except (OSError, websocket.WebSocketException) as exc:
            self._lost(f"connection lost: {type(exc).__name__}: {exc}")
            raise self._dead from None  # type: ignore[misc]
        received = time.time_ns()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            data = frame.data or b""
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
            self._lost(f"closed by server: {code} {data[2:].decode('utf-8', 'replace')}".rstrip())
            raise self._dead from None  # type: ignore[misc]
        if opcode != websocket.ABNF.OPCODE_TEXT:
            return None  # pings (answered by websocket-client) and pongs
        try:
            msg = orjson.loads(frame.data)
        except orjson.JSONDecodeError:
            self._lost("server sent a frame that is not JSON")
            raise self._dead from None  # type: ignore[misc]
        return (msg, received, len(frame.data)) if isinstance(msg, dict) else None

    def recv(self, timeout: float) -> Change | None:
        """Next row event, None after ``timeout`` s; a server ``error`` frame ends the connection (Disconnected)."""
        if not self._subscribed:
            raise TargetError("recv before subscribe")
        deadline = time.monotonic() + timeout
        while not self._buffer:
            got = self._read(max(0.0, deadline - time.monotonic()))
            if got is not None:
                msg, received, size = got
                if msg.get("op") == "error":
                    self._lost(f"LiveQuery error: code {msg.get('code')}: {msg.get('error')}")
                    raise self._dead from None  # type: ignore[misc]
                if msg.get("requestId") == REQUEST_ID and (change := wire.change_of(msg, self._schema, received, size)):
                    self._buffer.append(change)
            elif time.monotonic() >= deadline:
                return None
        return self._buffer.popleft()

    def close(self) -> None:
        """Close with code 1000 (waiting at most a second for the echo); later recv calls raise Disconnected."""
        self._closed = True
        if self._ws is not None and self._dead is None:
            try:
                self._ws.close(status=websocket.STATUS_NORMAL, timeout=CLOSE_TIMEOUT)
            except (OSError, websocket.WebSocketException):
                pass
        self._lost("closed by client", expected=True)
