"""The fault proxy against a local echo peer on loopback: each fault does what it says, and only while it lasts.

Timing is only ever asserted as a generous one-sided bound (held at least this long), never as
an upper bound, so a loaded machine cannot make these tests flaky.
"""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from harness.errors import HarnessError
from harness.nemesis import Fault, FaultProxy

BIG = 4000  # bytes the peer sends at once when asked with b"BIG"


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(b"x" * BIG if data == b"BIG" else data)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@pytest.fixture
def echo() -> Iterator[int]:
    server = _Server(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(echo: int) -> Iterator[FaultProxy]:
    with FaultProxy("127.0.0.1", echo, ["L1", "L2"], seed=1) as p:
        yield p


def _connect(proxy: FaultProxy, route: str = "L1") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port(route)), timeout=5)
    sock.settimeout(5)
    return sock


def _roundtrip(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    return got


def _dead(sock: socket.socket) -> bool:
    """True when the socket was reset or closed by the other side (within its timeout)."""
    try:
        sock.sendall(b"after")
        return sock.recv(10) == b""
    except TimeoutError:
        return False  # alive and silent
    except OSError:  # reset, broken pipe, aborted: the other side is gone
        return True


def test_passes_bytes_through_untouched(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        assert _roundtrip(sock, b"hello") == b"hello"
    assert proxy.stats()["L1"]["s2c"]["bytes"] == 5


def test_outage_resets_connections_and_refuses_new_ones_until_it_ends(proxy: FaultProxy) -> None:
    sock = _connect(proxy)
    assert _roundtrip(sock, b"a") == b"a"
    proxy.begin(1, Fault.OUTAGE, {}, ["L1"])
    assert _dead(sock)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", proxy.port("L1")), timeout=5)
    with _connect(proxy, "L2") as other:  # another route is untouched
        assert _roundtrip(other, b"b") == b"b"
    counts = proxy.end(1)
    assert counts["connections_cut"] == 1
    with _connect(proxy) as again:
        assert _roundtrip(again, b"c") == b"c"
    sock.close()


def test_latency_holds_each_chunk_at_least_its_delay_and_keeps_order(proxy: FaultProxy) -> None:
    proxy.begin(1, Fault.LATENCY, {"ms": 80.0, "jitter_ms": 40.0}, ["L1"])
    with _connect(proxy) as sock:
        t0 = time.monotonic()
        assert _roundtrip(sock, b"ping") == b"ping"
        assert time.monotonic() - t0 >= 2 * 0.040  # there and back, each at least ms - jitter
        message = b"".join(b"%03d" % i for i in range(60))
        for i in range(60):  # small separate writes: jitter must not reorder them
            sock.sendall(b"%03d" % i)
            time.sleep(0.002)
        got = b""
        while len(got) < len(message):
            got += sock.recv(65536)
        assert got == message
    counts = proxy.end(1)
    assert counts["s2c"]["chunks"] >= 2 and counts["s2c"]["max_hold_ms"] >= 40.0


def test_bandwidth_cap_paces_the_bytes(proxy: FaultProxy) -> None:
    proxy.begin(1, Fault.BANDWIDTH, {"bytes_per_second": 100_000.0}, ["L1"])
    payload = b"y" * 50_000
    with _connect(proxy) as sock:
        t0 = time.monotonic()
        assert _roundtrip(sock, payload) == payload
        assert time.monotonic() - t0 >= 0.8 * len(payload) / 100_000
    assert proxy.end(1)["c2s"]["bytes"] == len(payload)


def test_reset_mid_frame_cuts_the_next_chunk_from_the_target(proxy: FaultProxy) -> None:
    sock = _connect(proxy)
    assert _roundtrip(sock, b"a") == b"a"
    proxy.begin(1, Fault.RESET_MID_FRAME, {}, ["L1"])
    sock.sendall(b"BIG")
    got = b""
    with pytest.raises(ConnectionResetError):
        while chunk := sock.recv(65536):
            got += chunk
        raise ConnectionResetError("closed without a reset")  # a FIN instead of a RST fails the test
    assert 0 < len(got) < BIG
    counts = proxy.end(1)
    assert counts["resets_mid_frame"] == 1
    with _connect(proxy) as again:  # the window is over: frames arrive whole
        again.sendall(b"BIG")
        got = b""
        while len(got) < BIG:
            got += again.recv(65536)
        assert len(got) == BIG
    sock.close()


def test_half_open_forwards_nothing_closes_nothing_then_resumes(proxy: FaultProxy) -> None:
    with _connect(proxy) as sock:
        assert _roundtrip(sock, b"a") == b"a"
        proxy.begin(1, Fault.HALF_OPEN, {}, ["L1"])
        sock.sendall(b"held")
        sock.settimeout(0.5)
        with pytest.raises(TimeoutError):
            sock.recv(10)  # no data and no close: the connection looks alive
        proxy.end(1)
        sock.settimeout(5)
        assert sock.recv(10) == b"held"


def test_partition_of_one_listener_leaves_the_others_and_resets_it_when_it_heals(proxy: FaultProxy) -> None:
    cut, other = _connect(proxy, "L1"), _connect(proxy, "L2")
    proxy.begin(1, Fault.PARTITION, {}, ["L1"])
    cut.sendall(b"lost")
    cut.settimeout(0.5)
    with pytest.raises(TimeoutError):
        cut.recv(10)
    held = socket.create_connection(("127.0.0.1", proxy.port("L1")), timeout=5)  # accepted, never answered
    held.sendall(b"nobody")
    held.settimeout(0.5)
    with pytest.raises(TimeoutError):
        held.recv(10)
    assert _roundtrip(other, b"fine") == b"fine"
    counts = proxy.end(1)
    assert counts["connections_cut"] == 2 and counts["c2s"]["dropped_bytes"] >= len(b"lost")
    cut.settimeout(5)
    held.settimeout(5)
    assert _dead(cut) and _dead(held)
    with _connect(proxy, "L1") as again:
        assert _roundtrip(again, b"back") == b"back"
    for sock in (cut, other, held):
        sock.close()


def test_unknown_route_is_a_one_line_error(proxy: FaultProxy) -> None:
    with pytest.raises(HarnessError, match="no route 'L9'"):
        proxy.begin(1, Fault.OUTAGE, {}, ["L9"])


def test_a_target_that_is_not_there_resets_the_client() -> None:
    with FaultProxy("127.0.0.1", _closed_port(), ["L1"]) as nowhere:
        try:
            sock = _connect(nowhere)
        except ConnectionResetError:
            return  # reset before the handshake was even seen as done: as good
        with sock:
            assert _dead(sock)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
