"""Run scenarios against a target, write one run folder per scenario, judge each.

By default the embedded reference server is started on a free loopback port; with
--target parse, Parse Server + LiveQuery on a private PostgreSQL cluster (installed from
the npm registry on first use); with --target-url an already running KalamDB-protocol
server is used instead. Exit code:
0 pass, 1 fail, 2 inconclusive or harness error (over all scenarios: fail wins).
"""

from __future__ import annotations

import argparse
import os
import signal
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from harness.commands.history import add_history_option

if TYPE_CHECKING:
    from harness.scenarios.catalogue import Scenario


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "scenarios", nargs="+", metavar="SCENARIO", help="scenario or group names (see `lqharness list`)"
    )
    parser.add_argument(
        "--target",
        choices=("ref", "kalamdb", "parse"),
        default="ref",
        help="ref: start the embedded reference server (default); kalamdb: needs --target-url; "
        "parse: install (once) and start Parse Server + LiveQuery on a private PostgreSQL",
    )
    parser.add_argument(
        "--target-url",
        metavar="URL",
        help="use an already running KalamDB-protocol server, e.g. http://127.0.0.1:8080",
    )
    parser.add_argument(
        "--target-dir",
        type=Path,
        metavar="DIR",
        help="with --target parse: use the server `lqharness target up parse --dir DIR` started (not one per run)",
    )
    parser.add_argument(
        "--user",
        default=os.environ.get("KALAMDB_USER", "root"),
        help="admin user for --target-url (default: $KALAMDB_USER or root)",
    )
    parser.add_argument(
        "--password-file",
        type=Path,
        metavar="FILE",
        help="file whose first line is the admin password for --target-url (default: $KALAMDB_PASSWORD); "
        "the password is kept out of the run folder and of every command line",
    )
    parser.add_argument(
        "--password",
        help="admin password for --target-url; visible to other users in `ps`: prefer --password-file",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        metavar="N",
        help="Locust worker processes; 0 runs Locust in one process (default)",
    )
    parser.add_argument("--quick", action="store_true", help="short waits and profiles, for CI (live counts unchanged)")
    parser.add_argument(
        "--out", type=Path, default=Path("runs"), metavar="DIR", help="parent of run folders (default: runs)"
    )
    parser.add_argument("--criteria", type=Path, metavar="FILE", help="criteria file (TOML) overriding the defaults")
    parser.add_argument(
        "--server-protocol",
        choices=("0.7", "0.4"),
        help="KalamDB protocol generation of the embedded reference server (default: 0.7); "
        "against --target-url the generation is detected",
    )
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="start the reference server with this fault (see `lqharness serve --help`); repeatable",
    )
    add_history_option(parser, "history.sqlite in the --out directory")


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    """SIGINT or SIGTERM: raise KeyboardInterrupt naming the signal, so the runner cleans up and judges."""
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _verdict(run_dir: Path) -> str | None:
    """The overall verdict in a run folder's verdict.json, or None when it has none."""
    import orjson

    from harness.runfolder import VERDICT

    try:
        document = orjson.loads((run_dir / VERDICT).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return str(document.get("verdict")) if isinstance(document, dict) else None


def _embedded_only(scenarios: list[Scenario], target: str) -> list[Scenario]:
    """Leave out, with one line, the scenarios that restart the embedded server when the target is another one.

    Named alone, such a scenario is a one-line error instead: nothing of it could run.
    """
    from harness.errors import HarnessError

    if target == "ref":
        return scenarios
    restarting = [s.name for s in scenarios if s.server_restart is not None]
    if not restarting:
        return scenarios
    why = "restarts the embedded reference server (server_restart), which --target ref alone can do"
    if len(restarting) == len(scenarios):
        raise HarnessError(f"scenario {', '.join(restarting)} {why}")
    print(f"skipped: {', '.join(restarting)} ({why})")
    return [s for s in scenarios if s.server_restart is None]


def main(args: argparse.Namespace) -> int:
    from harness import exitcodes
    from harness.credentials import read_password_file
    from harness.errors import HarnessError
    from harness.orchestration.runner import Runner, RunOptions
    from harness.runfolder import REPORT, Verdict
    from harness.scenarios.catalogue import resolve
    from reports.criteria import load_criteria
    from reports.judge import RULES

    if args.workers < 0:
        raise HarnessError("--workers must be 0 or more")
    if args.criteria is not None and not args.criteria.is_file():
        raise HarnessError(f"criteria file not found: {args.criteria}")
    load_criteria(args.criteria)  # a bad criteria file is an error before any run, not after the first
    if args.target == "kalamdb" and not args.target_url:
        raise HarnessError("--target kalamdb needs --target-url URL (only the reference server is started here)")
    if args.target == "parse" and (args.target_url or args.fault):
        raise HarnessError("--target parse starts its own server: it takes neither --target-url nor --fault")
    if args.target_dir is not None and args.target != "parse":
        raise HarnessError("--target-dir is for --target parse (a server `lqharness target up parse` started)")
    if args.target == "parse" and args.target_dir is not None:
        from harness.orchestration.parse_process import recorded_spec

        recorded_spec(args.target_dir)  # not up, or not running: one line before any run folder
    elif args.target == "parse":
        from harness.orchestration.parse_process import check_prerequisites

        check_prerequisites()
    if args.target_url and args.server_protocol:
        raise HarnessError("--server-protocol applies to the embedded reference server, not to --target-url")
    if args.fault and args.target_url:
        raise HarnessError("--fault applies to the embedded reference server, not to --target-url")
    if args.history is not None:
        from reports.history import store_url

        store_url(args.history)  # a malformed URL is an error before the run, not after it
    if args.password_file is not None and args.password is not None:
        raise HarnessError("give --password-file or --password, not both")
    password = (
        read_password_file(args.password_file, "--password-file")
        if args.password_file is not None
        else args.password or os.environ.get("KALAMDB_PASSWORD")
    )
    if args.target_url and not password:
        raise HarnessError("--target-url needs a password: --password-file FILE or $KALAMDB_PASSWORD")
    scenarios = resolve(args.scenarios, RULES)
    options = RunOptions(
        target="kalamdb" if args.target_url else args.target,
        target_url=args.target_url,
        target_dir=args.target_dir,
        user=args.user,
        password=password,
        workers=args.workers,
        quick=args.quick,
        out_dir=args.out,
        criteria=args.criteria,
        server_args=(
            "--protocol",
            args.server_protocol or "0.7",
            *(a for spec in args.fault for a in ("--fault", spec)),
        ),
        history=args.history,
    )
    scenarios = _embedded_only(scenarios, options.target)
    runner = Runner(options)
    for sig in (signal.SIGINT, signal.SIGTERM):  # both end the run the same way: stop, mark, judge, exit 130
        signal.signal(sig, _interrupt)
    codes = [runner.run(s) for s in scenarios]
    words = {exitcodes.PASS: "pass", exitcodes.FAIL: "FAIL"}
    shown = [
        "n/a" if _verdict(run_dir) == Verdict.NA else words.get(one, "inconclusive")
        for run_dir, one in zip(runner.run_dirs, codes, strict=True)
    ]
    # a scenario that does not apply to the target (n/a) is left out of the group's verdict, as n/a criteria are
    code = exitcodes.combine(one for one, word in zip(codes, shown, strict=True) if word != "n/a")
    if len(scenarios) > 1:
        print("\nreports:")
        for scenario, run_dir, word in zip(scenarios, runner.run_dirs, shown, strict=True):
            print(f"  {word:<12} {scenario.name:<28} {run_dir / REPORT}")
        passed, failed, na = shown.count("pass"), shown.count("FAIL"), shown.count("n/a")
        print(
            f"{len(scenarios)} scenarios: {passed} passed, {failed} failed, {len(shown) - passed - failed - na} "
            f"inconclusive, {na} n/a -> {words.get(code, 'inconclusive').upper()}"
        )
    return code
