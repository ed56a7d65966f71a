"""List the run history: the recorded runs with their key measurements and verdicts.

Every judged run is recorded in runs/history.sqlite (beside the runs) or in the database given
with --history. `--json` prints the records for machines; `--html FILE` renders a scenario's
trend (each tracked measurement over the comparable history, with baseline and noise band).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

COLUMNS = (("delivery_p99_ms", "p99 ms"), ("delivery_per_s", "notif/s"), ("writes_per_s", "writes/s"),
           ("rss_peak_mib", "RSS MiB"))  # fmt: skip


def add_history_option(parser: argparse.ArgumentParser, default: str) -> None:
    """``--history URL``, shared by every command that reads or writes the history."""
    parser.add_argument(
        "--history", default=None, metavar="URL",
        help=f"history database: an SQLite file or a URL such as postgresql://user@host/db (default: {default})",
    )  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", nargs="?", metavar="SCENARIO", help="only the runs of this scenario")
    add_history_option(parser, "runs/history.sqlite")
    parser.add_argument("--json", action="store_true", help="print the records as JSON")
    parser.add_argument("--html", type=Path, metavar="FILE", help="write the scenario's trend page to FILE")
    parser.add_argument("--limit", type=int, default=50, metavar="N", help="newest N runs in the table (default 50)")


def _cell(value: Any) -> str:
    return "-" if value is None else f"{value:.4g}" if isinstance(value, float) else str(value)


def table(runs: list[Any], pinned: set[str]) -> str:
    """One line per run, oldest first; a pinned baseline is marked with ``*``."""
    head = ["started", "run id", "scenario", "profile", "target", "machine", "verdict", "regression",
            *(label for _, label in COLUMNS)]  # fmt: skip
    rows = [head]
    for run in runs:
        f = run.facts
        rows.append([
            time.strftime("%Y-%m-%d %H:%M", time.localtime(f.started_at)),
            f.run_id + ("*" if f.run_id in pinned else ""), f.scenario, f.profile, f"{f.target} {f.target_version}",
            f.fingerprint[:8], run.verdict, run.verdicts.get("REGRESSION", "-"),
            *(_cell(run.metrics.get(name)) for name, _ in COLUMNS),
        ])  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows)


def main(args: argparse.Namespace) -> int:
    import orjson

    from harness.errors import HarnessError
    from reports.criteria import load_criteria
    from reports.history import DEFAULT_STORE, open_history
    from reports.html import CSS
    from reports.regression import CRITERION, scenario_trend
    from reports.trends import trend_page

    if args.limit < 1:
        raise HarnessError("--limit must be 1 or more")
    with open_history(args.history or DEFAULT_STORE, must_exist=True) as store:
        runs = store.runs(args.scenario)
        if args.scenario and not runs:
            raise HarnessError(f"the history has no run of scenario {args.scenario!r}")
        if args.html is not None:
            names = sorted({r.facts.scenario for r in runs})
            if len(names) != 1:
                raise HarnessError(f"--html needs a SCENARIO (the history has: {', '.join(names) or 'no run'})")
            trend = scenario_trend(runs, names[0], load_criteria()[CRITERION],
                                   lambda f: store.pinned(f.scenario, f.profile, f.fingerprint))  # fmt: skip
            try:
                args.html.write_text(trend_page(trend, CSS))
            except OSError as exc:
                raise HarnessError(f"cannot write {args.html}: {exc.strerror or exc}") from exc
            print(f"trend of {names[0]} ({len(trend.runs)} comparable runs): {args.html}")
            return 0
        pinned = {p.run_id for p in store.pins()}
    shown = runs[-args.limit :]
    if args.json:
        sys.stdout.write(orjson.dumps([r.to_dict() for r in shown], option=orjson.OPT_INDENT_2).decode() + "\n")
    elif not shown:
        print("the history has no run yet")
    else:
        print(table(shown, pinned))
    return 0
