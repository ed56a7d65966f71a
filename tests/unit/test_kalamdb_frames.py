"""The listener's frame reader: whole messages from chunked bytes, fragments, control frames, bad framing, backlog."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterator

import pytest

from harness.orchestration.benchfeed import server_frame
from harness.targets.kalamdb.frames import (
    OPCODE_BINARY,
    OPCODE_CLOSE,
    OPCODE_PING,
    OPCODE_TEXT,
    ConnectionClosed,
    FrameError,
    FrameReader,
)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def _fragment(payload: bytes, opcode: int, fin: bool) -> bytes:
    return struct.pack("!BB", (0x80 if fin else 0) | opcode, len(payload)) + payload


def test_many_frames_of_each_length_form_from_one_read_and_from_bytes_split_anywhere(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    payloads = [b"x" * n for n in (300, 0, 1, 125, 126, 65535, 65536)]
    blob = b"".join(server_frame(p) for p in payloads)
    reader = FrameReader(client, 1 << 20)
    cut = 3  # a frame's header split from its length and payload
    server.sendall(blob[:cut])
    assert reader.read(0.05) is None  # not a whole frame yet
    server.sendall(blob[cut:])
    got: list[tuple[int, bytes]] = []
    while len(got) < len(payloads):
        message = reader.read(1.0)
        assert message is not None
        got.append(message)
    assert got == [(OPCODE_TEXT, p) for p in payloads]
    assert reader.read(None) is None  # nothing buffered, and no socket call


def test_fragments_are_joined_and_control_frames_between_them_come_first(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    server, client = pair
    server.sendall(
        _fragment(b"ab", OPCODE_BINARY, False)
        + _fragment(b"ping", OPCODE_PING, True)
        + _fragment(b"cd", 0x0, False)
        + _fragment(b"ef", 0x0, True)
        + _fragment(b"\x03\xe8bye", OPCODE_CLOSE, True)
    )
    reader = FrameReader(client, 1 << 20)
    assert reader.read(1.0) == (OPCODE_PING, b"ping")
    assert reader.read(1.0) == (OPCODE_BINARY, b"abcdef")
    assert reader.read(1.0) == (OPCODE_CLOSE, b"\x03\xe8bye")


@pytest.mark.parametrize(
    "frame, why",
    [
        (struct.pack("!BB", 0x81, 0x80 | 2) + b"\0\0\0\0ab", "masked"),
        (struct.pack("!BB", 0xC1, 2) + b"ab", "reserved bits"),
        (struct.pack("!BB", 0x83, 0), "reserved opcode"),
        (struct.pack("!BB", 0x80, 1) + b"a", "continuation frame without"),
        (struct.pack("!BB", 0x09, 1) + b"a", "control frame"),
        (struct.pack("!BBH", 0x81, 126, 2000), "over 1000"),
    ],
    ids=["masked", "rsv", "opcode", "orphan-continuation", "fragmented-control", "too-large"],
)
def test_broken_framing_is_a_frame_error(pair: tuple[socket.socket, socket.socket], frame: bytes, why: str) -> None:
    server, client = pair
    server.sendall(frame)
    with pytest.raises(FrameError, match=why):
        FrameReader(client, 1000).read(1.0)


def test_a_peer_that_closes_the_socket_ends_the_reader(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    server.close()
    with pytest.raises(ConnectionClosed):
        FrameReader(client, 1000).read(1.0)


def test_backlog_counts_buffered_and_kernel_held_bytes(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    reader = FrameReader(client, 1 << 20)
    assert reader.backlog() == 0
    frames = [server_frame(b"y" * 100) for _ in range(3)]
    server.sendall(b"".join(frames))  # a socket pair queues them at once: FIONREAD sees them
    assert reader.backlog() == 3 * len(frames[0])
    assert reader.read(1.0) == (OPCODE_TEXT, b"y" * 100)  # one read takes all three into the buffer
    assert reader.backlog() == 2 * len(frames[0])
    client.close()
    assert reader.backlog() == 2 * len(frames[0])  # a closed socket: the buffer is all that is left
