"""Pin the baseline of a scenario: `baseline set RUN_DIR` makes that recorded run the baseline for its
scenario, profile and machine, in place of the median of the last comparable passing runs.

`baseline show` lists the pins; `baseline clear RUN_DIR` removes the pin of that run's scenario,
profile and machine. The history is the one beside RUN_DIR unless --history says otherwise.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from harness.commands.history import add_history_option


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("set", "show", "clear"), help="set or clear a pin, or show the pins")
    parser.add_argument("run_dir", nargs="?", type=Path, metavar="RUN_DIR", help="the run folder (set, clear)")
    add_history_option(parser, "history.sqlite beside RUN_DIR; runs/history.sqlite for show")


def main(args: argparse.Namespace) -> int:
    from harness.errors import HarnessError
    from reports.history import DEFAULT_FILE, DEFAULT_STORE, open_history
    from reports.runfolder import load_run_folder
    from reports.tracked import run_facts
    from reports.verdict import Unsupported

    if args.action == "show":
        if args.run_dir is not None:
            raise HarnessError("baseline show takes no RUN_DIR")
        with open_history(args.history or DEFAULT_STORE, must_exist=True) as store:
            pins = store.pins()
        for pin in pins:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(pin.pinned_at))
            print(f"{pin.scenario}  {pin.profile}  machine {pin.fingerprint[:8]}  {pin.run_id}  (pinned {when})")
        if not pins:
            print("no baseline pinned")
        return 0
    if args.run_dir is None:
        raise HarnessError(f"baseline {args.action} needs RUN_DIR")
    folder = load_run_folder(args.run_dir)
    try:
        run_id = run_facts(folder).run_id
    except Unsupported as exc:
        raise HarnessError(f"{args.run_dir}: {exc}") from exc
    with open_history(args.history or folder.path.parent / DEFAULT_FILE, must_exist=True) as store:
        if args.action == "set":
            run = store.pin(run_id)
            f = run.facts
            print(f"baseline of {f.scenario} ({f.profile}) on machine {f.fingerprint[:8]}: {run_id}")
            return 0
        recorded = store.get(run_id)
        if recorded is None:
            raise HarnessError(f"run {run_id} is not in the history")
        f = recorded.facts
        if not store.unpin(f.scenario, f.profile, f.fingerprint):
            raise HarnessError(f"no baseline pinned for {f.scenario} ({f.profile}) on machine {f.fingerprint[:8]}")
        print(f"baseline of {f.scenario} ({f.profile}) on machine {f.fingerprint[:8]} cleared")
    return 0
