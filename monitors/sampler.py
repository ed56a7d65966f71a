"""One sample of the server process: memory, CPU, threads, fds, TCP connections, I/O.

The record's fields are the ``monitor.jsonl`` row of docs/run-folder.md; ``stats`` and
``live_count`` are left null here and filled by the monitor loop from the stats poller.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import psutil

T = TypeVar("T")


def or_none(read: Callable[[], T]) -> T | None:
    """``read()``, or None where the platform or permissions do not provide the value."""
    try:
        return read()
    except (psutil.AccessDenied, NotImplementedError, AttributeError):
        return None


class ProcessSampler:
    """Samples one process; counts server-side TCP sockets on the ports it listens on.

    With ``ports`` given, only those ports are counted; otherwise the ports the process
    listens on are rediscovered at every sample (a server may bind after the monitor
    starts). The first sample has ``cpu_core_pct`` null: CPU % needs two readings.
    """

    def __init__(self, proc: psutil.Process, uss: bool = False, ports: Iterable[int] | None = None) -> None:
        self.proc = proc
        self.uss = uss
        self._fixed_ports = frozenset(ports) if ports else None
        self.ports: frozenset[int] = self._fixed_ports or frozenset()
        self._cpu_count = psutil.cpu_count() or 1
        self._cpu_primed = False
        try:
            self.name: str | None = proc.name()  # names the judged process in the verdict (node, postgres)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            self.name = None

    def sample(self) -> dict[str, Any]:
        """Read the process now; a vanished or zombie process gives ``alive: false``."""
        t = time.time()
        conns = self.connections()
        try:
            with self.proc.oneshot():
                if not self.proc.is_running() or self.proc.status() == psutil.STATUS_ZOMBIE:
                    return self._dead(t, conns)
                rss = self.proc.memory_info().rss
                uss = or_none(lambda: self.proc.memory_full_info().uss) if self.uss else None
                cpu = self.proc.cpu_percent(None)
                threads = self.proc.num_threads()
                fds = or_none(self.proc.num_fds)
                io = or_none(self.proc.io_counters)
        except psutil.NoSuchProcess:
            return self._dead(t, conns)
        cpu_core = cpu if self._cpu_primed else None
        self._cpu_primed = True
        return {
            "t": t,
            "pid": self.proc.pid,
            "name": self.name,
            "alive": True,
            "rss": rss,
            "uss": uss,
            "cpu_core_pct": cpu_core,
            "cpu_machine_pct": None if cpu_core is None else cpu_core / self._cpu_count,
            "threads": threads,
            "fds": fds,
            "conns": conns,
            "io_read_bytes": io.read_bytes if io is not None else None,
            "io_write_bytes": io.write_bytes if io is not None else None,
            "stats": None,
            "live_count": None,
        }

    def _dead(self, t: float, conns: dict[str, int] | None) -> dict[str, Any]:
        """The final record of a process that is gone: only identity, time and sockets left."""
        return {
            "t": t,
            "pid": self.proc.pid,
            "name": self.name,
            "alive": False,
            "rss": None,
            "uss": None,
            "cpu_core_pct": None,
            "cpu_machine_pct": None,
            "threads": None,
            "fds": None,
            "conns": conns,
            "io_read_bytes": None,
            "io_write_bytes": None,
            "stats": None,
            "live_count": None,
        }

    def connections(self) -> dict[str, int] | None:
        """Server-side TCP sockets (local port = a listening port) counted by state, LISTEN excluded."""
        try:
            conns = psutil.net_connections(kind="tcp")
        except psutil.AccessDenied:
            return None
        if self._fixed_ports is None:
            listening = {c.laddr.port for c in conns if c.status == psutil.CONN_LISTEN and c.pid == self.proc.pid}
            if listening:
                self.ports = frozenset(listening)
        counts = Counter(
            c.status for c in conns if c.laddr and c.laddr.port in self.ports and c.status != psutil.CONN_LISTEN
        )
        return dict(sorted(counts.items()))
