"""Benchmarks (``make bench``): the reference server's insert rate, fan-out rate and delivery latency,
and the load generator's own per-notification cost (the listener tracker's checks).

The server runs as a subprocess and the load in separate processes, so the numbers are the
server's, not a client's sharing its event loop. Results (medians of repeated runs) are printed
and written to a Markdown file with the machine they were measured on.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing as mp
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

ROOT_PASSWORD = "Bench-Root-123"
SUBSCRIBERS = 20
SUBSCRIBER_PROCS = 2
CONTENT = "c" * 200
INSERT = (
    "INSERT INTO bench.messages (id, conversation_id, writer_id, wseq, version, content, sent_at) "
    "VALUES ($1, $2, $3, $4, $5, $6, $7)"
)
P99_LIMIT_MS = 20.0
TRACKER_NOTIFICATIONS = 50_000


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


# ---------------------------------------------------------------- the server


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://", 1) + "/v1/ws"

    def cpu_seconds(self) -> float:
        times = psutil.Process(self.proc.pid).cpu_times()
        return times.user + times.system

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def start_server(workdir: Path) -> Server:
    """``lqharness serve --port 0`` as a subprocess; waits for its ready file."""
    ready = workdir / "ready.json"
    log = open(workdir / "server.log", "wb")  # noqa: SIM115 - handed to the child for its lifetime
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.cli",
            "serve",
            "--port",
            "0",
            "--ready-file",
            str(ready),
            "--root-password",
            ROOT_PASSWORD,
            "--heartbeat-timeout",
            "30",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"server did not start: {(workdir / 'server.log').read_text(errors='replace')}")
        time.sleep(0.05)
    return Server(json.loads(ready.read_text())["url"], proc)


def _post(url: str, path: str, body: dict[str, Any], token: str | None = None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url + path, json.dumps(body).encode(), headers)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def setup(server: Server) -> str:
    token = _post(server.url, "/v1/api/auth/login", {"user": "root", "password": ROOT_PASSWORD})["access_token"]
    for sql in (
        "CREATE NAMESPACE bench",
        "CREATE USER TABLE bench.messages (id BIGINT PRIMARY KEY, conversation_id BIGINT NOT NULL, "
        "writer_id BIGINT, wseq BIGINT, version INT, content TEXT, sent_at BIGINT)",
    ):
        _post(server.url, "/v1/api/sql", {"sql": sql}, token)
    return token


# ---------------------------------------------------------------- measurements


class Bench:
    """Runs the measurements against one server and keeps the results."""

    def __init__(self, server: Server, token: str) -> None:
        self.server = server
        self.token = token
        self.ctx = mp.get_context("spawn")
        self.base = 1
        self.step = 0
        self.subs: list[tuple[Any, Any, Any]] = []

    def write(self, rate: float | None, seconds: float) -> dict[str, Any]:
        """One writer process; returns its counts and the server CPU seconds it cost."""
        out = self.ctx.Queue()
        self.step += 1
        cpu = self.server.cpu_seconds()
        proc = self.ctx.Process(
            target=writer_proc, args=(self.server.url, self.token, rate, seconds, self.step, self.base, out)
        )
        proc.start()
        result = out.get(timeout=seconds + 60)
        proc.join(10)
        result["server_cpu"] = self.server.cpu_seconds() - cpu
        result["step"] = self.step
        self.base += result["sent"] + 1
        return result

    def start_subscribers(self) -> None:
        per = SUBSCRIBERS // SUBSCRIBER_PROCS
        for _ in range(SUBSCRIBER_PROCS):
            ready, commands, out = self.ctx.Event(), self.ctx.Queue(), self.ctx.Queue()
            proc = self.ctx.Process(
                target=subscriber_proc,
                args=(self.server.ws_url, self.token, per, ready, commands, out),
                daemon=True,
            )
            proc.start()
            if not ready.wait(30):
                raise RuntimeError("subscribers did not get ready")
            self.subs.append((proc, commands, out))

    def collect(self, step: int) -> list[float]:
        """Latencies (ms) of every notification of ``step`` delivered to any subscriber."""
        lat: list[float] = []
        for _, commands, _ in self.subs:
            commands.put(("report", step))
        for _, _, out in self.subs:
            got_step, values = out.get(timeout=30)
            assert got_step == step
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


def tracker_cost(repeats: int, count: int = TRACKER_NOTIFICATIONS) -> dict[str, float]:
    """Median µs of CPU per ``ListenerTracker.observe`` over a clean stream of inserts, then of updates."""
    from harness.delivery.identity import content, insert_row, update_changes
    from harness.delivery.tracker import ListenerTracker
    from harness.targets.base import Change, Op

    now_ns = time.time_ns()
    inserts, updates = [], []
    for n in range(1, count + 1):
        row = insert_row(1, 1, n, n, now_ns // 1000, len(CONTENT))
        inserts.append(Change(Op.INSERT, row, None, n, now_ns + 1_000_000, 400))
        new = {**row, **update_changes(row["id"], 2, count + n, now_ns // 1000, len(CONTENT))}
        old = {"id": row["id"], "version": 1, "wseq": n, "content": content(row["id"], 1, len(CONTENT))}
        updates.append(Change(Op.UPDATE, new, old, count + n, now_ns + 1_000_000, 600))
    out: dict[str, list[float]] = {"insert": [], "update": []}
    for _ in range(repeats):
        tracker = ListenerTracker("bench", None, len(CONTENT), 1_000_000_000)
        for kind, stream in (("insert", inserts), ("update", updates)):
            started = time.process_time()
            for change in stream:
                tracker.observe(change)
            out[kind].append((time.process_time() - started) / count * 1e6)
        if any(tracker.anomalies.values()):
            raise RuntimeError(f"bench stream is not clean: {tracker.anomalies}")
    return {kind: statistics.median(values) for kind, values in out.items()}


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def machine() -> dict[str, str]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    return {
        "CPU": model,
        "Cores": str(os.cpu_count()),
        "RAM": f"{psutil.virtual_memory().total / (1 << 30):.1f} GiB",
        "Python": platform.python_version(),
        "OS": f"{platform.system()} {platform.release()}",
        "Date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def run(repeats: int, seconds: float) -> dict[str, Any]:
    """All measurements; bounded by ``repeats`` and ``seconds`` per run (about three minutes in all)."""
    with tempfile.TemporaryDirectory(prefix="lqh-bench-") as tmp:
        server = start_server(Path(tmp))
        try:
            bench = Bench(server, setup(server))
            bench.write(None, 1.0)  # warm-up: plan caches, SQLite pages
            inserts = [bench.write(None, seconds) for _ in range(repeats)]
            bench.start_subscribers()
            bench.fanout(500, 1.0)  # warm-up
            fixed = [bench.fanout(1000, seconds) for _ in range(repeats)]
            steps = []
            for rate in (1000, 1250, 1500, 1750, 2000, 2250, 2500):
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
            bench.stop_subscribers()
        finally:
            server.stop()
    tracker = tracker_cost(repeats)
    return {
        "machine": machine(),
        "inserts": inserts,
        "fixed": fixed,
        "steps": steps,
        "seconds": seconds,
        "tracker": tracker,
        "repeats": repeats,
    }


def report(results: dict[str, Any]) -> str:
    """The Markdown report."""
    ins = results["inserts"]
    fixed = results["fixed"]
    steps = results["steps"]
    rate = statistics.median(r["sent"] / r["seconds"] for r in ins)
    cpu_per_insert = statistics.median(r["server_cpu"] / max(r["sent"], 1) * 1e6 for r in ins)
    cpu_per_note = statistics.median(r["server_cpu"] / max(r["delivered"], 1) * 1e6 for r in fixed)
    good = [s for s in steps if s["good"]]
    lines = [
        "# Benchmarks: the reference server and the load generator",
        "",
        "Measured by `make bench` (`python -m harness.bench`).",
        "",
        "| Machine | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in results["machine"].items()]
    lines += [
        "",
        f"Server: `lqharness serve` as a subprocess; load in separate processes (1 writer with a keep-alive "
        f"connection, {SUBSCRIBERS} WebSocket subscribers in {SUBSCRIBER_PROCS} processes). Rows: the harness's "
        f"message row with {len(CONTENT)}-byte content, inserted one per request via `params`. "
        f"Each figure is the median of {len(ins)} runs of {results['seconds']:g} s.",
        "",
        "| Measurement | Result | Goal |",
        "|---|---|---|",
        f"| single-writer HTTP inserts/s | {rate:,.0f} | ≥ 2,500 |",
        f"| server CPU per insert | {cpu_per_insert:,.0f} µs | |",
        f"| 20 subscribers, 1,000 inserts/s: notifications/s delivered | "
        f"{statistics.median(r['notifications_per_s'] for r in fixed):,.0f} | 20,000 |",
        f"| … delivered / expected | {sum(r['delivered'] for r in fixed):,} / "
        f"{sum(r['expected'] for r in fixed):,} | all |",
        f"| … receive latency p50 | {statistics.median(r['p50'] for r in fixed):.2f} ms | |",
        f"| … receive latency p99 | {statistics.median(r['p99'] for r in fixed):.2f} ms | ≤ 20 ms |",
        f"| … server CPU per notification | {cpu_per_note:,.1f} µs | |",
        f"| highest fan-out sustained (p99 ≤ {P99_LIMIT_MS:g} ms, nothing behind) | "
        + (
            f"{good[-1]['notifications_per_s']:,.0f} notifications/s ({good[-1]['rate']:,} inserts/s × 20)"
            if good
            else "none of the steps"
        )
        + " | 20,000 |",
        "",
        "Fan-out steps:",
        "",
        "| inserts/s asked | achieved | notifications/s | delivered/expected | p50 ms | p99 ms | ok |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in steps:
        lines.append(
            f"| {s['rate']:,} | {s['achieved_rate']:,.0f} | {s['notifications_per_s']:,.0f} | "
            f"{s['delivered']:,}/{s['expected']:,} | {s['p50']:.2f} | {s['p99']:.2f} | "
            f"{'yes' if s['good'] else 'no'} |"
        )
    tracker = results.get("tracker")
    if tracker:
        lines += [
            "",
            f"Load generator: CPU per notification checked by one listener's tracker (identity, "
            f"duplicate, order, old and new values, latency), over {TRACKER_NOTIFICATIONS:,} notifications, "
            f"median of {results.get('repeats', len(ins))} runs:",
            "",
            "| Notification | µs each |",
            "|---|---|",
            f"| insert | {tracker['insert']:.1f} |",
            f"| update | {tracker['update']:.1f} |",
        ]
    lines += [
        "",
        "Where the time goes (py-spy profiles of the server under this load, taken while tuning):",
        "",
        "- A single-row insert costs the server the figure above in CPU: about a third in SQLite (one "
        "autocommit transaction in WAL mode; checkpoints run in a background thread), about a third in "
        "aiohttp's request parsing and the response's socket write, the rest in JWT-cache lookup, plan "
        "binding and JSON. A bare aiohttp handler reaches roughly 4,000 requests/s on this machine, which "
        "bounds any single-connection rate here; loopback send syscalls on this VM cost tens of µs each.",
        "- Fan-out serializes each change once per (table, filter, projection) group and splices the "
        "subscription id; most of the remaining cost is one socket write per connection, which the sender "
        "coalesces (frames queued within 2 ms share one write). At the failing step the single server core "
        "is saturated by HTTP handling plus fan-out, so the writer no longer reaches the asked rate.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench", description=__doc__)
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"), help="Markdown file to write")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (median reported)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one run")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.seconds <= 0:
        print("bench: error: --repeats must be ≥ 1 and --seconds > 0", file=sys.stderr)
        return 2
    text = report(run(args.repeats, args.seconds))
    print(text)
    args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
