"""Start or stop a target server for use outside ``lqharness run``.

``lqharness target up parse`` installs Parse Server + LiveQuery on first use (from the npm
registry, into a cache outside the clone), initialises a private PostgreSQL cluster in DIR,
starts both bound to 127.0.0.1 and waits until they are healthy; it prints the URL, the app id
and where the master key is recorded. ``lqharness target down`` stops them by their recorded
pids and removes the cluster.
"""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_DIR = Path("runs") / "target-parse"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    up = sub.add_parser("up", help="install if needed and start a target server")
    up.add_argument("name", choices=("parse",), help="which target to start")
    up.add_argument(
        "--dir", type=Path, default=DEFAULT_DIR, help=f"folder for its cluster, logs and record (default {DEFAULT_DIR})"
    )
    down = sub.add_parser("down", help="stop the target server started by `target up`")
    down.add_argument("--dir", type=Path, default=DEFAULT_DIR, help=f"the folder given to `up` (default {DEFAULT_DIR})")


def main(args: argparse.Namespace) -> int:
    from harness.errors import HarnessError
    from harness.orchestration import parse_process

    if args.action == "down":
        state = parse_process.stop_recorded(args.dir)
        print(f"stopped parse-server (pid {state.get('node_pid')}) and PostgreSQL; removed its cluster in {args.dir}")
        return 0
    parse_process.check_prerequisites()
    if (args.dir / parse_process.STATE_FILE).exists():
        raise HarnessError(f"a target is already up in {args.dir}: `lqharness target down --dir {args.dir}` first")
    server = parse_process.start_parse(args.dir, detach=True)
    record = parse_process.write_state(server)
    pids = f"pid {server.pid}, postgres pid {server.pg_pid}"
    print(f"parse-server up at {server.url} (app id {parse_process.APP_ID}, {pids})")
    print(f"master key and pids recorded in {record}")
    print(f"run against it: lqharness run live --target parse --target-dir {args.dir}")
    print(f"stop it:        lqharness target down --dir {args.dir}")
    return 0
