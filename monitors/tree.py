"""Samples a multi-process server as one: a root process and all its descendants, summed per interval.

Made for the PostgreSQL cluster behind ``--target parse``: the postmaster forks a process per
connection and several helpers, which come and go, so no one pid is "the database". One
``database.jsonl`` row per interval sums the tree: ``processes``, ``rss`` (summed RSS, which counts
shared memory such as ``shared_buffers`` once per process that touched it), ``pss`` (summed
proportional set size: each shared page divided among its sharers, so the sum is the tree's
memory), CPU, fds, and the TCP sockets on the ports the root listens on.

CPU comes from cumulative CPU times, not per-process percentages, so a backend that lived between two
samples still counts: each process's own time plus the time of the children it has reaped (Linux
adds an exited child's time to its parent's when the parent waits for it). The first row has
``cpu_core_pct`` null: CPU needs two readings.
"""

from __future__ import annotations

import time
from typing import Any

import psutil

from monitors.sampler import ProcessSampler, or_none


def _cumulative_cpu(proc: psutil.Process) -> float:
    """Seconds of CPU ``proc`` and the children it has reaped have used."""
    times = proc.cpu_times()
    return times.user + times.system + times.children_user + times.children_system


class ProcessTreeSampler:
    """One summed sample of ``root`` and its descendants, labelled with the root's process name (``postgres``)."""

    def __init__(self, root: psutil.Process) -> None:
        self.root = root
        self._ports = ProcessSampler(root)  # its socket counting: the ports the root listens on
        self.name = self._ports.name
        self._cpu_count = psutil.cpu_count() or 1
        self._last: tuple[float, float] | None = None  # (monotonic time, cumulative CPU seconds)
        self.gone = False

    def sample(self) -> dict[str, Any]:
        """Read the tree now; once the root is gone (or a zombie) the row says ``alive: false``."""
        t, now = time.time(), time.monotonic()
        conns = self._ports.connections()
        try:
            if not self.root.is_running() or self.root.status() == psutil.STATUS_ZOMBIE:
                return self._dead(t, conns)
            members = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return self._dead(t, conns)
        rss = cpu = 0.0
        pss: float | None = 0.0
        fds: int | None = 0
        counted = 0
        for proc in members:
            try:
                with proc.oneshot():
                    rss_one = proc.memory_info().rss
                    cpu_one = _cumulative_cpu(proc)
                    full = or_none(proc.memory_full_info)
                    fds_one = or_none(proc.num_fds)
            except psutil.NoSuchProcess:
                if proc is self.root:
                    return self._dead(t, conns)
                continue  # ended between the listing and the reading; its parent will count its CPU
            counted += 1
            rss += rss_one
            cpu += cpu_one
            pss = None if pss is None or full is None else pss + full.pss
            fds = None if fds is None or fds_one is None else fds + fds_one
        core = None
        if self._last is not None and now > self._last[0]:
            core = max(0.0, cpu - self._last[1]) / (now - self._last[0]) * 100.0
        self._last = (now, cpu)
        return {
            "t": t,
            "name": self.name,
            "pid": self.root.pid,
            "alive": True,
            "processes": counted,
            "rss": int(rss),
            "pss": None if pss is None else int(pss),
            "cpu_core_pct": core,
            "cpu_machine_pct": None if core is None else core / self._cpu_count,
            "fds": fds,
            "conns": conns,
        }

    def _dead(self, t: float, conns: dict[str, int] | None) -> dict[str, Any]:
        self.gone = True
        return {
            "t": t, "name": self.name, "pid": self.root.pid, "alive": False, "processes": 0, "rss": None,
            "pss": None, "cpu_core_pct": None, "cpu_machine_pct": None, "fds": None, "conns": conns,
        }  # fmt: skip
