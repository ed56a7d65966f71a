"""The reference server's own benchmark: its insert rate, fan-out rate and delivery latency.

Load comes from separate processes with a fast raw client (prebuilt HTTP/1.1 requests on one
keep-alive connection, aiohttp WebSockets under uvloop), so the figures are the server's, not a
client's sharing its event loop. ``measure`` runs against a server that is already up, given its
URLs, root password and pid; ``lqharness bench`` starts one and writes the report.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import os
import socket
import time
import urllib.request
from typing import Any

import psutil

SUBSCRIBERS = 20
SUBSCRIBER_PROCS = 2
CONTENT = "c" * 200
INSERT = (
    "INSERT INTO bench.messages (id, conversation_id, writer_id, wseq, version, content, sent_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7)"
)
P99_LIMIT_MS = 20.0
FANOUT_RATES = (1000, 1250, 1500, 1750, 2000, 2250, 2500)  # inserts/s of the fan-out steps, until one fails


class BenchError(Exception):
    """The benchmark could not measure: a load process did not start or answer."""


# ---------------------------------------------------------------- load processes


class RawHttp:
    """One keep-alive HTTP/1.1 connection with prebuilt requests (a fast client, to measure the server)."""

    def __init__(self, url: str, token: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.head = (
            f"POST /v1/api/sql HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Authorization: Bearer {token}\r\nContent-Length: "
        ).encode()

    def post(self, body: bytes) -> int:
        """Send one request, read the whole response; returns the HTTP status."""
        self.sock.sendall(self.head + str(len(body)).encode() + b"\r\n\r\n" + body)
        buf = b""
        while True:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("server closed the connection")
            buf += chunk
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if sep:
                length = next(
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length")
                )
                if len(rest) >= length:
                    return int(head.split(b" ", 2)[1])


def writer_proc(url: str, token: str, rate: float | None, seconds: float, step: int, base: int, out: Any) -> None:
    """Insert message rows, paced at ``rate``/s (None: as fast as possible), for ``seconds``."""
    import orjson

    http = RawHttp(url, token)
    sent = errors = 0
    start = time.perf_counter()
    while True:
        now = time.perf_counter()
        if now - start >= seconds:
            break
        if rate is not None:
            due = start + sent / rate
            if due > now:
                time.sleep(due - now)
        key = base + sent
        body = orjson.dumps({"sql": INSERT, "params": [str(key), 1, step, sent, 1, CONTENT, time.time_ns() // 1000]})
        if http.post(body) != 200:
            errors += 1
        sent += 1
    out.put({"sent": sent, "errors": errors, "seconds": time.perf_counter() - start})


def subscriber_proc(ws_url: str, token: str, sockets: int, ready: Any, commands: Any, out: Any) -> None:
    """Hold ``sockets`` subscriptions; on ("report", step) answer that step's count and latencies (ms)."""
    import uvloop

    uvloop.run(_subscribe(ws_url, token, sockets, ready, commands, out))


async def _subscribe(ws_url: str, token: str, sockets: int, ready: Any, commands: Any, out: Any) -> None:
    import aiohttp
    import orjson

    seen: dict[int, list[float]] = {}
    async with aiohttp.ClientSession() as session:
        conns = []
        for i in range(sockets):
            ws = await session.ws_connect(ws_url + "?compress=false", max_msg_size=0, autoping=True)
            await ws.send_str(
                orjson.dumps(
                    {
                        "type": "authenticate",
                        "method": "jwt",
                        "token": token,
                        "protocol": {"serialization": "json", "compression": "none"},
                    }
                ).decode()
            )
            await ws.receive(timeout=10)
            await ws.send_str(
                orjson.dumps(
                    {
                        "type": "subscribe",
                        "subscription": {"id": f"b{os.getpid()}-{i}", "sql": "SELECT * FROM bench.messages"},
                    }
                ).decode()
            )
            await ws.receive(timeout=10)
            conns.append(ws)

        async def read(ws: aiohttp.ClientWebSocketResponse) -> None:
            while True:
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    return
                now_us = time.time_ns() / 1000
                row = orjson.loads(msg.data)["rows"][0]
                seen.setdefault(int(row["writer_id"]), []).append((now_us - int(row["sent_at"])) / 1000)

        async def keepalive() -> None:
            while True:
                await asyncio.sleep(3)
                for ws in conns:
                    await ws.send_str('{"type":"ping"}')

        tasks = [asyncio.create_task(read(ws)) for ws in conns] + [asyncio.create_task(keepalive())]
        ready.set()
        loop = asyncio.get_running_loop()
        while True:
            command = await loop.run_in_executor(None, commands.get)
            if command[0] == "stop":
                break
            out.put((command[1], seen.pop(command[1], [])))
        for task in tasks:
            task.cancel()
        for ws in conns:
            await ws.close()


# ---------------------------------------------------------------- setup and measurements


def _post(url: str, path: str, body: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url + path, json.dumps(body).encode(), headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def setup(url: str, password: str) -> str:
    """Log in as root and create the benchmark's table; returns the access token."""
    token = _post(url, "/v1/api/auth/login", {"user": "root", "password": password})["access_token"]
    for sql in (
        "CREATE NAMESPACE bench",
        "CREATE USER TABLE bench.messages (id BIGINT PRIMARY KEY, conversation_id BIGINT NOT NULL, "
        "writer_id BIGINT, wseq BIGINT, version INT, content TEXT, sent_at BIGINT)",
    ):
        _post(url, "/v1/api/sql", {"sql": sql}, token)
    return token


class Bench:
    """Runs the measurements against one server (its URLs, a token and its pid, for CPU time)."""

    def __init__(self, url: str, ws_url: str, token: str, pid: int) -> None:
        self.url = url
        self.ws_url = ws_url
        self.token = token
        self.server = psutil.Process(pid)
        self.ctx = mp.get_context("spawn")
        self.base = 1
        self.step = 0
        self.subs: list[tuple[Any, Any, Any]] = []

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the server has used so far."""
        times = self.server.cpu_times()
        return times.user + times.system

    def write(self, rate: float | None, seconds: float) -> dict[str, Any]:
        """One writer process; returns its counts and the server CPU seconds it cost."""
        out = self.ctx.Queue()
        self.step += 1
        cpu = self.cpu_seconds()
        proc = self.ctx.Process(
            target=writer_proc, args=(self.url, self.token, rate, seconds, self.step, self.base, out)
        )
        proc.start()
        result = out.get(timeout=seconds + 60)
        proc.join(10)
        result["server_cpu"] = self.cpu_seconds() - cpu
        result["step"] = self.step
        self.base += result["sent"] + 1
        return result

    def start_subscribers(self) -> None:
        per = SUBSCRIBERS // SUBSCRIBER_PROCS
        for _ in range(SUBSCRIBER_PROCS):
            ready, commands, out = self.ctx.Event(), self.ctx.Queue(), self.ctx.Queue()
            proc = self.ctx.Process(
                target=subscriber_proc,
                args=(self.ws_url, self.token, per, ready, commands, out),
                daemon=True,
            )
            proc.start()
            if not ready.wait(30):
                raise BenchError("subscribers did not get ready within 30 s")
            self.subs.append((proc, commands, out))

    def collect(self, step: int) -> list[float]:
        """Latencies (ms) of every notification of ``step`` delivered to any subscriber."""
        lat: list[float] = []
        for _, commands, _ in self.subs:
            commands.put(("report", step))
        for _, _, out in self.subs:
            got_step, values = out.get(timeout=30)
            if got_step != step:
                raise BenchError(f"a subscriber answered for step {got_step}, not {step}")
            lat.extend(values)
        return lat

    def stop_subscribers(self) -> None:
        for proc, commands, _ in self.subs:
            commands.put(("stop", 0))
            proc.join(10)
            if proc.is_alive():
                proc.kill()

    def fanout(self, rate: float, seconds: float) -> dict[str, Any]:
        """Insert at ``rate`` with the subscribers attached; delivered rate and latency percentiles."""
        result = self.write(rate, seconds)
        time.sleep(1.0)
        lat = self.collect(result["step"])
        expected = result["sent"] * SUBSCRIBERS
        result.update(
            delivered=len(lat),
            expected=expected,
            notifications_per_s=len(lat) / result["seconds"],
            achieved_rate=result["sent"] / result["seconds"],
            p50=_percentile(lat, 50),
            p99=_percentile(lat, 99),
        )
        return result


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def measure(url: str, ws_url: str, password: str, pid: int, repeats: int, seconds: float) -> dict[str, Any]:
    """Insert and fan-out measurements, ``repeats`` runs of ``seconds`` each (about three minutes in all).

    Returns ``inserts`` (writer runs alone), ``fixed`` (1,000 inserts/s with the subscribers) and
    ``steps`` (rising fan-out rates, up to the first that misses ``P99_LIMIT_MS`` or falls behind).
    """
    bench = Bench(url, ws_url, setup(url, password), pid)
    bench.write(None, 1.0)  # warm-up: plan caches, SQLite pages
    inserts = [bench.write(None, seconds) for _ in range(repeats)]
    try:
        bench.start_subscribers()
        bench.fanout(500, 1.0)  # warm-up
        fixed = [bench.fanout(1000, seconds) for _ in range(repeats)]
        steps = []
        for rate in FANOUT_RATES:
            result = bench.fanout(rate, seconds)
            result["rate"] = rate
            result["good"] = (
                result["p99"] <= P99_LIMIT_MS
                and result["delivered"] >= result["expected"]
                and result["achieved_rate"] >= 0.95 * rate
            )
            steps.append(result)
            if not result["good"]:
                break
    finally:
        bench.stop_subscribers()
    return {"inserts": inserts, "fixed": fixed, "steps": steps}
