"""Sample one server process (and optionally target statistics and the load generator) to JSON lines.

The server is chosen by --pid, by the TCP --port it listens on, or by a --name substring
of its command line. One ``monitor.jsonl`` row is appended per --interval; when the
process exits a last row with ``alive: false`` is written and the monitor exits 0. With
--database-pid it also samples the target's database (the process and all its descendants, summed:
PostgreSQL's postmaster and backends) into ``database.jsonl``.
SIGTERM, SIGINT or --duration end it cleanly. The target password may come from the
environment variable LQH_TARGET_PASSWORD instead of the command line.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from harness.errors import HarnessError
from harness.plan import TARGET_PASSWORD_ENV as PASSWORD_ENV
from harness.runfolder import DATABASE, GENERATOR, MONITOR

if TYPE_CHECKING:
    from harness.targets.base import Admin
    from monitors.stats import StatsPoller

STATS_TIMEOUT = 3.0  # seconds a statistics request may take (at least two intervals)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``lqharness monitor`` options."""
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--pid", type=int, help="pid of the server process")
    which.add_argument("--port", type=int, help="TCP port the server process listens on")
    which.add_argument("--name", help="substring of the server's process name or command line (one match)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples (default 1.0)")
    parser.add_argument("--uss", action="store_true", help="also sample USS (unique memory; costly)")
    parser.add_argument("--out", type=Path, required=True, help=f"{MONITOR} to append samples to")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--generator-parent", type=int, metavar="PID", help="sample Locust processes under PID")
    parser.add_argument(
        "--generator-include-parent",
        action="store_true",
        help="sample the --generator-parent process itself too (Locust running in-process)",
    )
    parser.add_argument(
        "--generator-out",
        type=Path,
        metavar="FILE",
        help=f"generator samples (default: {GENERATOR} beside --out)",
    )
    parser.add_argument(
        "--database-pid",
        type=int,
        metavar="PID",
        help="also sample the target's database: PID and its descendants, summed (PostgreSQL's postmaster)",
    )
    parser.add_argument(
        "--database-out", type=Path, metavar="FILE", help=f"database samples (default: {DATABASE} beside --out)"
    )
    parser.add_argument("--target-url", help="poll statistics of the target at this URL")
    parser.add_argument("--target-name", default="kalamdb", help="target driver for --target-url (default kalamdb)")
    parser.add_argument("--target-user", default="root", help="target admin user (default root)")
    parser.add_argument("--target-password", help=f"target admin password (default: ${PASSWORD_ENV})")


def main(args: argparse.Namespace) -> int:
    """Resolve the process, then sample until it dies, the duration ends or a signal arrives."""
    from monitors.discovery import listener_pid, pid_by_name, process_by_pid
    from monitors.generator import GeneratorSampler
    from monitors.jsonl import JsonlWriter
    from monitors.loop import StopReason, run_monitor
    from monitors.sampler import ProcessSampler
    from monitors.tree import ProcessTreeSampler

    if not args.interval > 0:
        raise HarnessError(f"--interval must be positive, got {args.interval}")
    if args.duration is not None and not args.duration > 0:
        raise HarnessError(f"--duration must be positive, got {args.duration}")
    if args.pid is not None:
        proc = process_by_pid(args.pid)
    elif args.port is not None:
        proc = process_by_pid(listener_pid(args.port))
    else:
        proc = process_by_pid(pid_by_name(args.name))
    generator = None
    if args.generator_parent is not None:
        process_by_pid(args.generator_parent)
        generator = GeneratorSampler(args.generator_parent, args.generator_include_parent)
    database = None
    if args.database_pid is not None:
        database = ProcessTreeSampler(process_by_pid(args.database_pid))
    stats = _stats_poller(args) if args.target_url else None

    sampler = ProcessSampler(proc, uss=args.uss, ports=[args.port] if args.port is not None else None)
    try:
        out = JsonlWriter(args.out)
        generator_out = JsonlWriter(args.generator_out or args.out.with_name(GENERATOR)) if generator else None
        database_out = JsonlWriter(args.database_out or args.out.with_name(DATABASE)) if database else None
    except OSError as exc:
        raise HarnessError(f"cannot write samples: {exc}") from None

    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    if stats is not None:
        stats.start()
    try:
        reason = run_monitor(
            sampler, out, args.interval, stop, args.duration, stats, generator, generator_out, database, database_out
        )
    finally:
        if stats is not None:
            stats.stop()
        out.close()
        for extra in (generator_out, database_out):
            if extra is not None:
                extra.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if reason is StopReason.DIED:
        print(f"lqharness monitor: process {proc.pid} is gone; last sample written", file=sys.stderr)
    return 0


def _stats_poller(args: argparse.Namespace) -> StatsPoller:
    """A poller that reaches the target through the target interface (``harness.targets``)."""
    from harness.plan import TargetSpec
    from monitors.stats import StatsPoller

    password = args.target_password if args.target_password is not None else os.environ.get(PASSWORD_ENV)
    if password is None:
        raise HarnessError(f"--target-url needs --target-password or ${PASSWORD_ENV}")
    timeout = max(2 * args.interval, STATS_TIMEOUT)
    spec = TargetSpec(
        name=args.target_name,
        url=args.target_url,
        user=args.target_user,
        password=password,
        options={"timeout": timeout},
    )

    def connect() -> Admin:
        from harness.targets import create_target

        return create_target(spec).admin()

    return StatsPoller(connect, args.interval)
