"""Samples the load generator's own processes, so a saturated generator is seen as such.

Every descendant of the generator parent whose command line mentions ``locust`` is one
``generator.jsonl`` row per interval: ``t``, ``role``, ``pid``, ``cpu_core_pct``, ``rss``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

import psutil


def role_of(cmdline: list[str]) -> str | None:
    """``master``, ``worker`` or ``local`` for a Locust command line; None if it is not one."""
    if not any("locust" in arg.lower() for arg in cmdline):
        return None
    if "--worker" in cmdline:
        return "worker"
    if "--master" in cmdline:
        return "master"
    return "local"


@dataclass
class _Tracked:
    proc: psutil.Process
    role: str
    primed: bool = False


class GeneratorSampler:
    """Follows the Locust processes under one parent pid, including ones started later.

    The parent itself is included when its own command line mentions ``locust``, or
    always (role ``local`` unless its command line says otherwise) with ``include_parent``,
    for a runner that runs Locust in its own process. Command lines of untracked
    descendants are read again at every sample, because a freshly forked child shows its
    parent's command line until it execs. A process's first row has ``cpu_core_pct`` null
    (CPU % needs two readings).
    """

    def __init__(self, parent_pid: int, include_parent: bool = False) -> None:
        self.parent_pid = parent_pid
        self.include_parent = include_parent
        self._tracked: dict[int, _Tracked] = {}
        self._own_pid = os.getpid()

    def sample(self) -> list[dict[str, Any]]:
        """One row per Locust process alive now."""
        t = time.time()
        self._discover()
        rows = []
        for pid, tracked in list(self._tracked.items()):
            proc = tracked.proc
            try:
                with proc.oneshot():
                    if not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE:
                        raise psutil.NoSuchProcess(pid)
                    cpu = proc.cpu_percent(None)
                    rss = proc.memory_info().rss
            except psutil.NoSuchProcess:
                del self._tracked[pid]
                continue
            except psutil.AccessDenied:
                continue
            rows.append(
                {
                    "t": t,
                    "role": tracked.role,
                    "pid": pid,
                    "cpu_core_pct": cpu if tracked.primed else None,
                    "rss": rss,
                }
            )
            tracked.primed = True
        return rows

    def _discover(self) -> None:
        """Start tracking descendants (and the parent) whose command line mentions locust."""
        try:
            parent = psutil.Process(self.parent_pid)
            candidates = [parent, *parent.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        for proc in candidates:
            if proc.pid == self._own_pid or proc.pid in self._tracked:
                continue
            try:
                role = role_of(proc.cmdline())
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if role is None and self.include_parent and proc is parent:
                role = "local"
            if role is not None:
                self._tracked[proc.pid] = _Tracked(proc, role)
