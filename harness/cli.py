"""``lqharness``: the command line. Each subcommand ``<name>`` lives in ``harness/commands/<name>.py``.

A command module exposes ``add_arguments(parser)`` and ``main(args) -> int``. Only the
chosen command's module is imported, so ``--help`` and light commands stay fast and one
command's heavy dependencies (locust, pandas, aiohttp) never load for another.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NoReturn

COMMANDS: dict[str, tuple[str, str]] = {
    "serve": (
        "harness.commands.serve",
        "run the embedded reference server (KalamDB v1 protocol over SQLite)",
    ),
    "run": ("harness.commands.run", "run scenarios against a target and judge them"),
    "list": ("harness.commands.list", "list the scenario catalogue"),
    "monitor": (
        "harness.commands.monitor",
        "sample a server process (and target statistics) to a JSON-lines file",
    ),
    "target": ("harness.commands.target", "start or stop a target server (target up parse / target down)"),
    "judge": ("harness.commands.judge", "judge a run folder again, optionally with another criteria file"),
    "bench": ("harness.commands.bench", "benchmark the reference server and the load generator's checks"),
    "history": ("harness.commands.history", "list the recorded runs, or render a scenario's trend (--html)"),
    "baseline": ("harness.commands.baseline", "pin a recorded run as the baseline of its scenario and machine"),
    "compare": ("harness.commands.compare", "compare a run folder with its baseline (the REGRESSION criterion)"),
    "faults": ("harness.commands.faults", "run the fault matrix: each fault caught by its criterion, no false alarms"),
}


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr and exit 2, as every error here is."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(command: str | None) -> argparse.ArgumentParser:
    """The parser with every command listed and only ``command``'s arguments loaded."""
    parser = OneLineErrorParser(
        prog="lqharness",
        description="Stress and correctness harness for databases with live queries.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in COMMANDS.items():
        if name != command:
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(
            name,
            help=help_text,
            description=(module.__doc__ or help_text).strip(),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(cmd)
        cmd.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    from harness import exitcodes
    from harness.errors import HarnessError

    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    args = build_parser(command if command in COMMANDS else None).parse_args(argv)
    try:
        return int(args._module.main(args) or 0)
    except HarnessError as exc:
        print(f"lqharness: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("lqharness: interrupted", file=sys.stderr)
        return exitcodes.INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
