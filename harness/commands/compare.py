"""Compare a run folder with its baseline: the REGRESSION criterion, without judging or recording.

The baseline is the pinned run for the run's scenario, profile and machine, else the median of
the last comparable passing runs in the history; --baseline RUN_DIR compares with that run
instead. Exit code: 0 pass, 1 a measurement regressed, 2 inconclusive, n/a or error.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from harness.commands.history import add_history_option

if TYPE_CHECKING:
    from reports.criteria import Criteria
    from reports.history import HistoryStore
    from reports.tracked import HistoryRun


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the run folder to compare")
    parser.add_argument("--baseline", type=Path, metavar="RUN_DIR", help="compare with this run folder instead")
    add_history_option(parser, "history.sqlite beside RUN_DIR")
    parser.add_argument("--criteria", type=Path, metavar="FILE", help="criteria file (TOML) overriding the defaults")
    parser.add_argument("--json", action="store_true", help="print the comparison as JSON")


def _run(path: Path, store: HistoryStore, criteria: Criteria) -> HistoryRun:
    """The run as the history holds it, else as its folder says (facts, measurements, verdicts)."""
    import orjson

    from harness.errors import HarnessError
    from harness.runfolder import VERDICT
    from reports.runfolder import load_run_folder
    from reports.tracked import HistoryRun, measure, run_facts
    from reports.verdict import INCONCLUSIVE, Unsupported

    folder = load_run_folder(path)
    try:
        facts = run_facts(folder)
    except Unsupported as exc:
        raise HarnessError(f"{path}: {exc}") from exc
    recorded = store.get(facts.run_id)
    if recorded is not None:
        return recorded
    verdicts: dict[str, str] = {}
    verdict: str = INCONCLUSIVE
    try:
        document = orjson.loads((folder.path / VERDICT).read_bytes())
        scenario = document["scenarios"][0]
        verdict = str(scenario["verdict"])
        verdicts = {str(c["id"]): str(c["verdict"]) for c in scenario["criteria"]}
    except (OSError, orjson.JSONDecodeError, KeyError, IndexError, TypeError):
        pass  # an unjudged folder still has measurements to compare
    return HistoryRun(facts, verdict, verdicts, measure(folder, criteria))


def main(args: argparse.Namespace) -> int:
    import orjson

    from harness.errors import HarnessError
    from harness.runfolder import verdict_exit_code
    from reports.criteria import load_criteria
    from reports.history import DEFAULT_FILE, open_history
    from reports.regression import CRITERION, Current, change_text, compare
    from reports.tracked import BY_NAME
    from reports.verdict import brief

    for path in (args.run_dir, args.baseline):
        if path is not None and not path.is_dir():
            raise HarnessError(f"run folder {path} does not exist or is not a directory")
    if args.criteria is not None and not args.criteria.is_file():
        raise HarnessError(f"criteria file not found: {args.criteria}")
    criteria = load_criteria(args.criteria)
    location = args.history or args.run_dir.parent / DEFAULT_FILE
    if args.baseline is not None and args.history is None and not Path(location).is_file():
        location = "sqlite://"  # two folders and no history: an empty store in memory, no file left behind
    with open_history(location, must_exist=args.baseline is None) as store:
        run = _run(args.run_dir, store, criteria)
        explicit = _run(args.baseline, store, criteria) if args.baseline is not None else None
        f = run.facts
        history = store.runs(f.scenario)
        pinned = store.pinned(f.scenario, f.profile, f.fingerprint)
    result = compare(Current(f, run.metrics), history, criteria[CRITERION], pinned, explicit)
    if args.json:
        out = {"run_id": f.run_id, "verdict": result.verdict, "evidence": result.evidence,
               "metrics": [c.to_dict() for c in result.changes]}  # fmt: skip
        print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())
        return verdict_exit_code(result.verdict)
    print(f"{f.scenario} ({f.profile}) run {f.run_id}: REGRESSION {result.verdict.upper()}")
    print(f"  {result.evidence}")
    for change in result.changes:
        t = BY_NAME[change.name]
        mark = "REGRESSED" if change.regressed else "ok" if change.limit_pct > 0 else "trend only"
        print(
            f"  {t.label:<36} baseline {brief(change.baseline):>9}  current {brief(change.current):>9} {t.unit:<10}"
            f" {change_text(change.change_pct):<16} band ±{brief(change.band):<8} {mark}"
        )
    return verdict_exit_code(result.verdict)
