"""The run plan: everything Locust users need to know, as plain data.

The runner builds a ``Plan`` from a scenario and writes it as JSON; every Locust
process (in-process, master or worker) loads it from the path in ``LQH_PLAN``. Keeping
it plain data is what lets worker processes start with nothing but that file.

The file holds no secret: the target's and the app user's passwords are left out of it
and travel in the environment of the Locust processes (``Plan.secret_env``), which only
the user who started them can read, so a run folder can be shared as it is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from harness.errors import HarnessError
from harness.ramp_steps import StepSlo
from harness.targets.base import TableKind

PLAN_ENV = "LQH_PLAN"
MAX_SECONDS = 900.0  # the run's time bound when the scenario sets no ``max_seconds``
QUICK_MAX_SECONDS = 180.0  # the same for a quick run
DEFAULT_JOB_TIMEOUT_SECONDS = 20.0
DEFAULT_SETTLE_SECONDS = 3.0
TARGET_PASSWORD_ENV = "LQH_TARGET_PASSWORD"  # the target password of a plan's Locust processes and the monitor
APP_PASSWORD_ENV = "LQH_APP_PASSWORD"  # the app user's password of a plan's Locust processes


@dataclass(frozen=True, slots=True)
class TargetSpec:
    """How to reach the target: its driver name, URL and credentials."""

    name: str  # a driver of harness.targets.DRIVERS: "kalamdb" (the runner uses it for the reference server too)
    url: str
    user: str
    password: str
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Step:
    """One step of a writer's program.

    ``op`` is ``insert``, ``update`` (the writer's oldest live row not yet updated in
    this round, cycling), ``delete`` (the writer's oldest live row), ``mix`` (random ops
    by ``weights``), ``bump`` (a shared row, one of writer 1's first ``rows`` rows chosen at
    random, updated with the version incremented by the server: docs/contention.md), ``move``
    (an update that also moves a row to conversation ``to``: the writer's next live row, cycling
    as updates do, that is not in ``to`` and has never left the conversation it is in, so a row
    leaves each conversation at most once), or ``pause`` (sleep ``seconds``). ``count`` bounds the operations
    of the step; ``seconds`` bounds its duration; either may be None but not both
    (except for ``pause``). ``rate`` caps operations per second for this writer.
    """

    op: str
    count: int | None = None
    seconds: float | None = None
    rate: float | None = None
    weights: dict[str, float] | None = None
    rows: int | None = None  # ``bump``: how many shared rows (writer 1's first rows) it spreads over
    to: int | None = None  # ``move``: the conversation the row moves to


@dataclass(frozen=True, slots=True)
class WriterSpec:
    """One writer stream: a writer id, the conversation it writes into, its program.

    A Locust WriterUser may drive several streams (an AI agent writing into several
    conversations is one user with one stream per conversation, taking turns).
    """

    writer_id: int
    conversation_id: int
    program: tuple[Step, ...]
    user: str | None = None  # target user the writer logs in as (USER tables are per user)

    @property
    def conversations(self) -> frozenset[int]:
        """Every conversation this writer's rows may be in: its own and those its ``move`` steps go to."""
        return frozenset({self.conversation_id, *(s.to for s in self.program if s.op == "move" and s.to is not None)})


@dataclass(frozen=True, slots=True)
class ReconnectSpec:
    """Disconnect after ``after_changes`` received, stay away ``away_seconds``, resume."""

    after_changes: int
    away_seconds: float
    resume: bool = True


@dataclass(frozen=True, slots=True)
class ListenerSpec:
    listener_id: str
    conversation_id: int | None = None  # None: every row; else only the rows of conversation N
    user: str | None = None
    reconnect: ReconnectSpec | None = None
    url: str | None = None  # the target URL this listener uses (its nemesis route); None: the plan's target


@dataclass(frozen=True, slots=True)
class QuerierSettings:
    """``queriers``: ``count`` QueryUsers, each issuing ``rate`` bounded reads per second while writers run."""

    count: int
    rate: float


@dataclass(frozen=True, slots=True)
class ChurnSettings:
    """``churn``: open ``open`` subscriptions, close ``close`` of them, wait ``settle_seconds``, count again."""

    open: int
    close: int
    settle_seconds: float = DEFAULT_SETTLE_SECONDS


@dataclass(frozen=True, slots=True)
class FlushSettings:
    """``flush_every_seconds``: a FlushUser flushing the table that often; its jobs are followed for up to
    ``job_timeout_seconds`` after the load."""

    every_seconds: float
    job_timeout_seconds: float = DEFAULT_JOB_TIMEOUT_SECONDS


@dataclass(frozen=True, slots=True)
class RampSettings:
    """``ramp``: an open-ended step load that grows until the SLO breaks, the server fails or the generator saturates.

    Step k (0-based) lasts ``seconds`` with ``writers_at(k)`` writers at ``rate_per_writer`` each: the
    writer count grows by ``growth`` per step from ``writers``. At most ``max_steps`` steps may hold
    the SLO; after the first break ``past_capacity_steps`` more run. Each step is measured after its
    first ``settle_seconds``. ``slo`` is the judge's (the runner copies it from the criteria file).
    """

    max_steps: int
    seconds: float
    writers: int
    growth: float
    rate_per_writer: float
    past_capacity_steps: int = 2
    settle_seconds: float = 5.0
    slo: StepSlo = field(default_factory=StepSlo)

    @property
    def planned_steps(self) -> int:
        """Every step a ramp can run: the ones that may hold the SLO and the ones past capacity."""
        return self.max_steps + self.past_capacity_steps

    def writers_at(self, step: int) -> int:
        """Writers running during step ``step`` (0-based): ``writers`` x ``growth``^step, rounded, never fewer
        than the step before plus one."""
        count = self.writers
        for k in range(1, step + 1):
            count = max(count + 1, round(self.writers * self.growth**k))
        return count


@dataclass(frozen=True, slots=True)
class Extras:
    """A scenario's settings beyond its writers and listeners, validated by the catalogue.

    The Locust side reads the users' settings, the time bound and the run folder; the
    runner reads the time bound; the judge reads the rest from run.json's ``profile``.
    Each field is the scenario key of the same name, except ``flush``
    (``flush_every_seconds`` and ``job_timeout_seconds``) and ``run_dir`` (set by the runner).
    """

    max_seconds: float = MAX_SECONDS  # hard bound of the Locust run (its --run-time)
    run_dir: str | None = None  # the run folder; None: the Locust side writes no files
    queriers: QuerierSettings | None = None
    churn: ChurnSettings | None = None
    flush: FlushSettings | None = None
    ramp: RampSettings | None = None
    preload_seconds: float = 0.0  # listeners ready, writers held back, the idle server sampled
    observe_seconds: float = 0.0  # after the load, the runner keeps sampling the server
    release_seconds: float | None = None  # after the load, memory must be back near its baseline by then
    warmup_seconds: float | None = None  # start of the load excluded from the memory baseline
    target_insert_rate: float | None = None  # inserts/s the scenario means to sustain
    memory_limit_mb: float | None = None  # the memory bound the server runs under
    server_args: tuple[str, ...] = ()  # extra `lqharness serve` flags for the reference server

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Extras:
        """The extras of a plan file (written by :meth:`Plan.to_json`)."""

        def nested(kind: type[Any], key: str) -> Any:
            raw = data.get(key)
            return None if raw is None else kind(**raw)

        return cls(
            **{
                **data,
                "queriers": nested(QuerierSettings, "queriers"),
                "churn": nested(ChurnSettings, "churn"),
                "flush": nested(FlushSettings, "flush"),
                "ramp": _ramp(data.get("ramp")),
                "server_args": tuple(data.get("server_args", ())),
            }
        )


def _ramp(raw: dict[str, Any] | None) -> RampSettings | None:
    if raw is None:
        return None
    return RampSettings(**{**raw, "slo": StepSlo(**raw.get("slo", {}))})


@dataclass(frozen=True, slots=True)
class Plan:
    run_id: str
    scenario: str
    target: TargetSpec
    namespace: str
    table: str
    table_type: TableKind  # per-user or shared rows
    app_user: str  # the user writers and listeners log in as unless a spec names another
    app_password: str
    payload_bytes: int
    writers: tuple[WriterSpec, ...]
    listeners: tuple[ListenerSpec, ...]
    writer_groups: tuple[tuple[int, ...], ...]  # writer ids driven together by one Locust user
    drain_seconds: float  # after the last write, how long listeners keep receiving
    ready_timeout: float = 30.0  # how long writers wait for listeners to be ready
    summary_timeout: float = 30.0  # how long the master waits for worker final summaries
    extra: Extras = field(default_factory=Extras)  # the scenario's other settings (queriers, churn, ...)

    @property
    def contended(self) -> bool:
        """Whether writers bump shared rows (``live.contention``): listeners keep links, the target its commits."""
        return any(step.op == "bump" for w in self.writers for step in w.program)

    def to_json(self) -> bytes:
        """The plan as JSON without its passwords (``secret_env`` carries them)."""
        data = asdict(self)
        del data["target"]["password"], data["app_password"]
        return orjson.dumps(data, option=orjson.OPT_INDENT_2)

    def secret_env(self) -> dict[str, str]:
        """The environment variables that carry the passwords ``to_json`` leaves out."""
        return {TARGET_PASSWORD_ENV: self.target.password, APP_PASSWORD_ENV: self.app_password}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        """The plan of ``data``, which holds its passwords (``load_plan`` adds them to a plan file's)."""
        return cls(
            **{
                **data,
                "target": TargetSpec(**data["target"]),
                "table_type": TableKind.parse(data["table_type"]),
                "writers": tuple(
                    WriterSpec(
                        **{**w, "program": tuple(Step(**s) for s in w["program"])},
                    )
                    for w in data["writers"]
                ),
                "listeners": tuple(
                    ListenerSpec(
                        **{
                            **li,
                            "reconnect": ReconnectSpec(**li["reconnect"]) if li.get("reconnect") else None,
                        }
                    )
                    for li in data["listeners"]
                ),
                "writer_groups": tuple(tuple(g) for g in data["writer_groups"]),
                "extra": Extras.from_dict(data.get("extra") or {}),
            }
        )

    def write(self, path: Path) -> None:
        path.write_bytes(self.to_json())


def load_plan(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Plan:
    """Load the plan from ``path`` or from the file named by ``$LQH_PLAN``, its passwords from ``environ``.

    ``environ`` defaults to the process environment; a missing password is a one-line error.
    """
    environ = os.environ if environ is None else environ
    path = path or environ.get(PLAN_ENV)
    if not path:
        raise HarnessError(f"no run plan: set {PLAN_ENV} to a plan file written by `lqharness run`")
    passwords = {name: environ.get(name) for name in (TARGET_PASSWORD_ENV, APP_PASSWORD_ENV)}
    missing = [name for name, value in passwords.items() if not value]
    if missing:
        raise HarnessError(f"the run plan's passwords are not set: {', '.join(missing)} (`lqharness run` sets them)")
    try:
        return plan_with_passwords(orjson.loads(Path(path).read_bytes()), passwords)
    except (OSError, orjson.JSONDecodeError, TypeError, KeyError, ValueError, AttributeError) as exc:
        raise HarnessError(f"cannot read run plan {path}: {type(exc).__name__}: {exc}") from None


def plan_with_passwords(data: dict[str, Any], passwords: Mapping[str, str | None]) -> Plan:
    """The plan of ``Plan.to_json`` data (which leaves the passwords out) with the passwords of
    ``passwords``, keyed as ``Plan.secret_env`` keys them."""
    data = {**data, "target": {**data["target"], "password": passwords[TARGET_PASSWORD_ENV]}}
    data["app_password"] = passwords[APP_PASSWORD_ENV]
    return Plan.from_dict(data)
