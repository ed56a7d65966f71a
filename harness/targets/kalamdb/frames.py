"""Server WebSocket frames read from the socket in large chunks: the listener's receive path.

websocket-client reads every frame with three socket calls (header, length, payload), each a
gevent switch and a syscall; under a stream of small change frames that was a quarter of a
listener's CPU. ``FrameReader`` reads whatever the socket holds (up to ``CHUNK`` bytes) into one
buffer and cuts frames out of it, so a burst of frames costs one call. websocket-client still
opens the connection (handshake, subprotocol) and sends; once a reader owns a socket nothing
else may read from it. ``backlog`` is what the client has received and not yet processed: bytes
in the buffer plus bytes the kernel holds for the socket (``FIONREAD``), the receive backlog the
generator samples beside its loop lag.
"""

from __future__ import annotations

import fcntl
import struct
import termios
import time
from typing import Any

__all__ = [
    "CHUNK",
    "OPCODE_BINARY",
    "OPCODE_CLOSE",
    "OPCODE_PING",
    "OPCODE_PONG",
    "OPCODE_TEXT",
    "ConnectionClosed",
    "FrameError",
    "FrameReader",
]

CHUNK = 256 * 1024  # bytes asked of the socket per read
OPCODE_CONT, OPCODE_TEXT, OPCODE_BINARY = 0x0, 0x1, 0x2
OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG = 0x8, 0x9, 0xA
DATA_OPCODES = frozenset({OPCODE_TEXT, OPCODE_BINARY})
CONTROL_OPCODES = frozenset({OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG})
MIN_WAIT = 0.001  # a zero timeout still polls the socket once
_FIONREAD = termios.FIONREAD
_COUNT = struct.Struct("i")


class FrameError(Exception):
    """The server broke the framing rules of RFC 6455 (a masked frame, reserved bits, a bad continuation)."""


class ConnectionClosed(Exception):
    """The peer closed the TCP connection (a read returned no bytes)."""


class FrameReader:
    """Complete server messages from ``sock``: data frames reassembled from fragments, control frames as sent.

    ``max_bytes`` bounds one message; a larger one is a ``FrameError`` (the caller's frame limit
    still applies to what it decodes).
    """

    __slots__ = ("_buf", "_pos", "_sock", "_parts", "_part_op", "_parts_len", "max_bytes")

    def __init__(self, sock: Any, max_bytes: int) -> None:
        self._sock = sock
        self._buf = bytearray()
        self._pos = 0
        self._parts: list[bytes] = []
        self._part_op = 0
        self._parts_len = 0
        self.max_bytes = max_bytes

    def read(self, timeout: float | None) -> tuple[int, bytes] | None:
        """The next message as (opcode, payload), or None when none is complete within ``timeout`` s.

        With ``timeout`` None only what is already buffered is looked at (no socket call).
        Raises ``FrameError``, ``ConnectionClosed`` or the socket's ``OSError``.
        """
        got = self._cut()
        if got is not None or timeout is None:
            return got
        deadline = time.monotonic() + timeout
        wait = max(timeout, MIN_WAIT)
        while True:
            if not self._fill(wait):
                return None
            got = self._cut()
            if got is not None:
                return got
            wait = deadline - time.monotonic()
            if wait <= 0:
                return None

    def backlog(self) -> int:
        """Bytes received and not yet handed out: the buffer's rest plus what the kernel holds for the socket."""
        pending = len(self._buf) - self._pos + self._parts_len
        try:
            fd = self._sock.fileno()
            if fd >= 0:
                pending += _COUNT.unpack(fcntl.ioctl(fd, _FIONREAD, b"\0\0\0\0"))[0]
        except (OSError, ValueError, AttributeError):
            pass  # a closed socket: only the buffer is left
        return pending

    def _fill(self, wait: float) -> bool:
        """Read what the socket holds (waiting up to ``wait`` s); False on a timeout."""
        buf = self._buf
        if self._pos:
            del buf[: self._pos]
            self._pos = 0
        self._sock.settimeout(wait)
        try:
            data = self._sock.recv(CHUNK)
        except TimeoutError:  # socket.timeout, gevent's too
            return False
        if not data:
            raise ConnectionClosed("connection closed without a close frame")
        buf += data
        return True

    def _cut(self) -> tuple[int, bytes] | None:
        """The next complete message in the buffer, if there is one."""
        while True:
            frame = self._frame()
            if frame is None:
                return None
            fin, opcode, payload = frame
            if opcode in CONTROL_OPCODES:
                if not fin or len(payload) > 125:
                    raise FrameError(f"control frame {opcode:#x} fragmented or over 125 bytes")
                return opcode, payload
            if opcode == OPCODE_CONT:
                if not self._parts:
                    raise FrameError("continuation frame without a message to continue")
                self._add_part(payload)
                if fin:
                    op, parts = self._part_op, self._parts
                    self._parts, self._parts_len = [], 0
                    return op, b"".join(parts)
                continue
            if opcode not in DATA_OPCODES:
                raise FrameError(f"reserved opcode {opcode:#x}")
            if self._parts:
                raise FrameError("new data frame inside a fragmented message")
            if fin:
                return opcode, payload
            self._part_op = opcode
            self._add_part(payload)

    def _add_part(self, payload: bytes) -> None:
        self._parts.append(payload)
        self._parts_len += len(payload)
        if self._parts_len > self.max_bytes:
            raise FrameError(f"fragmented message over {self.max_bytes} bytes")

    def _frame(self) -> tuple[bool, int, bytes] | None:
        """(fin, opcode, payload) of the next whole frame in the buffer, None when it is not all there."""
        buf, pos = self._buf, self._pos
        avail = len(buf) - pos
        if avail < 2:
            return None
        b0, b1 = buf[pos], buf[pos + 1]
        if b0 & 0x70:
            raise FrameError("reserved bits set (no extension was negotiated)")
        if b1 & 0x80:
            raise FrameError("masked frame from the server")
        n = b1 & 0x7F
        head = 2
        if n == 126:
            if avail < 4:
                return None
            n = buf[pos + 2] << 8 | buf[pos + 3]
            head = 4
        elif n == 127:
            if avail < 10:
                return None
            n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            head = 10
        if n > self.max_bytes:
            raise FrameError(f"frame of {n} bytes over {self.max_bytes}")
        end = pos + head + n
        if len(buf) < end:
            return None
        payload = bytes(buf[pos + head : end])
        self._pos = end
        return bool(b0 & 0x80), b0 & 0x0F, payload
