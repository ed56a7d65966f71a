"""The fault proxy: TCP on 127.0.0.1 between the harness and any target, one port per route.

Each route (one per listener, one for the writers) listens on its own loopback port and forwards
every connection to the target, so a fault can touch some listeners and not others. The proxy is
protocol-blind: it moves byte chunks, which is why it works for any target. It runs an asyncio
loop in a thread of its own; ``begin`` and ``end`` switch a fault on and off from any thread.

Mechanics of each fault while its window is open, on the routes it names:

* outage: the route stops listening (new connections are refused) and every connection is reset;
* latency: each chunk is held ``ms`` +- ``jitter_ms`` (uniform) in each direction, order kept;
* bandwidth: each direction of each connection is paced to ``bytes_per_second``;
* reset-mid-frame: the next chunk from the target is cut in half, the half sent, then both sides reset;
* half-open: nothing is read or forwarded either way and nothing is closed; forwarding resumes after;
* partition: traffic is read and dropped, new connections are accepted and never answered; at the end
  of the window every connection that lost data is reset (its stream is no longer whole).

Every loop is bounded: chunks of at most ``CHUNK`` bytes, at most ``QUEUE_CHUNKS`` queued per
direction (the reader waits when the queue is full), at most ``MAX_CONNECTIONS`` per route.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
import time
from collections.abc import Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from harness.errors import HarnessError
from harness.nemesis.schedule import Fault

CHUNK = 65536
QUEUE_CHUNKS = 64
MAX_CONNECTIONS = 512
CONNECT_TIMEOUT = 10.0
CALL_TIMEOUT = 10.0
PACE_SLICES = 20  # a paced chunk goes out in pieces of at most 1/PACE_SLICES s of the cap
LAG_PERIOD = 0.02  # seconds between the wake-ups that measure the proxy's own loop lateness
C2S, S2C = "c2s", "s2c"  # directions: client (harness) to server (target), and back


@dataclass
class Flow:
    """What one direction of one route carried: chunks, bytes, and how long the proxy held them."""

    chunks: int = 0
    bytes: int = 0
    dropped_bytes: int = 0
    max_hold_ms: float = 0.0
    total_hold_ms: float = 0.0

    def held(self, size: int, hold_ms: float) -> None:
        self.chunks += 1
        self.bytes += size
        self.total_hold_ms += hold_ms
        self.max_hold_ms = max(self.max_hold_ms, hold_ms)

    def to_dict(self) -> dict[str, Any]:
        mean = self.total_hold_ms / self.chunks if self.chunks else 0.0
        return {
            "chunks": self.chunks,
            "bytes": self.bytes,
            "dropped_bytes": self.dropped_bytes,
            "max_hold_ms": round(self.max_hold_ms, 3),
            "mean_hold_ms": round(mean, 3),
        }


@dataclass
class WindowCounts:
    """What one fault window did: connections cut, chunks cut mid-frame, bytes dropped, how long chunks were held."""

    connections_cut: int = 0
    resets_mid_frame: int = 0
    flows: dict[str, Flow] = field(default_factory=lambda: {C2S: Flow(), S2C: Flow()})

    def to_dict(self) -> dict[str, Any]:
        return {
            "connections_cut": self.connections_cut,
            "resets_mid_frame": self.resets_mid_frame,
            **{direction: flow.to_dict() for direction, flow in self.flows.items()},
        }


@dataclass
class _Active:
    fault: Fault
    params: Mapping[str, float]
    counts: WindowCounts


class _Conn:
    """One proxied connection: the client side, the upstream side once connected, the task serving it."""

    def __init__(self, client: asyncio.StreamWriter, task: asyncio.Task[Any] | None) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.task = task
        self.lost_data = False  # a partition dropped some of its bytes: reset when the partition ends

    def abort(self) -> None:
        """Reset both sides (RST, not FIN) and stop the task serving them."""
        for writer in (self.client, self.upstream):
            if writer is None or writer.transport.is_closing():
                continue
            sock = writer.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            writer.transport.abort()
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()


class _Route:
    """One listening port forwarding to the target, and the faults now active on it."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = 0
        self.server: asyncio.base_events.Server | None = None
        self.conns: set[_Conn] = set()
        self.active: dict[int, _Active] = {}
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.flows = {C2S: Flow(), S2C: Flow()}

    def has(self, fault: Fault) -> bool:
        return any(a.fault is fault for a in self.active.values())

    def delay(self, rng: random.Random) -> float:
        """Seconds to hold a chunk arriving now (the sum of the active latency faults)."""
        total = 0.0
        for a in self.active.values():
            if a.fault is Fault.LATENCY:
                jitter = a.params.get("jitter_ms", 0.0)
                total += max(0.0, a.params.get("ms", 0.0) + rng.uniform(-jitter, jitter)) / 1000.0
        return total

    def rate(self) -> float | None:
        """The tightest active bandwidth cap in bytes per second, or None."""
        caps = [a.params["bytes_per_second"] for a in self.active.values() if a.fault is Fault.BANDWIDTH]
        return min(caps) if caps else None

    def held(self, direction: str, size: int, hold_ms: float) -> None:
        self.flows[direction].held(size, hold_ms)
        for a in self.active.values():
            a.counts.flows[direction].held(size, hold_ms)

    def dropped(self, direction: str, size: int) -> None:
        self.flows[direction].dropped_bytes += size
        for a in self.active.values():
            a.counts.flows[direction].dropped_bytes += size


class FaultProxy:
    """Loopback ports, one per route, forwarding to ``upstream``; faults switched on and off by window id."""

    def __init__(self, upstream_host: str, upstream_port: int, routes: Iterable[str], seed: int | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self._names = list(dict.fromkeys(routes))
        self._routes: dict[str, _Route] = {}
        self._rng = random.Random(seed)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._worst_lag_ms = 0.0

    # -- life -------------------------------------------------------------------------------

    def start(self, timeout: float = CALL_TIMEOUT) -> FaultProxy:
        """Bind every route and start forwarding; a port that cannot be bound is a HarnessError."""
        self._thread = threading.Thread(target=self._run, name="nemesis-proxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            self.stop()
            raise HarnessError(f"the nemesis proxy could not start: {self._error or 'timed out'}")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._bind_all())
        except OSError as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        watch = loop.create_task(self._watch_lag())
        try:
            loop.run_forever()
        finally:
            watch.cancel()
            loop.run_until_complete(self._close_all())
            loop.close()

    async def _watch_lag(self) -> None:
        """How late the proxy's loop wakes from a short sleep, at worst: the longest a chunk that had arrived
        can have waited to be read (its hold counts from the read), so the judge counts it as the network's."""
        while True:
            asked = time.monotonic()
            await asyncio.sleep(LAG_PERIOD)
            late_ms = (time.monotonic() - asked - LAG_PERIOD) * 1000.0
            self._worst_lag_ms = max(self._worst_lag_ms, late_ms)

    @property
    def worst_lag_ms(self) -> float:
        """The worst lateness of the proxy's loop so far (ms)."""
        return round(self._worst_lag_ms, 3)

    async def _bind_all(self) -> None:
        for name in self._names:
            route = _Route(name)
            self._routes[name] = route
            await self._listen(route)

    async def _listen(self, route: _Route) -> None:
        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve(route, reader, writer)

        route.server = await asyncio.start_server(accept, "127.0.0.1", route.port, reuse_address=True)
        route.port = route.server.sockets[0].getsockname()[1]

    async def _close_all(self) -> None:
        for route in self._routes.values():
            if route.server is not None:
                route.server.close()
            for conn in list(route.conns):
                conn.abort()
        await asyncio.sleep(0)

    def stop(self) -> None:
        """Reset every connection, close every port, end the thread."""
        loop, thread = self._loop, self._thread
        if loop is not None and thread is not None and thread.is_alive():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(CALL_TIMEOUT)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the caller's side --------------------------------------------------------------------

    def port(self, route: str) -> int:
        return self._routes[route].port

    def url(self, route: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port(route)}"

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        if self._loop is None or not self._ready.is_set():
            coro.close()
            raise HarnessError("the nemesis proxy is not running")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(CALL_TIMEOUT)

    def begin(self, window: int, fault: Fault, params: Mapping[str, float], routes: Iterable[str]) -> None:
        """Switch ``fault`` on for ``routes`` under the id ``window`` (unknown route names are an error)."""
        chosen = list(routes)
        unknown = [r for r in chosen if r not in self._routes]
        if unknown:
            raise HarnessError(f"the nemesis has no route {unknown[0]!r} (routes: {', '.join(self._routes)})")
        self._call(self._begin(window, fault, dict(params), chosen))

    def end(self, window: int) -> dict[str, Any]:
        """Switch window ``window`` off everywhere; returns what it did (``WindowCounts`` as a dict)."""
        result: dict[str, Any] = self._call(self._end(window))
        return result

    def stats(self) -> dict[str, dict[str, Any]]:
        """Per route and direction: chunks, bytes, bytes dropped, the longest and mean hold."""
        result: dict[str, dict[str, Any]] = self._call(self._stats())
        return result

    # -- faults -------------------------------------------------------------------------------

    async def _begin(self, window: int, fault: Fault, params: dict[str, float], routes: list[str]) -> None:
        counts = WindowCounts()
        for name in routes:
            route = self._routes[name]
            route.active[window] = _Active(fault, params, counts)
            if fault is Fault.OUTAGE:
                if route.server is not None:
                    route.server.close()
                    route.server = None
                counts.connections_cut += len(route.conns)
                for conn in list(route.conns):
                    conn.abort()
            elif fault is Fault.HALF_OPEN:
                route.flowing.clear()
            elif fault is Fault.PARTITION:
                for conn in route.conns:
                    conn.lost_data = True

    async def _end(self, window: int) -> dict[str, Any]:
        counts: WindowCounts | None = None
        for route in self._routes.values():
            active = route.active.pop(window, None)
            if active is None:
                continue
            counts = active.counts
            if active.fault is Fault.OUTAGE and route.server is None and not route.has(Fault.OUTAGE):
                await self._listen(route)
            elif active.fault is Fault.HALF_OPEN and not route.has(Fault.HALF_OPEN):
                route.flowing.set()
            elif active.fault is Fault.PARTITION and not route.has(Fault.PARTITION):
                cut = [c for c in route.conns if c.lost_data]
                counts.connections_cut += len(cut)
                for conn in cut:
                    conn.abort()
        return counts.to_dict() if counts is not None else WindowCounts().to_dict()

    async def _stats(self) -> dict[str, dict[str, Any]]:
        return {name: {d: f.to_dict() for d, f in r.flows.items()} for name, r in self._routes.items()}

    # -- forwarding -----------------------------------------------------------------------------

    async def _serve(self, route: _Route, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(writer, asyncio.current_task())
        if len(route.conns) >= MAX_CONNECTIONS or route.has(Fault.OUTAGE):
            conn.abort()
            return
        route.conns.add(conn)
        try:
            if route.has(Fault.PARTITION):
                conn.lost_data = True  # held unanswered: whatever it sends is dropped
                while data := await reader.read(CHUNK):
                    route.dropped(C2S, len(data))
                return
            try:
                up_reader, upstream = await asyncio.wait_for(asyncio.open_connection(*self.upstream), CONNECT_TIMEOUT)
            except (OSError, TimeoutError):
                conn.abort()
                return
            conn.upstream = upstream
            await self._forward(route, conn, reader, up_reader, upstream)
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            conn.abort()  # one side reset, or the fault cut it: both sides are reset
        finally:
            route.conns.discard(conn)
            for side in (conn.client, conn.upstream):
                if side is not None and not side.transport.is_closing():
                    side.close()

    async def _forward(
        self,
        route: _Route,
        conn: _Conn,
        client_in: asyncio.StreamReader,
        upstream_in: asyncio.StreamReader,
        upstream_out: asyncio.StreamWriter,
    ) -> None:
        """Both directions, each a reader and a sender joined by a bounded queue, until both ends close.

        The first failure of any of the four ends them all and resets the connection.
        """
        tasks: list[asyncio.Task[None]] = []
        for src, dst, direction in ((client_in, upstream_out, C2S), (upstream_in, conn.client, S2C)):
            queue: asyncio.Queue[tuple[float, float, bytes] | None] = asyncio.Queue(QUEUE_CHUNKS)
            tasks.append(asyncio.ensure_future(self._read(route, conn, src, queue, direction)))
            tasks.append(asyncio.ensure_future(self._send(route, conn, queue, dst, direction)))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()
        if any(not t.cancelled() and t.exception() is not None for t in done):
            conn.abort()

    async def _read(
        self,
        route: _Route,
        conn: _Conn,
        src: asyncio.StreamReader,
        queue: asyncio.Queue[tuple[float, float, bytes] | None],
        direction: str,
    ) -> None:
        """Read ``src`` into ``queue`` with each chunk's arrival time and hold; None marks the end."""
        while True:
            await route.flowing.wait()
            data = await src.read(CHUNK)
            if not data:
                break
            if conn.lost_data and route.has(Fault.PARTITION):
                route.dropped(direction, len(data))
                continue
            await queue.put((time.monotonic(), route.delay(self._rng), data))
        await queue.put(None)

    async def _send(
        self,
        route: _Route,
        conn: _Conn,
        queue: asyncio.Queue[tuple[float, float, bytes] | None],
        dst: asyncio.StreamWriter,
        direction: str,
    ) -> None:
        previous_due = 0.0
        free_at = 0.0
        while (item := await queue.get()) is not None:
            arrived, delay, data = item
            due = max(previous_due, arrived + delay)  # jitter never reorders
            previous_due = due
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            await route.flowing.wait()
            if conn.lost_data and route.has(Fault.PARTITION):
                route.dropped(direction, len(data))
                continue
            if direction == S2C and len(data) >= 2 and route.has(Fault.RESET_MID_FRAME):
                dst.write(data[: len(data) // 2])
                await dst.drain()
                for a in route.active.values():
                    if a.fault is Fault.RESET_MID_FRAME:
                        a.counts.resets_mid_frame += 1
                        a.counts.connections_cut += 1
                conn.abort()
                return
            rate = route.rate()
            if rate is None:
                dst.write(data)
            else:
                piece = max(512, int(rate / PACE_SLICES))
                for offset in range(0, len(data), piece):
                    part = data[offset : offset + piece]
                    free_at = max(free_at, time.monotonic())
                    if (wait := free_at - time.monotonic()) > 0:
                        await asyncio.sleep(wait)
                    dst.write(part)
                    free_at += len(part) / rate
            route.held(direction, len(data), (time.monotonic() - arrived) * 1000.0)
            await dst.drain()
        if dst.can_write_eof() and not dst.transport.is_closing():
            dst.write_eof()
