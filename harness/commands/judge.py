"""Judge run folders again, optionally with another criteria file.

Reads only the run folder(s); writes verdict.json, junit.xml and report.html into each and
prints a short verdict table. Exit code: 0 pass, 1 fail, 2 inconclusive or error.
Override thresholds with a TOML file holding any keys of the packaged reports/criteria.toml.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands.history import add_history_option
from harness.runfolder import DELIVERY, JUNIT, MONITOR, REPORT, RUN_JSON, STATS, VERDICT

EVIDENCE = (RUN_JSON, DELIVERY, MONITOR, STATS)  # a folder with none of these holds nothing to judge


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``RUN_DIR...``, ``--criteria FILE``, ``--quiet``, ``--no-report``."""
    parser.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR", help="run folder(s) to judge")
    parser.add_argument(
        "--criteria", type=Path, default=None, metavar="FILE",
        help="TOML file overriding the default thresholds (same tables and keys as reports/criteria.toml)",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="print nothing but errors")
    add_history_option(parser, "history.sqlite beside each RUN_DIR")
    parser.add_argument("--no-report", action="store_true", help=f"write {VERDICT} and {JUNIT} only, no {REPORT}")


def main(args: argparse.Namespace) -> int:
    """Judge each run folder; the exit code is the worst verdict (``exitcodes.combine``)."""
    from harness import exitcodes
    from harness.errors import HarnessError
    from reports.history import store_url
    from reports.judge import judge_run

    if args.history is not None:
        store_url(args.history)  # a malformed URL is an error before anything is judged
    for run_dir in args.run_dirs:
        if not run_dir.is_dir():
            raise HarnessError(f"run folder {run_dir} does not exist or is not a directory")
        if not any((run_dir / name).is_file() for name in EVIDENCE):
            raise HarnessError(f"{run_dir} is not a run folder: it has none of {', '.join(EVIDENCE)}")
    return exitcodes.combine(
        judge_run(run_dir, args.criteria, quiet=args.quiet, report=not args.no_report, history=args.history)
        for run_dir in args.run_dirs
    )
