"""The load-generator side of the harness benchmark: one gevent process, as a Locust process runs.

Run as ``python -m harness.orchestration.benchload '<json task>'`` against a ``benchfeed`` sender;
prints one JSON result line. The harness's own pieces do the work: the KalamDB driver's
listener and writer, the delivery tracker, and Locust's statistics (NOTIFY batched as the listeners do),
with the event-loop lag sampler of ``locustfiles.lag`` running beside them. The ``bare`` tasks
are the ceilings: receive-and-parse loops with nothing else, on websocket-client's own frame
reading (``bare: true``) or on the harness's ``FrameReader`` over the same connection (``"frames"``).
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import json  # noqa: E402 - after monkey-patching, as in a Locust process
import os  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import gevent  # noqa: E402
import orjson  # noqa: E402
import websocket  # noqa: E402

from harness.delivery.identity import insert_row  # noqa: E402
from harness.delivery.tracker import ListenerTracker  # noqa: E402
from harness.orchestration.benchfeed import SCHEMA  # noqa: E402
from harness.targets.kalamdb.auth import Credentials  # noqa: E402
from harness.targets.kalamdb.frames import FrameReader  # noqa: E402
from harness.targets.kalamdb.listener import KalamListener  # noqa: E402
from harness.targets.kalamdb.settings import Settings  # noqa: E402
from harness.targets.kalamdb.sql import KalamWriter  # noqa: E402
from harness.targets.kalamdb.transport import Endpoint  # noqa: E402
from harness.targets.kalamdb.wire import MAX_FRAME_BYTES  # noqa: E402
from locustfiles.lag import LagSampler  # noqa: E402
from locustfiles.listeners import RECV_SLICE  # noqa: E402
from locustfiles.notify import NotifyStats  # noqa: E402

PAYLOAD = 200
DRAIN_NS = 3600 * 10**9
OPENERS = 32  # capacity: subscriptions opened at once


def _environment() -> Any:
    """A Locust environment with a local runner, so request events land in its statistics as in a run."""
    from locust import User, events
    from locust.env import Environment

    class Idle(User):
        abstract = True

    env = Environment(user_classes=[Idle], events=events)
    env.create_local_runner()
    return env


def _settings(port: int) -> Settings:
    return Settings(Endpoint(f"http://127.0.0.1:{port}"), "bench", "bench-pw", compress=False, heartbeat=3600.0)


def _listener(settings: Settings) -> KalamListener:
    return KalamListener(settings, SCHEMA, Credentials(settings.endpoint, "bench", "bench-pw"))


class HarnessListener:
    """One subscription received as ``locustfiles.listeners`` does: recv slice, tracker, NOTIFY event."""

    def __init__(self, settings: Settings, env: Any, name: str, keep: bool) -> None:
        self.listener = _listener(settings)
        self.tracker = ListenerTracker(name, None, PAYLOAD, DRAIN_NS)
        self.notify = NotifyStats.of(env)
        self.latencies: list[float] = []
        self.received: list[int] = []
        self.keep = keep
        self.count = 0
        self.first_ns = self.last_ns = 0

    def subscribe(self) -> None:
        self.listener.subscribe(None)

    def run(self, expect: int, until: float) -> None:
        """Receive until ``expect`` notifications or the monotonic ``until``."""
        while self.count < expect and time.monotonic() < until:
            change = self.listener.recv(RECV_SLICE)
            if change is None:
                continue
            obs = self.tracker.observe(change)
            latency = obs.latency_ms if obs.latency_ms is not None else 0
            if obs.anomalies:
                self.notify.failure(obs.op, latency, change.wire_bytes, RuntimeError(",".join(obs.anomalies)))
            else:
                self.notify.add(obs.op, latency, change.wire_bytes)
            self.count += 1
            self.last_ns = time.time_ns()
            if self.count == 1:
                self.first_ns = self.last_ns
            if self.keep:
                self.latencies.append(obs.latency_ms if obs.latency_ms is not None else float("nan"))
                self.received.append(change.received_ns)
        self.notify.flush()

    def anomalies(self) -> int:
        return sum(self.tracker.anomalies.values())


class BareListener:
    """The ceiling: websocket-client's receive and orjson's parse, nothing else."""

    def __init__(self, port: int, keep: bool) -> None:
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{port}/v1/ws?compress=false", timeout=10, skip_utf8_validation=True
        )
        self.keep = keep
        self.latencies: list[float] = []
        self.received: list[int] = []
        self.count = 0
        self.first_ns = self.last_ns = 0

    def subscribe(self) -> None:
        self.ws.send('{"type":"authenticate","method":"jwt","token":"t"}')
        self.ws.recv()
        self.ws.send(orjson.dumps({"type": "subscribe", "subscription": {"id": f"bare{id(self)}"}}).decode())
        self.ws.recv()

    def run(self, expect: int, until: float) -> None:
        while self.count < expect and time.monotonic() < until:
            self.ws.settimeout(RECV_SLICE)
            try:
                _, frame = self.ws.recv_data_frame()
            except websocket.WebSocketTimeoutException:
                continue
            now = time.time_ns()
            row = orjson.loads(frame.data)["rows"][0]
            self.count += 1
            self.last_ns = now
            if self.count == 1:
                self.first_ns = now
            if self.keep:
                self.latencies.append((now / 1000 - int(row["sent_at"])) / 1000)
                self.received.append(now)

    def anomalies(self) -> int:
        return 0


class BareFrames(BareListener):
    """The second ceiling: the harness's own frame reader (``FrameReader``) and orjson's parse, nothing else."""

    def run(self, expect: int, until: float) -> None:
        reader = FrameReader(self.ws.sock, MAX_FRAME_BYTES)
        while self.count < expect and time.monotonic() < until:
            got = reader.read(RECV_SLICE)
            if got is None:
                continue
            now = time.time_ns()
            row = orjson.loads(got[1])["rows"][0]
            self.count += 1
            self.last_ns = now
            if self.count == 1:
                self.first_ns = now
            if self.keep:
                self.latencies.append((now / 1000 - int(row["sent_at"])) / 1000)
                self.received.append(now)


def _open(task: dict[str, Any], n: int, keep: bool, env: Any) -> list[Any]:
    settings = _settings(task["port"])
    bare = {True: BareListener, "frames": BareFrames}.get(task["bare"])
    subs: list[Any] = [
        bare(task["port"], keep) if bare is not None else HarnessListener(settings, env, f"l{i}", keep)
        for i in range(n)
    ]
    for sub in subs:
        sub.subscribe()
    return subs


def ingest(task: dict[str, Any]) -> dict[str, Any]:
    """Notifications/s one listener fully checks from a burst sender (first to last frame)."""
    env = None if task["bare"] else _environment()
    (sub,) = _open(task, 1, False, env)
    sub.run(task["count"], time.monotonic() + 120)
    seconds = (sub.last_ns - sub.first_ns) / 1e9
    return {"count": sub.count, "seconds": seconds, "rate": (sub.count - 1) / seconds, "anomalies": sub.anomalies()}


def _writers(settings: Settings, writers: int, rate: float, seconds: float, env: Any) -> list[Any]:
    """Writer greenlets inserting rows at ``rate``/s in all (one request in flight each), firing INSERT events."""

    def write(w: int) -> None:
        writer = KalamWriter(settings, SCHEMA, Credentials(settings.endpoint, "bench", "bench-pw"))
        start = time.monotonic()
        n = 0
        per = rate / writers
        while (elapsed := time.monotonic() - start) < seconds:
            due = n / per
            if due > elapsed:
                gevent.sleep(due - elapsed)
            n += 1
            row = insert_row(100 + w, 1, n, n, time.time_ns() // 1000, PAYLOAD)
            result = writer.insert(row)
            env.events.request.fire(
                request_type="INSERT",
                name="insert",
                response_time=(result.ack_ns - result.invoke_ns) / 1e6,
                response_length=0,
                exception=None,
                context={},
            )
        writer.close()

    return [gevent.spawn(write, w) for w in range(writers)]


def paced(task: dict[str, Any]) -> dict[str, Any]:
    """Latency (ms, minus the injected delay) of L listeners fed at a paced rate, with writers beside them."""
    env = _environment()
    lag = LagSampler()
    lag.start()
    subs = _open(task, task["listeners"], True, env)
    count = task["count"]
    writers = []
    if task["write_rate"]:
        writers = _writers(_settings(task["port"]), task["writers"], task["write_rate"], task["seconds"], env)
    until = time.monotonic() + task["seconds"] + 30
    gevent.joinall([gevent.spawn(s.run, count, until) for s in subs] + writers)
    lag.stop()
    delay = task["delay_ms"]
    added = sorted(v - delay for s in subs for v in s.latencies)
    spreads = sorted(
        (max(col) - min(col)) / 1e6 for col in zip(*(s.received for s in subs), strict=False) if len(col) == len(subs)
    )
    return {
        "delivered": len(added),
        "expected": count * len(subs),
        "p50": _pct(added, 50),
        "p99": _pct(added, 99),
        "spread_p50": _pct(spreads, 50),
        "spread_p99": _pct(spreads, 99),
        "lag_max_ms": lag.worst_ms,
        "anomalies": sum(s.anomalies() for s in subs),
    }


def capacity(task: dict[str, Any]) -> dict[str, Any]:
    """Idle subscribed listeners, each in its receive loop, and the RSS each adds."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = task["listeners"] + 64
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    env = _environment()
    settings = _settings(task["port"])
    rss_before = _rss()
    subs: list[HarnessListener] = []
    until = time.monotonic() + task["seconds"]
    errors: list[str] = []
    loops = []
    claimed = [0]  # subscriptions started, so the openers stop at exactly the number asked

    def opener() -> None:
        while claimed[0] < task["listeners"] and time.monotonic() < until and not errors:
            claimed[0] += 1
            sub = HarnessListener(settings, env, f"c{claimed[0]}", False)
            try:
                sub.subscribe()
            except Exception as exc:  # noqa: BLE001 - the limit reached (descriptors, memory): report it
                errors.append(f"{type(exc).__name__}: {exc}")
                return
            subs.append(sub)
            loops.append(gevent.spawn(sub.run, 1, until + 5))

    gevent.joinall([gevent.spawn(opener) for _ in range(OPENERS)])
    error = errors[0] if errors else None
    gevent.sleep(1.0)
    rss_after = _rss()
    held = len(subs)
    gevent.killall(loops)
    return {
        "held": held,
        "asked": task["listeners"],
        "rss_per_listener": (rss_after - rss_before) / max(held, 1),
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "error": error,
    }


def writes(task: dict[str, Any]) -> dict[str, Any]:
    """Inserts/s with one request in flight per writer: the harness's writer, or Locust's FastHttpUser."""
    seconds, writers = task["seconds"], task["writers"]
    env = _environment()
    if task["client"] == "harness":
        stats = env.stats
        gevent.joinall(_writers(_settings(task["port"]), writers, 1e9, seconds, env))
        return {"rate": stats.total.num_requests / seconds, "failures": stats.total.num_failures}
    from locust import task as locust_task
    from locust.contrib.fasthttp import FastHttpUser
    from locust.env import Environment

    body = orjson.dumps({"sql": "INSERT INTO bench.messages VALUES ($1)", "params": ["1"]}).decode()

    class Writer(FastHttpUser):
        host = f"http://127.0.0.1:{task['port']}"

        @locust_task
        def insert(self) -> None:
            self.client.post("/v1/api/sql", data=body, headers={"Authorization": "Bearer t"})

    fast = Environment(user_classes=[Writer])
    runner = fast.create_local_runner()
    runner.start(writers, spawn_rate=writers)
    gevent.sleep(1.0)
    fast.stats.reset_all()
    gevent.sleep(seconds)
    total = fast.stats.total
    rate = total.num_requests / seconds
    runner.quit()
    return {"rate": rate, "failures": total.num_failures}


def _rss() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(round(q / 100 * (len(values) - 1))))]


TASKS = {"ingest": ingest, "paced": paced, "capacity": capacity, "writes": writes}


def main() -> None:
    task = json.loads(sys.argv[1])
    print(json.dumps(TASKS[task["kind"]](task)), flush=True)


if __name__ == "__main__":
    main()
