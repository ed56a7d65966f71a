"""Find the server process to monitor: by pid, by the TCP port it listens on, or by name.

Every failure is a ``HarnessError`` with one line that says what was looked for and, for
ambiguous names, which processes matched, so the monitor never starts on a guess.
"""

from __future__ import annotations

import os

import psutil

from harness.errors import HarnessError

_MAX_LISTED = 8


def process_by_pid(pid: int) -> psutil.Process:
    """The live process with ``pid``; a zombie or a missing pid is an error."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            raise HarnessError(f"process {pid} has already exited (zombie)")
    except psutil.NoSuchProcess:
        raise HarnessError(f"no process with pid {pid}") from None
    return proc


def listener_pid(port: int) -> int:
    """Pid of the process listening on TCP ``port`` (any local address, IPv4 or IPv6)."""
    if not 0 < port < 65536:
        raise HarnessError(f"port {port} is out of range 1..65535")
    try:
        conns = psutil.net_connections(kind="tcp")
    except psutil.AccessDenied:
        raise HarnessError("cannot read the TCP socket table (permission denied)") from None
    listening = [c for c in conns if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port]
    if not listening:
        raise HarnessError(f"no process listens on TCP port {port}")
    pids = sorted({c.pid for c in listening if c.pid is not None})
    if not pids:
        raise HarnessError(f"a socket listens on TCP port {port} but its owner is not visible (permissions?)")
    if len(pids) > 1:
        raise HarnessError(f"several processes listen on TCP port {port}: {_describe(pids)}; use --pid")
    return pids[0]


def pid_by_name(name: str) -> int:
    """Pid of the one process whose name or command line contains ``name``.

    The monitor itself and its ancestors are skipped: their command lines carry ``name``
    as an argument.
    """
    if not name.strip():
        raise HarnessError("--name must not be empty")
    own = {os.getpid(), *(p.pid for p in psutil.Process().parents())}
    matches = []
    for proc in psutil.process_iter(["pid", "name", "cmdline", "status"]):
        info = proc.info
        if info["pid"] in own or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        text = " ".join(info["cmdline"] or ()) or ""
        if name in (info["name"] or "") or name in text:
            matches.append(info["pid"])
    if not matches:
        raise HarnessError(f"no process matches name {name!r}")
    if len(matches) > 1:
        raise HarnessError(f"{len(matches)} processes match name {name!r}: {_describe(matches)}; use --pid")
    return matches[0]


def _describe(pids: list[int]) -> str:
    """``pid (command line)`` for the first few pids, for an error message."""
    parts = []
    for pid in pids[:_MAX_LISTED]:
        try:
            cmd = " ".join(" ".join(psutil.Process(pid).cmdline()).split())  # one line, whatever argv holds
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            cmd = "?"
        parts.append(f"{pid} ({cmd[:60]})")
    more = f" and {len(pids) - _MAX_LISTED} more" if len(pids) > _MAX_LISTED else ""
    return ", ".join(parts) + more
