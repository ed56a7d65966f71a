"""Bounds on slow clients below HTTP: a connection must send its first request head in time.

aiohttp bounds the size of a request head and the idle time between requests, but not the time a
client may take to send the head byte by byte (slowloris): each such client would hold a socket
and a handler forever. ``HeadDeadline`` wraps the server's protocol factory; a connection that has
not sent a complete head (``\\r\\n\\r\\n``) within ``seconds`` of connecting is aborted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("lqrefserver.guard")

_HEAD_END = b"\r\n\r\n"


class _Guarded(asyncio.Protocol):
    """A protocol that passes every event to the server's own, and aborts a connection whose head is late."""

    def __init__(self, inner: asyncio.Protocol, seconds: float, on_abort: Callable[[], None]) -> None:
        self.inner = inner
        self.seconds = seconds
        self.on_abort = on_abort
        self.tail = b""  # the last bytes seen before the head's end, to find an end split across reads
        self.timer: asyncio.TimerHandle | None = None
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # uvloop's transports are not asyncio.Transport subclasses
        self.timer = asyncio.get_running_loop().call_later(self.seconds, self._expire)
        self.inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self.timer is not None:
            if _HEAD_END in self.tail + data:
                self.timer.cancel()
                self.timer = None
            else:
                self.tail = (self.tail + data)[-3:]
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    def _expire(self) -> None:
        self.timer = None
        if self.transport is not None and not self.transport.is_closing():
            peer = self.transport.get_extra_info("peername")
            log.info("connection from %s: no request head within %.1f s, closed", peer, self.seconds)
            self.on_abort()
            self.transport.abort()


class HeadDeadline:
    """A protocol factory around ``factory`` whose connections must send a request head within ``seconds``."""

    def __init__(self, factory: Callable[[], Any], seconds: float) -> None:
        self.factory = factory
        self.seconds = seconds
        self.aborted = 0  # connections closed for a late head

    def __call__(self) -> asyncio.Protocol:
        return _Guarded(self.factory(), self.seconds, self._count)

    def _count(self) -> None:
        self.aborted += 1
