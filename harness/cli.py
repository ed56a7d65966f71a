"""``lqharness``: the command line. Each subcommand lives in the module named for its room.

A command module exposes ``add_arguments(parser)`` and ``main(args) -> int`` and keeps
heavy imports (locust, pandas, aiohttp) inside ``main`` so ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("serve", "harness.refserver.command", "run the embedded reference server (KalamDB v1 protocol over SQLite)"),
    ("run", "harness.run_command", "run scenarios against a target and judge them"),
    ("list", "harness.list_command", "list the scenario catalogue"),
    ("monitor", "monitors.command", "sample a server process (and target statistics) to a JSON-lines file"),
    ("judge", "reports.command", "judge a run folder again, optionally with another criteria file"),
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lqharness",
        description="Stress and correctness harness for databases with live queries.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name, help_text in COMMANDS:
        module = importlib.import_module(module_name)
        doc = (module.__doc__ or help_text).strip()
        cmd = sub.add_parser(name, help=help_text, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
        module.add_arguments(cmd)
        cmd.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    from harness.errors import HarnessError

    args = build_parser().parse_args(argv)
    try:
        return int(args._module.main(args) or 0)
    except HarnessError as exc:
        print(f"lqharness: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("lqharness: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
