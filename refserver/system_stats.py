"""``system.stats``: process and server metrics as (metric_name, metric_value) text rows, KalamDB's names."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, Protocol

import psutil

from refserver.storage import Store

VERSION = "0.1.0-refserver"
BUILD_DATE = "2026-05-01"


class Session(Protocol):
    """A WebSocket connection as the metrics count it."""

    @property
    def authenticated(self) -> bool: ...


class LiveCounts(Protocol):
    """What the metrics read of the live manager."""

    @property
    def connections(self) -> Collection[Session]: ...

    @property
    def dropped_total(self) -> int: ...

    @property
    def blocked_disconnects(self) -> int: ...

    def subscriptions(self) -> Collection[Any]: ...

    def live_rows(self) -> Collection[Any]: ...


@dataclass(frozen=True, slots=True)
class StatsSources:
    """Where ``system.stats`` takes its numbers from, besides the process itself."""

    live: LiveCounts
    store: Store
    plan_cache_size: Callable[[], int]
    memory_limit_bytes: int = 0
    node_id: int = 1


class SystemStats:
    """``system.stats``: samples the server's own process with psutil on demand."""

    def __init__(self, sources: StatsSources) -> None:
        self.sources = sources
        self.started = time.monotonic()
        self.process = psutil.Process(os.getpid())
        self.process.cpu_percent(None)
        self.peaks = {"active_connections": 0, "active_subscriptions": 0, "websocket_sessions": 0}

    def rows(self) -> list[tuple[str, str]]:
        """Current metrics, in a stable order."""
        sources = self.sources
        live, store = sources.live, sources.store
        mem = self.process.memory_info()
        uptime = time.monotonic() - self.started
        connections = len(live.connections)
        sessions = sum(1 for c in live.connections if c.authenticated)
        subscriptions = len(live.subscriptions())
        for name, value in (
            ("active_connections", connections),
            ("active_subscriptions", subscriptions),
            ("websocket_sessions", sessions),
        ):
            self.peaks[name] = max(self.peaks[name], value)
        jobs = store.job_counts()
        vm = psutil.virtual_memory()
        metrics: list[tuple[str, object]] = [
            ("server_uptime_seconds", int(uptime)),
            ("server_uptime_human", _human(uptime)),
            ("memory_usage_bytes", mem.rss),
            ("memory_usage_mb", mem.rss // (1 << 20)),
            ("memory_usage_source", "rss"),
            ("memory_rss_bytes", mem.rss),
            ("memory_rss_mb", mem.rss // (1 << 20)),
            ("memory_limit_bytes", sources.memory_limit_bytes),
            ("memory_virtual_bytes", mem.vms),
            ("memory_virtual_mb", mem.vms // (1 << 20)),
            ("cpu_usage_percent", f"{self.process.cpu_percent(None):.2f}"),
            ("system_total_memory_mb", vm.total // (1 << 20)),
            ("system_used_memory_mb", vm.used // (1 << 20)),
            ("thread_count", self.process.num_threads()),
            ("pid", os.getpid()),
            ("cpu_logical_cores", psutil.cpu_count() or 1),
            ("cpu_physical_cores", psutil.cpu_count(logical=False) or 1),
            ("active_connections", connections),
            ("active_connections_peak", self.peaks["active_connections"]),
            ("active_subscriptions", subscriptions),
            ("active_subscriptions_peak", self.peaks["active_subscriptions"]),
            ("websocket_sessions", sessions),
            ("websocket_sessions_peak", self.peaks["websocket_sessions"]),
            ("total_users", store.count("__users")),
            ("total_namespaces", len(store.namespaces)),
            ("total_tables", len(store.tables)),
            ("total_storages", 1),
            ("total_jobs", sum(jobs.values())),
            ("total_live_queries", len(live.live_rows())),
            ("jobs_running", jobs.get("running", 0)),
            ("jobs_queued", jobs.get("new", 0) + jobs.get("queued", 0)),
            ("jobs_failed", jobs.get("failed", 0)),
            ("notifications_dropped", live.dropped_total),
            ("slow_consumer_disconnects", live.blocked_disconnects),
            ("plan_cache_size", sources.plan_cache_size()),
            ("node_id", sources.node_id),
            ("server_version", VERSION),
            ("server_build_date", BUILD_DATE),
            ("allocator_name", "pymalloc"),
        ]
        return [(name, str(value)) for name, value in metrics]


def _human(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 86400}d {s % 86400 // 3600}h {s % 3600 // 60}m {s % 60}s"
