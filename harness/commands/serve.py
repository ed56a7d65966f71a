"""Run the embedded reference server: KalamDB's v1 protocol (HTTP SQL API + /v1/ws live queries) over SQLite.

Examples:
  KALAMDB_ROOT_PASSWORD='Root-Pass-123' lqharness serve --port 0 --ready-file /tmp/ref.json
  lqharness serve --protocol 0.4 --port 8080                      # KalamDB 0.4.3's protocol
  lqharness serve --root-password-file ~/.lqh-root --host 0.0.0.0 --allow-remote   # reachable from other hosts
  lqharness serve --queue-overflow drop --queue-size 128          # KalamDB's own overflow behaviour
  lqharness serve --fault drop:every=100 --fault delay:ms=50      # misbehave, to test the judge

Overflow: with --queue-overflow block (default) no notification is lost; a consumer whose queue
stays full for --block-timeout seconds is disconnected with WebSocket close code 1013
"Notification queue full" (and a log line). With drop, notifications are dropped as KalamDB does.

Protocol generations (docs/kalamdb-0.7.md): 0.7 (default, KalamDB 0.7.1) has `_version` row
versions, string cursors, a bounded replay log for resumes (CURSOR_EXPIRED outside it) and
filter enter/leave as insert/delete; 0.4 (KalamDB 0.4.3) has Snowflake `_seq` and numeric cursors.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import os
import socket
from pathlib import Path

from harness.errors import HarnessError
from refserver.faults import FAULT_HELP


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Register the ``serve`` flags."""
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1); one that is not loopback needs --allow-remote and a root password",
    )
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow --host to be an address other hosts can reach (the server is a test tool, not hardened for it)",
    )
    parser.add_argument(
        "--protocol",
        choices=("0.7", "0.4"),
        default="0.7",
        help="KalamDB protocol generation to speak (default: 0.7, today's upstream)",
    )
    parser.add_argument(
        "--port", type=int, help="TCP port; 0 picks a free port (default: 2900 under 0.7, 8080 under 0.4)"
    )
    parser.add_argument(
        "--max-subscriptions-per-user",
        type=int,
        default=0,
        metavar="N",
        help="subscriptions one user may hold over all connections, as KalamDB's "
        "rate_limit.max_subscriptions_per_user (10 there); excess gets SUBSCRIPTION_LIMIT_EXCEEDED "
        "(default: 0, unlimited)",
    )
    parser.add_argument(
        "--max-subscriptions-per-connection",
        type=int,
        default=100,
        metavar="N",
        help="subscriptions per WebSocket; excess gets UNSUPPORTED (default: 100, KalamDB's fixed cap)",
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="keep the SQLite data here (default: a temporary folder removed at exit)",
    )
    parser.add_argument(
        "--root-password-file",
        type=Path,
        metavar="FILE",
        help="file whose first line is root's password (or env KALAMDB_ROOT_PASSWORD); "
        "without either, root must be set up via POST /v1/api/auth/setup",
    )
    parser.add_argument(
        "--root-password",
        help="root's password; visible to other users in `ps`: prefer --root-password-file or the environment",
    )
    parser.add_argument("--jwt-secret", help="HS256 secret for tokens (default: random per start)")
    parser.add_argument("--node-id", type=int, default=1, help="Snowflake node id 0..1023 (default: 1)")
    parser.add_argument(
        "--queue-size", type=int, default=1024, help="notifications queued per connection (default: 1024)"
    )
    parser.add_argument(
        "--queue-overflow",
        choices=("block", "drop"),
        default="block",
        help="when a connection's queue is full: block (never lose; disconnect after "
        "--block-timeout with close 1013) or drop (KalamDB's behaviour) (default: block)",
    )
    parser.add_argument(
        "--block-timeout",
        type=float,
        default=10.0,
        help="seconds a full queue may block fan-out before that consumer is disconnected (default: 10)",
    )
    parser.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=10.0,
        help="close an idle WebSocket after this many seconds, code 1000 (default: 10)",
    )
    parser.add_argument(
        "--auth-timeout",
        type=float,
        default=3.0,
        help="seconds a WebSocket may stay unauthenticated, then close 1008 (default: 3)",
    )
    parser.add_argument(
        "--auth-rate-limit",
        type=int,
        default=0,
        metavar="N",
        help="WebSocket authentications accepted per client IP per second, as KalamDB's "
        "rate_limit.max_auth_requests_per_ip_per_sec (20 there); excess gets auth_error "
        '"Too many authentication attempts" and close 1008 (default: 0, unlimited)',
    )
    parser.add_argument(
        "--max-ws-message-size",
        type=int,
        default=1 << 20,
        help="largest client WebSocket message in bytes; larger ones get MESSAGE_TOO_LARGE (default: 1048576)",
    )
    parser.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        help="close a connection that has not sent a complete request head after this many seconds (default: 10)",
    )
    parser.add_argument(
        "--log-level",
        default="warning",
        choices=("debug", "info", "warning", "error"),
        help="log level (default: warning)",
    )
    parser.add_argument(
        "--memory-limit-mb",
        type=int,
        metavar="MB",
        help="run under a memory bound: SQLite's page cache and heap are sized from it and "
        "system.stats reports it as memory_limit_bytes (default: unbounded)",
    )
    parser.add_argument(
        "--synchronous",
        default="normal",
        choices=("normal", "full"),
        help="SQLite's commit durability: normal (WAL, no sync per commit: fast, may lose the last "
        "commits on power loss) or full (an fsync in every commit, which then bounds the server's "
        "commit rate by the disk) (default: normal)",
    )
    parser.add_argument("--fault", action="append", default=[], metavar="SPEC", help=FAULT_HELP)
    parser.add_argument(
        "--ready-file",
        type=Path,
        help='write {"url": ..., "pid": ...} here once listening (for parents starting it on port 0)',
    )


def is_loopback(host: str) -> bool:
    """True when every address ``host`` names is a loopback one (an unresolvable name is not)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return False
    return bool(infos) and all(ipaddress.ip_address(str(info[4][0]).split("%")[0]).is_loopback for info in infos)


def main(args: argparse.Namespace) -> int:
    """Validate the flags and run the server until SIGTERM/SIGINT."""
    from harness.credentials import read_password_file
    from refserver.app import ServerConfig, run_server
    from refserver.auth import check_password
    from refserver.errors import SqlError
    from refserver.faults import FaultSpecError, parse_faults
    from refserver.generation import GENERATIONS

    if args.port is None:
        args.port = GENERATIONS[args.protocol].default_port
    if args.max_subscriptions_per_user < 0:
        raise HarnessError(f"--max-subscriptions-per-user must be 0 or more, not {args.max_subscriptions_per_user}")
    if args.max_subscriptions_per_connection < 1:
        raise HarnessError("--max-subscriptions-per-connection must be at least 1")
    if not 0 <= args.port <= 65535:
        raise HarnessError(f"--port must be in 0..65535, not {args.port}")
    if not 0 <= args.node_id <= 1023:
        raise HarnessError(f"--node-id must be in 0..1023, not {args.node_id}")
    if args.auth_rate_limit < 0:
        raise HarnessError(f"--auth-rate-limit must be 0 or more, not {args.auth_rate_limit}")
    for name in ("queue_size", "max_ws_message_size"):
        if getattr(args, name) < 1:
            raise HarnessError(f"--{name.replace('_', '-')} must be at least 1")
    if args.memory_limit_mb is not None and args.memory_limit_mb < 32:
        raise HarnessError(f"--memory-limit-mb must be at least 32, not {args.memory_limit_mb}")
    for name in ("block_timeout", "heartbeat_timeout", "auth_timeout", "header_timeout"):
        if not getattr(args, name) > 0:
            raise HarnessError(f"--{name.replace('_', '-')} must be positive")
    try:
        faults = parse_faults(args.fault)
    except FaultSpecError as exc:
        raise HarnessError(f"--fault: {exc}") from None
    if args.root_password_file is not None and args.root_password is not None:
        raise HarnessError("give --root-password-file or --root-password, not both")
    password = (
        read_password_file(args.root_password_file, "--root-password-file")
        if args.root_password_file is not None
        else args.root_password or os.environ.get("KALAMDB_ROOT_PASSWORD") or None
    )
    if password:
        try:
            check_password(password)
        except SqlError as exc:
            raise HarnessError(f"root password rejected: {exc.message}") from None
    if not is_loopback(args.host):
        if not args.allow_remote:
            raise HarnessError(f"--host {args.host} is reachable from other hosts: add --allow-remote to mean it")
        if not password:
            raise HarnessError(
                f"--host {args.host} needs a root password (--root-password-file or $KALAMDB_ROOT_PASSWORD): "
                "a server without one lets the first caller set it up"
            )
    if args.data_dir is not None and args.data_dir.exists() and not args.data_dir.is_dir():
        raise HarnessError(f"--data-dir {args.data_dir} is not a directory")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = ServerConfig(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        root_password=password,
        jwt_secret=args.jwt_secret,
        node_id=args.node_id,
        queue_size=args.queue_size,
        queue_overflow=args.queue_overflow,
        block_timeout=args.block_timeout,
        heartbeat_timeout=args.heartbeat_timeout,
        auth_timeout=args.auth_timeout,
        auth_rate_limit=args.auth_rate_limit,
        max_ws_message_size=args.max_ws_message_size,
        header_timeout=args.header_timeout,
        ready_file=args.ready_file,
        memory_limit_mb=args.memory_limit_mb,
        synchronous=args.synchronous,
        faults=faults,
        protocol=args.protocol,
        max_subscriptions_per_user=args.max_subscriptions_per_user,
        max_subscriptions_per_connection=args.max_subscriptions_per_connection,
    )
    return run_server(config)
