"""The fault matrix (``lqharness faults``, ``make faults``): every fault the harness injects, caught by its criterion.

Each case names a fault, the scenario that exposes it, the criterion that must catch it and the
witness that shows the fault happened. Two layers of fault:

* a server fault: the reference server misbehaves (``lqharness serve --fault``). Caught when the
  run fails by the named criterion; the witness is the anomaly counted in ``delivery.json`` (or
  the criterion's own evidence).
* a network fault: the nemesis proxy breaks or slows the listeners' connections as the scenario
  schedules. Judged with ``nemesis.jsonl`` the run must not fail (the network is not the target);
  judged again on a copy without that record, as a network fault nobody declared, the named
  criterion must fail. The witness is what the proxy did (``nemesis.jsonl``).

Then each scenario of the matrix runs ``runs`` times clean (no server fault; its declared network
faults only) and any failed criterion there is a false alarm. The table printed at the end is the
matrix; the exit code is 0 only when every fault was caught and there was no false alarm.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from harness import exitcodes
from harness.orchestration.runner import Runner, RunOptions
from harness.runfolder import DELIVERY, NEMESIS, RUN_JSON, VERDICT, write_json_atomic
from harness.scenarios.catalogue import resolve
from reports.judge import RULES, judge_run

SERVER, NETWORK = "server", "network"
FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Case:
    """One row of the matrix: a fault, the scenario exposing it, the criterion that must catch it, its witness.

    ``witness`` is a ``delivery.json`` totals counter for a server fault (None: the criterion's
    evidence) and a ``nemesis.jsonl`` window count for a network fault (``connections_cut``,
    ``resets_mid_frame``, ``dropped_bytes`` or ``max_hold_ms``). ``watch_limit`` shortens how long
    the run's target watch lets the target stay silent before it ends the run (None: the runner's).
    """

    layer: str
    fault: str
    scenario: str
    criterion: str
    witness: str | None = None
    quick: bool = False  # part of the quick matrix (`make test`)
    watch_limit: float | None = None


MATRIX: tuple[Case, ...] = (
    Case(SERVER, "drop:every=7", "live.inserts", "SC-051", "lost", quick=True),
    Case(SERVER, "duplicate:every=7", "live.inserts", "SC-051", "duplicates"),
    Case(SERVER, "reorder:every=7", "live.inserts", "SC-051", "out_of_order"),
    Case(SERVER, "delay:ms=80,every=10", "live.inserts", "SC-054"),
    Case(SERVER, "sub-error:every=30", "live.inserts", "SC-057"),
    Case(SERVER, "stale-old:every=3", "live.updates", "SC-052", "old_value_errors"),
    Case(SERVER, "corrupt-new:every=4", "live.updates", "SC-052", "new_value_errors"),
    Case(SERVER, "no-deleted", "live.deletes", "SC-053", "delete_flag_errors"),
    # rows 1-15 are updated once before rows 1-10 are deleted: every other tombstone shows version 1
    Case(SERVER, "stale-delete:every=2", "live.changes-counter", "SC-053", "delete_value_errors"),
    Case(SERVER, "skew-changes:by=3", "live.changes-counter", "SC-055"),
    Case(SERVER, "malformed-row:every=60", "live.inserts", "SC-051", "malformed"),
    Case(SERVER, "mutate:column=content,action=drop,op=update,every=10", "live.updates", "SC-052", "new_value_errors"),
    Case(SERVER, "crash:after=4", "live.reconnect", "RUN"),
    Case(SERVER, "replay-drop", "live.replay-gap", "SC-051", "lost"),  # 0.7: one change left out of a replay
    Case(SERVER, "filter-leak", "live.filter-move", "SC-051", "outside_filter"),  # a move out sent as an update
    # the server hangs (its event loop blocked, the process running) 4 s after it listens, in the middle of
    # the 6 s of inserts, for longer than the watch's 3 s limit: the watch's probes go unanswered and end the
    # run. A shorter hang is not caught by latency: each writer waits it out on one request (coordinated
    # omission), so a handful of notifications are late and no percentile moves.
    Case(SERVER, "stall:after=4,for=10", "stress.memory-write", "RUN", watch_limit=3.0),
    Case(SERVER, "leak:bytes=200000", "stress.memory-write", "SC-056"),
    Case(SERVER, "keep-closed", "stress.ws-leak", "CONN-RELEASE"),
    Case(NETWORK, "outage", "live.outage", "SC-057", "connections_cut", quick=True),
    Case(NETWORK, "outage (twice)", "live.double-outage", "SC-057", "connections_cut"),
    Case(NETWORK, "outage (staggered, one listener each)", "live.staggered-outages", "SC-057", "connections_cut"),
    Case(NETWORK, "partition", "nemesis.partition", "SC-057", "dropped_bytes"),
    Case(NETWORK, "reset-mid-frame", "nemesis.reset-mid-frame", "SC-057", "resets_mid_frame"),
    Case(NETWORK, "half-open", "nemesis.half-open", "SC-054", "max_hold_ms"),
    Case(NETWORK, "latency", "nemesis.latency", "SC-054", "max_hold_ms"),
    Case(NETWORK, "bandwidth", "nemesis.bandwidth", "SC-054", "max_hold_ms"),
    Case(NETWORK, "latency + bandwidth", "stress.impairments", "SC-054", "max_hold_ms"),
)


@dataclass
class Outcome:
    """What one case's run showed: caught or not, the witness, the run folder, and (network) the declared verdict."""

    case: Case
    caught: bool
    witness: str
    run_dir: Path | None
    declared: str | None = None  # network: the verdict judged with nemesis.jsonl (must not be fail)
    note: str = ""


@dataclass
class CleanRuns:
    """The clean runs of one scenario: verdict counts and the criteria that failed (false alarms)."""

    scenario: str
    verdicts: dict[str, int] = field(default_factory=dict)
    false_alarms: list[str] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return sum(self.verdicts.values())


def _load(path: Path) -> dict[str, Any]:
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def _criteria(run_dir: Path) -> dict[str, dict[str, Any]]:
    verdict = _load(run_dir / VERDICT)
    return {str(c.get("id")): c for s in verdict.get("scenarios") or [] for c in s.get("criteria") or []}


def _failed(run_dir: Path) -> list[str]:
    return sorted(cid for cid, c in _criteria(run_dir).items() if c.get("verdict") == FAIL)


def _verdict(run_dir: Path) -> str:
    return str(_load(run_dir / VERDICT).get("verdict") or "missing")


def _server_witness(case: Case, run_dir: Path) -> str:
    found = _criteria(run_dir).get(case.criterion, {})
    if case.witness is None:
        return str(found.get("evidence") or "no evidence")[:110]
    delivery = _load(run_dir / DELIVERY)
    n = (delivery.get("totals") or {}).get(case.witness, 0)
    first = next((w for w in delivery.get("witnesses") or [] if w.get("kind") == case.witness), None)
    shown = f"{case.witness} {n}"
    if first:
        shown += f": {first.get('detail') or first}"
    return shown[:110]


def _network_witness(case: Case, run_dir: Path) -> str:
    """What the proxy did in the case's windows (the witness count, summed over windows; holds: the longest).

    A hold is taken from the ``summary`` line's routes (those of the windows): chunks a half-open
    window held are forwarded once it has closed, so the window's own counts never see them.
    """
    total, longest, windows = 0, 0.0, 0
    routes: set[str] = set()
    for line in (run_dir / NEMESIS).read_bytes().splitlines() if (run_dir / NEMESIS).exists() else []:
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if record.get("kind") == "summary":
            for name, flows in (record.get("routes") or {}).items():
                if name in routes:
                    longest = max(longest, float((flows.get("s2c") or {}).get("max_hold_ms", 0.0)))
        if record.get("kind") != "window":
            continue
        windows += 1
        routes.update(record.get("routes") or ())
        counts = record.get("counts") or {}
        if case.witness == "max_hold_ms":
            longest = max(longest, float((counts.get("s2c") or {}).get("max_hold_ms", 0.0)))
        elif case.witness == "dropped_bytes":
            total += sum(int((counts.get(d) or {}).get("dropped_bytes", 0)) for d in ("c2s", "s2c"))
        else:
            total += int(counts.get(str(case.witness), 0))
    if case.witness == "max_hold_ms":
        return f"{windows} window(s), a chunk held up to {longest:.0f} ms"
    return f"{windows} window(s), {case.witness} {total}"


def undeclared_copy(run_dir: Path, into: Path) -> Path:
    """A copy of ``run_dir`` without its network record: no ``nemesis.jsonl``, no ``profile.nemesis``."""
    copy = into / (run_dir.name + "-undeclared")
    shutil.copytree(run_dir, copy)
    (copy / NEMESIS).unlink(missing_ok=True)
    record = _load(copy / RUN_JSON)
    if isinstance(record.get("profile"), dict):
        record["profile"].pop("nemesis", None)
    write_json_atomic(copy / RUN_JSON, record)
    return copy


class Matrix:
    """Runs the cases and the clean runs into ``out_dir``; ``progress`` gets one line per run."""

    def __init__(self, out_dir: Path, runs: int, progress: Callable[[str], None] = print) -> None:
        self.out_dir = out_dir
        self.runs = runs
        self.progress = progress
        self._count = 0

    def _run(
        self, scenario: str, where: str, server_args: tuple[str, ...] = (), watch_limit: float | None = None
    ) -> Path:
        """One quick run into ``out_dir/where``, with a run history of its own.

        Each run's history is its own, so REGRESSION is n/a: a run compared with the matrix's other
        runs (the same scenario with and without faults, minutes apart) would measure the matrix.
        """
        self._count += 1
        history = self.out_dir / "histories" / f"{self._count}.sqlite"
        history.parent.mkdir(parents=True, exist_ok=True)
        options = RunOptions(
            quick=True, out_dir=self.out_dir / where, server_args=server_args, history=str(history),
            progress=lambda _m: None,
        )  # fmt: skip
        if watch_limit is not None:
            options = replace(options, unresponsive_limit=watch_limit)
        runner = Runner(options)
        with contextlib.redirect_stdout(io.StringIO()):  # the judge's table of each run: the matrix prints its own
            runner.run(resolve([scenario], RULES)[0])
        return runner.run_dirs[-1]

    def case(self, case: Case) -> Outcome:
        """Run one case and say whether its criterion caught the fault."""
        if case.layer == SERVER:
            run_dir = self._run(case.scenario, "server-faults", ("--fault", case.fault), case.watch_limit)
            caught = _criteria(run_dir).get(case.criterion, {}).get("verdict") == FAIL
            return Outcome(case, caught, _server_witness(case, run_dir), run_dir)
        run_dir = self._run(case.scenario, "network-faults")
        declared = _verdict(run_dir)
        failed = _failed(run_dir)
        copy = undeclared_copy(run_dir, self.out_dir / "undeclared")
        judge_run(copy, quiet=True, report=False, history=self.out_dir / "histories" / f"{copy.name}.sqlite")
        caught = _criteria(copy).get(case.criterion, {}).get("verdict") == FAIL and not failed
        note = f"declared run failed {', '.join(failed)}" if failed else ""
        return Outcome(case, caught, _network_witness(case, run_dir), run_dir, declared, note)

    def clean(self, scenario: str, already: Iterable[Path] = ()) -> CleanRuns:
        """``runs`` clean runs of ``scenario`` (the network cases' declared runs count among them)."""
        result = CleanRuns(scenario)
        dirs = list(already)
        while len(dirs) < self.runs:
            dirs.append(self._run(scenario, "clean"))
        for run_dir in dirs:
            verdict = _verdict(run_dir)
            result.verdicts[verdict] = result.verdicts.get(verdict, 0) + 1
            result.false_alarms += [f"{run_dir.name}: {cid}" for cid in _failed(run_dir)]
        return result

    def run(self, cases: Iterable[Case]) -> tuple[list[Outcome], list[CleanRuns]]:
        """Every case, then the clean runs of every scenario the cases name."""
        outcomes: list[Outcome] = []
        for case in cases:
            outcome = self.case(case)
            outcomes.append(outcome)
            state = "caught" if outcome.caught else "MISSED"
            self.progress(
                f"{state:<7} {case.layer:<7} {case.fault:<24} {case.scenario:<26} "
                f"{case.criterion:<12} {outcome.witness}"
            )
        declared: dict[str, list[Path]] = {}
        for outcome in outcomes:
            if outcome.case.layer == NETWORK and outcome.run_dir is not None:
                declared.setdefault(outcome.case.scenario, []).append(outcome.run_dir)
        cleans: list[CleanRuns] = []
        for scenario in dict.fromkeys(o.case.scenario for o in outcomes):
            clean = self.clean(scenario, declared.get(scenario, []))
            cleans.append(clean)
            shown = ", ".join(f"{v} {n}" for v, n in sorted(clean.verdicts.items()))
            self.progress(
                f"clean   {scenario:<26} {clean.runs} run(s): {shown}; false alarms {len(clean.false_alarms)}"
            )
        return outcomes, cleans


def table(outcomes: list[Outcome], cleans: list[CleanRuns]) -> str:
    """The matrix as a Markdown table, then one line on the clean runs."""
    by_scenario = {c.scenario: c for c in cleans}
    lines = [
        "| layer | fault | scenario | criterion | caught | witness | clean runs (false alarms) |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in outcomes:
        clean = by_scenario.get(o.case.scenario)
        runs = (
            f"{clean.runs}: " + ", ".join(f"{v} {n}" for v, n in sorted(clean.verdicts.items()))
            + f" ({len(clean.false_alarms)})"
            if clean
            else "-"
        )  # fmt: skip
        caught = "yes" if o.caught else "**NO**"
        if o.declared is not None:
            caught += f" (declared: {o.declared})"
        witness = o.witness.replace("|", "/") + (f"; {o.note}" if o.note else "")
        lines.append(
            f"| {o.case.layer} | `{o.case.fault}` | {o.case.scenario} | {o.case.criterion} | {caught} | "
            f"{witness} | {runs} |"
        )
    alarms = sum(len(c.false_alarms) for c in cleans)
    total = sum(c.runs for c in cleans)
    lines.append("")
    lines.append(f"{sum(o.caught for o in outcomes)} of {len(outcomes)} faults caught; "
                 f"{alarms} false alarm(s) in {total} clean run(s)")  # fmt: skip
    for clean in cleans:
        lines += [f"- false alarm: {alarm}" for alarm in clean.false_alarms]
    return "\n".join(lines)


def exit_code(outcomes: list[Outcome], cleans: list[CleanRuns]) -> int:
    """PASS when every fault was caught and no clean run failed a criterion; else FAIL."""
    ok = all(o.caught for o in outcomes) and not any(c.false_alarms for c in cleans)
    return exitcodes.PASS if ok else exitcodes.FAIL


def select(quick: bool, names: Iterable[str] = ()) -> list[Case]:
    """The cases to run: the quick ones, those whose scenario or fault is named, or all."""
    wanted = set(names)
    chosen = [c for c in MATRIX if (not quick or c.quick) and (not wanted or {c.scenario, c.fault} & wanted)]
    return chosen
