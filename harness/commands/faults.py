"""Run the fault matrix: every server and network fault, the scenario exposing it, the criterion that must catch it.

Each fault runs once; then each scenario of the matrix runs --runs times clean, where any
failed criterion is a false alarm. Prints the matrix as a Markdown table (also written to
<out>/faults.md). Exit code: 0 when every fault was caught with no false alarm, else 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--runs N``, ``--quick-matrix``, ``--only NAME``, ``--out DIR``."""
    parser.add_argument("--runs", type=int, default=5, metavar="N", help="clean runs per scenario (default 5)")
    parser.add_argument(
        "--quick-matrix", action="store_true", help="only the cases marked quick (one server and one network fault)"
    )
    parser.add_argument(
        "--only", action="append", default=[], metavar="NAME", help="only cases of this scenario or fault (repeatable)"
    )
    parser.add_argument("--out", type=Path, default=Path("runs/faults"), metavar="DIR", help="where the runs go")


def main(args: argparse.Namespace) -> int:
    """Run the chosen cases and their clean runs, print and save the table, return the matrix's exit code."""
    from harness.errors import HarnessError
    from harness.orchestration.faults_matrix import Matrix, exit_code, select, table

    if args.runs < 1:
        raise HarnessError(f"--runs must be at least 1, got {args.runs}")
    cases = select(args.quick_matrix, args.only)
    if not cases:
        raise HarnessError(
            f"no matrix case matches {', '.join(args.only)} (see harness/orchestration/faults_matrix.py)"
        )
    outcomes, cleans = Matrix(args.out, args.runs, progress=lambda line: print(line, flush=True)).run(cases)
    text = table(outcomes, cleans)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "faults.md").write_text(text + "\n")
    return exit_code(outcomes, cleans)
