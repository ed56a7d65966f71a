"""Reads one run folder into plain dicts and pandas frames, tolerating missing and truncated files.

The judge never talks to the target: everything it knows comes from here. The file names are the
run-folder contract's (``harness.runfolder``), re-exported for the judge's modules. Each file that is
missing or unreadable is recorded in ``problems`` (file name -> reason) so the criteria that
need it can say "inconclusive" with that reason instead of guessing.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pandas as pd

from harness.errors import HarnessError
from harness.runfolder import (
    DATABASE,
    DELIVERY,
    GENERATOR,
    HISTORY,
    MONITOR,
    NEMESIS,
    RUN_JSON,
    STATS,
    TARGET,
    WRITES,
)

LOAD_PHASES = ("load", "step-*")  # phases that make up the load (stress) window
FALLBACK_LOAD_PHASES = ("locust",)  # used when a run recorded no load phase of its own
# monitor.jsonl's numeric fields; database.jsonl rows share them and add pss and processes
MONITOR_NUMERIC = (
    "t", "rss", "uss", "cpu_core_pct", "cpu_machine_pct", "threads", "fds",
    "io_read_bytes", "io_write_bytes", "live_count", "pss", "processes",
)  # fmt: skip
STATS_TEXT_COLUMNS = ("Type", "Name")


@dataclass(frozen=True, slots=True)
class Phase:
    """One named phase of the run, in unix seconds."""

    name: str
    start: float
    end: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunFolder:
    """Everything a run folder holds, with each missing or damaged file named in ``problems``."""

    path: Path
    run: dict[str, Any] | None = None
    monitor: pd.DataFrame = field(default_factory=pd.DataFrame)
    generator: pd.DataFrame = field(default_factory=pd.DataFrame)
    database: pd.DataFrame = field(default_factory=pd.DataFrame)  # the target's database tree (database.jsonl)
    stats: pd.DataFrame = field(default_factory=pd.DataFrame)
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    delivery: dict[str, Any] | None = None
    writes: dict[str, Any] | None = None
    target: dict[str, Any] | None = None
    nemesis: list[dict[str, Any]] = field(default_factory=list)  # nemesis.jsonl: network fault windows, if any
    problems: dict[str, str] = field(default_factory=dict)  # file -> why it cannot be used
    notes: dict[str, str] = field(default_factory=dict)  # file -> damage that was worked around

    @property
    def profile(self) -> dict[str, Any]:
        profile = (self.run or {}).get("profile")
        return profile if isinstance(profile, dict) else {}

    @property
    def scenario(self) -> str:
        run = self.run or {}
        return str(run.get("scenario") or self.profile.get("name") or self.path.name)

    @property
    def features(self) -> set[str] | None:
        """The target's feature names, or None when run.json does not say."""
        target = (self.run or {}).get("target")
        if not isinstance(target, dict) or not isinstance(target.get("features"), list):
            return None
        return {str(f) for f in target["features"]}

    @property
    def database_pid(self) -> int | None:
        """The pid of the target's database the run recorded (Parse's postmaster), or None."""
        target = (self.run or {}).get("target")
        pid = target.get("database_pid") if isinstance(target, dict) else None
        return pid if isinstance(pid, int) and not isinstance(pid, bool) else None

    @property
    def phases(self) -> list[Phase]:
        out: list[Phase] = []
        for raw in (self.run or {}).get("phases") or []:
            try:
                extra = {k: v for k, v in raw.items() if k not in ("name", "start", "end")}
                out.append(Phase(str(raw["name"]), float(raw["start"]), float(raw["end"]), extra))
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
        return out

    def phases_named(self, *patterns: str) -> list[Phase]:
        """Phases whose name matches any of the glob ``patterns``, in time order."""
        found = [p for p in self.phases if any(fnmatch.fnmatchcase(p.name, pat) for pat in patterns)]
        return sorted(found, key=lambda p: p.start)

    def steps(self) -> list[Phase]:
        """Ramp steps (``step-<n>``) in time order."""
        return self.phases_named("step-*")

    def load_window(self) -> tuple[float, float] | None:
        """Start and end of the load: the ``load`` and ``step-*`` phases (else ``locust``), or None."""
        phases = self.phases_named(*LOAD_PHASES) or self.phases_named(*FALLBACK_LOAD_PHASES)
        if not phases:
            return None
        return min(p.start for p in phases), max(p.end for p in phases)

    @property
    def t0(self) -> float | None:
        """The run's time origin for plots: ``started_at``, else the first sample."""
        started = (self.run or {}).get("started_at")
        if isinstance(started, int | float):
            return float(started)
        for frame in (self.monitor, self.generator):
            if not frame.empty and "t" in frame:
                return float(frame["t"].min())
        return None

    def why_missing(self, *files: str) -> str | None:
        """The reason the first of ``files`` that cannot be used is unusable, or None if all are fine."""
        for name in files:
            if name in self.problems:
                return f"{name}: {self.problems[name]}"
        return None


def _read_json(folder: RunFolder, name: str) -> dict[str, Any] | None:
    path = folder.path / name
    if not path.exists():
        folder.problems[name] = "missing"
        return None
    try:
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        folder.problems[name] = f"unreadable or truncated ({str(exc).splitlines()[0][:120]})"
        return None
    if not isinstance(data, dict):
        folder.problems[name] = f"not a JSON object (found {type(data).__name__})"
        return None
    return data


def _read_jsonl(folder: RunFolder, name: str) -> list[dict[str, Any]]:
    path = folder.path / name
    if not path.exists():
        folder.problems[name] = "missing"
        return []
    try:
        raw = path.read_bytes()
    except OSError as exc:
        folder.problems[name] = f"unreadable ({exc})"
        return []
    rows: list[dict[str, Any]] = []
    bad = 0
    for line in raw.splitlines():
        if not line.strip():
            continue
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError:
            bad += 1
            continue
        if isinstance(row, dict):
            rows.append(row)
        else:
            bad += 1
    if bad:
        folder.notes[name] = f"{bad} unreadable line(s) skipped (truncated write?)"
    if not rows:
        folder.problems[name] = "no samples" if not bad else "no readable samples"
    return rows


def _monitor_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame()
    flat = []
    for row in rows:
        item = {k: v for k, v in row.items() if k not in ("conns", "stats")}
        conns = row.get("conns")
        if isinstance(conns, dict):
            for state, count in conns.items():
                item[f"conn_{state}"] = count
        flat.append(item)
    frame = pd.DataFrame.from_records(flat)
    for col in (*MONITOR_NUMERIC, *[c for c in frame.columns if c.startswith("conn_")]):
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    has_rss = frame["rss"].notna() if "rss" in frame else pd.Series(False, index=frame.index)
    flags = frame["alive"] if "alive" in frame else pd.Series(None, index=frame.index, dtype=object)
    # ``dead`` only on an explicit alive:false; a sample without a boolean ``alive`` counts as alive
    # when it carries a reading, and as neither when it does not
    frame["dead"] = [v is False for v in flags]
    frame["alive"] = [v is True or (not isinstance(v, bool) and bool(r)) for v, r in zip(flags, has_rss, strict=True)]
    frame = frame.dropna(subset=["t"]) if "t" in frame else pd.DataFrame()
    return frame.sort_values("t").reset_index(drop=True)


def _generator_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame.from_records(rows)
    for col in ("t", "pid", "cpu_core_pct", "rss", "loop_lag_ms"):
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    if "t" not in frame:
        return pd.DataFrame()
    if "role" not in frame:
        frame["role"] = "local"
    return frame.dropna(subset=["t"]).sort_values("t").reset_index(drop=True)


def _read_csv(folder: RunFolder, name: str) -> pd.DataFrame:
    path = folder.path / name
    if not path.exists():
        folder.problems[name] = "missing"
        return pd.DataFrame()
    try:
        frame = pd.read_csv(path, on_bad_lines="skip", na_values=["N/A"], keep_default_na=True)
    except (OSError, pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        folder.problems[name] = f"unreadable ({str(exc).splitlines()[0][:120]})"
        return pd.DataFrame()
    if frame.empty or "Type" not in frame or "Name" not in frame:
        folder.problems[name] = "no rows" if "Type" in frame else "not a Locust stats CSV"
        return pd.DataFrame()
    for col in frame.columns:
        if col in STATS_TEXT_COLUMNS:
            frame[col] = frame[col].fillna("").astype(str)
        else:
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame


def load_run_folder(path: Path) -> RunFolder:
    """Read ``path``; a path that is not a directory is a :class:`HarnessError`, damaged files are not."""
    path = Path(path)
    if not path.is_dir():
        raise HarnessError(f"run folder {path} does not exist or is not a directory")
    folder = RunFolder(path=path)
    folder.run = _read_json(folder, RUN_JSON)
    folder.monitor = _monitor_frame(_read_jsonl(folder, MONITOR))
    if MONITOR not in folder.problems and folder.monitor.empty:
        folder.problems[MONITOR] = "no samples with a time stamp"
    folder.generator = _generator_frame(_read_jsonl(folder, GENERATOR))
    if (path / DATABASE).exists() or folder.database_pid is not None:  # only a target with a database has one
        folder.database = _monitor_frame(_read_jsonl(folder, DATABASE))
    folder.stats = _read_csv(folder, STATS)
    folder.history = _read_csv(folder, HISTORY)
    folder.delivery = _read_json(folder, DELIVERY)
    folder.writes = _read_json(folder, WRITES)
    folder.target = _read_json(folder, TARGET)
    if (path / NEMESIS).exists() or folder.profile.get("nemesis"):
        folder.nemesis = _read_jsonl(folder, NEMESIS)
    return folder
