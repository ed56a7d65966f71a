"""Benchmark the reference server (insert rate, fan-out rate, delivery latency) and the load generator's
per-notification checks, then print the results and write them as Markdown (``make bench``).

The server runs as a subprocess and its load in separate processes; the harness section runs a
fake sender and the harness's own code in processes of their own. Each part takes a few minutes.
Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--out FILE``, ``--repeats N``, ``--seconds S``, ``--part all|server|harness``."""
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"), help="Markdown file to write")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (median reported)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one run")
    parser.add_argument(
        "--part",
        choices=("all", "server", "harness"),
        default="all",
        help="measure the reference server, the load generator (harness), or both",
    )


def main(args: argparse.Namespace) -> int:
    """Measure, print the report and write it to ``--out``."""
    from harness.errors import HarnessError
    from harness.orchestration.bench import report, run

    if args.repeats < 1 or not args.seconds > 0:
        raise HarnessError("--repeats must be ≥ 1 and --seconds > 0")
    parts = ("server", "harness") if args.part == "all" else (args.part,)
    text = report(run(args.repeats, args.seconds, parts))
    print(text)
    try:
        args.out.write_text(text)
    except OSError as exc:
        raise HarnessError(f"cannot write {args.out}: {exc.strerror or exc}") from exc
    return 0
