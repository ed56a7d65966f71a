"""A sender that is never the bottleneck, for the harness's own benchmark: a fake KalamDB on loopback.

It speaks just enough of the KalamDB v1 protocol for the harness's driver: canned HTTP replies
(login, SQL) on keep-alive connections, and ``/v1/ws`` with ``auth_success`` and
``subscription_ack``. After that it feeds change notifications of the harness's message row in
one of three ways (``Feed.mode``):

- ``burst``: each subscription gets ``count`` pre-encoded frames written as fast as the socket
  takes them (listener ingest);
- ``paced``: once ``expect`` subscriptions are up, ``rate`` changes/s, each encoded once and written
  to every subscription, stamped ``sent_at = now - delay`` (latency and fan-in);
- ``idle``: nothing (connection capacity).

Raw asyncio protocols under uvloop, with frames built by hand, keep its cost per frame far below
the harness's. It runs in its own process (``serve``), reporting its port on a queue.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct
import time
from dataclasses import dataclass
from typing import Any

import orjson

from harness.delivery.identity import COLUMNS, insert_row
from harness.targets.base import ColumnType, Schema, TableKind

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SEQ_EPOCH_MS = 1_704_067_200_000
TOKEN = "bench-token"
LOGIN_BODY = orjson.dumps({"access_token": TOKEN, "expires_at": "2099-01-01T00:00:00+00:00"})
SQL_BODY = orjson.dumps({"status": "success", "results": [{"row_count": 1}], "took": 0.1})
SCHEMA = Schema("bench", "messages", COLUMNS, TableKind.SHARED)  # the table the fed rows belong to
BIGINT_COLUMNS = frozenset(c.name for c in COLUMNS if c.type is ColumnType.INT64)
HIGH_WATER = 1 << 20  # bytes buffered per socket before the feed waits for it to drain


@dataclass(frozen=True)
class Feed:
    """What the sender does once a subscription is up (see the module docstring)."""

    mode: str  # burst | paced | idle
    count: int = 0  # burst: frames per subscription; paced: changes in all
    rate: float = 0.0  # paced: changes per second
    delay_ms: float = 0.0  # paced: injected delay, subtracted from sent_at
    expect: int = 1  # paced: subscriptions to wait for before the first change
    payload_bytes: int = 200


def server_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One unmasked server WebSocket frame."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def change_frame(sub_id: str, writer: int, wseq: int, sent_at_us: int, payload_bytes: int, seq: int) -> bytes:
    """One ``change`` insert of the harness's message row, BIGINTs as JSON strings as KalamDB sends them."""
    row: dict[str, Any] = {
        k: str(v) if k in BIGINT_COLUMNS else v
        for k, v in insert_row(writer, 1, wseq, wseq, sent_at_us, payload_bytes).items()
    }
    row["_seq"] = str(seq)
    msg = {"type": "change", "subscription_id": sub_id, "change_type": "insert", "rows": [row]}
    return server_frame(orjson.dumps(msg))


def snowflake(now_ms: int, n: int) -> int:
    """A ``_seq`` that grows with time and ``n``."""
    return (now_ms - SEQ_EPOCH_MS) << 22 | (n & 0x3FFFFF)


class Sender:
    """The connections and the feed shared by them."""

    def __init__(self, feed: Feed) -> None:
        self.feed = feed
        self.subs: list[Conn] = []
        self.all_up = asyncio.Event()
        self.done = asyncio.Event()

    def subscribed(self, conn: Conn) -> None:
        self.subs.append(conn)
        if self.feed.mode == "burst":
            asyncio.get_running_loop().create_task(self.burst(conn))
        elif len(self.subs) >= self.feed.expect:
            self.all_up.set()

    async def burst(self, conn: Conn) -> None:
        """``count`` frames, pre-encoded in chunks, written as fast as the socket drains."""
        now_us = time.time_ns() // 1000
        sent = 0
        while sent < self.feed.count and not conn.closed:
            n = min(512, self.feed.count - sent)
            base = sent + 1
            blob = b"".join(
                change_frame(
                    conn.sub_id,
                    1,
                    base + i,
                    now_us,
                    self.feed.payload_bytes,
                    snowflake(now_us // 1000, base + i),
                )
                for i in range(n)
            )
            await conn.write(blob)
            sent += n

    async def paced(self) -> None:
        """``count`` changes at ``rate``/s to every subscription, stamped ``delay_ms`` in the past."""
        await self.all_up.wait()
        await asyncio.sleep(0.5)  # let the listeners settle into their receive loops
        feed = self.feed
        start = time.perf_counter()
        for n in range(1, feed.count + 1):
            due = start + (n - 1) / feed.rate
            wait = due - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)
            now_us = time.time_ns() // 1000
            sent_at = now_us - int(feed.delay_ms * 1000)
            seq = snowflake(now_us // 1000, n)
            for conn in self.subs:
                if not conn.closed:
                    conn.transport.write(change_frame(conn.sub_id, 1, n, sent_at, feed.payload_bytes, seq))
        self.done.set()


class Conn(asyncio.Protocol):
    """One client connection: HTTP requests until a WebSocket upgrade, then client frames."""

    def __init__(self, sender: Sender) -> None:
        self.sender = sender
        self.buf = bytearray()
        self.ws = False
        self.sub_id = ""
        self.closed = False
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self._drained: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's TCPTransport, not a subclass
        self.transport.set_write_buffer_limits(high=HIGH_WATER)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)

    def pause_writing(self) -> None:
        self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    async def write(self, data: bytes) -> None:
        """Write, then wait while the socket's buffer is above its high-water mark."""
        self.transport.write(data)
        if self._drained is not None:
            await self._drained

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while not self.closed and (self._ws_frame() if self.ws else self._http_request()):
            pass

    def _http_request(self) -> bool:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return False
        head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in head[1:])}
        length = int(headers.get("content-length", "0"))
        if len(self.buf) < end + 4 + length:
            return False
        del self.buf[: end + 4 + length]
        path = head[0].split(" ")[1]
        if headers.get("upgrade", "").lower() == "websocket":
            accept = base64.b64encode(hashlib.sha1(headers["sec-websocket-key"].encode() + WS_GUID).digest())
            self.transport.write(
                b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            )
            self.ws = True
            return True
        body = LOGIN_BODY if path.endswith("/auth/login") else SQL_BODY
        self.transport.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        return True

    def _ws_frame(self) -> bool:
        buf = self.buf
        if len(buf) < 2:
            return False
        opcode, n = buf[0] & 0x0F, buf[1] & 0x7F
        at = 2
        if n == 126:
            if len(buf) < 4:
                return False
            n, at = struct.unpack_from("!H", buf, 2)[0], 4
        elif n == 127:
            if len(buf) < 10:
                return False
            n, at = struct.unpack_from("!Q", buf, 2)[0], 10
        if len(buf) < at + 4 + n:
            return False
        mask = bytes(buf[at : at + 4])
        raw = bytes(buf[at + 4 : at + 4 + n])
        del buf[: at + 4 + n]
        payload = _unmask(raw, mask)
        if opcode == 0x8:
            self.transport.write(server_frame(payload[:2], 0x8))
            self.transport.close()
            self.closed = True
        elif opcode == 0x9:
            self.transport.write(server_frame(payload, 0xA))
        elif opcode == 0x1:
            self._message(orjson.loads(payload))
        return True

    def _message(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind == "authenticate":
            reply: dict[str, Any] = {"type": "auth_success", "user_id": "bench", "role": "user"}
        elif kind == "subscribe":
            self.sub_id = str(msg["subscription"]["id"])
            reply = {
                "type": "subscription_ack",
                "subscription_id": self.sub_id,
                "total_rows": 0,
                "batch_control": {"has_more": False},
                "schema": [],
            }
        else:
            return
        self.transport.write(server_frame(orjson.dumps(reply)))
        if kind == "subscribe":
            self.sender.subscribed(self)


def _unmask(raw: bytes, mask: bytes) -> bytes:
    """A client frame's payload: ``raw`` XOR the repeated 4-byte ``mask``."""
    key = int.from_bytes((mask * (len(raw) // 4 + 1))[: len(raw)], "little")
    return (int.from_bytes(raw, "little") ^ key).to_bytes(len(raw), "little")


def serve(feed: Feed, out: Any, stop: Any) -> None:
    """Process entry point: listen on a free loopback port, put it on ``out``, run until ``stop`` is set."""
    import uvloop

    async def main() -> None:
        sender = Sender(feed)
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: Conn(sender), "127.0.0.1", 0, backlog=4096)
        out.put(server.sockets[0].getsockname()[1])
        if feed.mode == "paced":
            loop.create_task(sender.paced())
        while not await loop.run_in_executor(None, stop.wait, 0.5):
            pass
        server.close()

    uvloop.run(main())
