"""List the scenario catalogue: name, the changes it expects, and what it proves.

Run a whole group by its name (`lqharness run live`) or single scenarios by theirs.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("groups", nargs="*", metavar="GROUP", help="only these groups or scenarios")


def main(args: argparse.Namespace) -> int:
    from harness.scenarios.catalogue import catalogue, resolve
    from reports.judge import RULES

    scenarios = resolve(args.groups, RULES) if args.groups else list(catalogue(RULES).values())
    width = max(len(s.name) for s in scenarios)
    for s in scenarios:
        expected = "" if s.expected is None else f"{s.expected:>5}"
        print(f"{s.name:<{width}}  {expected:>5}  {s.title}")
    return 0
