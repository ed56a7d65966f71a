"""The run history: every judged run's key measurements, kept in a database across runs.

The default store is an SQLite file beside the runs (``runs/history.sqlite``); a database URL
(``postgresql://...``) lets CI runners on several machines share one. SQLAlchemy is the
database layer and Alembic migrates the schema (reports/migrations) whenever a store opens, so
an old history file keeps working after an upgrade. A run is recorded once, by run id: judging
the same run folder again leaves the history as it was.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy import JSON, Engine, Float, ForeignKey, String, create_engine, delete, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship, sessionmaker

from harness.errors import HarnessError
from reports.tracked import HistoryRun, RunFacts

DEFAULT_FILE = "history.sqlite"
DEFAULT_STORE = Path("runs") / DEFAULT_FILE
VERSION_TABLE = "lqh_alembic_version"
BACKENDS = ("sqlite", "postgresql")


class Base(DeclarativeBase):
    """The history's tables; reports/migrations creates and upgrades them."""


class RunRow(Base):
    """One recorded run: what makes it comparable, its verdicts, and its measurements (``metrics``)."""

    __tablename__ = "runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    run_id: Mapped[str] = mapped_column(String(80), unique=True)
    scenario: Mapped[str] = mapped_column(String(200), index=True)
    profile: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(80))
    target_version: Mapped[str] = mapped_column(String(80))
    harness_version: Mapped[str] = mapped_column(String(80))
    fingerprint: Mapped[str] = mapped_column(String(32), index=True)
    machine: Mapped[dict[str, Any]] = mapped_column(JSON)
    started_at: Mapped[float] = mapped_column(Float)
    recorded_at: Mapped[float] = mapped_column(Float)
    verdict: Mapped[str] = mapped_column(String(16))
    verdicts: Mapped[dict[str, str]] = mapped_column(JSON)
    run_dir: Mapped[str] = mapped_column(String(1000))
    metrics: Mapped[list[MetricRow]] = relationship(back_populates="run", cascade="all, delete-orphan", lazy="selectin")


class MetricRow(Base):
    """One tracked measurement of one run."""

    __tablename__ = "metrics"
    run_pk: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    run: Mapped[RunRow] = relationship(back_populates="metrics")


class PinRow(Base):
    """A pinned baseline: the run that stands for its scenario, profile and machine."""

    __tablename__ = "baselines"
    scenario: Mapped[str] = mapped_column(String(200), primary_key=True)
    profile: Mapped[str] = mapped_column(String(16), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(32), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.run_id", ondelete="CASCADE"))
    pinned_at: Mapped[float] = mapped_column(Float)


@dataclass(frozen=True, slots=True)
class Pin:
    """A pinned baseline as listed by ``lqharness baseline show``."""

    scenario: str
    profile: str
    fingerprint: str
    run_id: str
    pinned_at: float


def store_url(value: str | Path) -> URL:
    """A history location as a database URL: a URL as given, or a file path for an SQLite store.

    psycopg (3) is the PostgreSQL driver whatever the URL names; anything else is a ``HarnessError``.
    """
    text = str(value)
    if "://" not in text:
        path = Path(text).expanduser().resolve()
        if not path.parent.is_dir():
            raise HarnessError(f"history file {text}: directory {path.parent} does not exist")
        return URL.create("sqlite", database=str(path))
    try:
        url = make_url(text)
    except (ArgumentError, ValueError) as exc:
        raise HarnessError(f"history URL {text!r} is not a database URL ({exc})") from exc
    backend = url.get_backend_name()
    if backend not in BACKENDS:
        raise HarnessError(f"history URL {text!r}: database {backend!r} is not supported (use sqlite or postgresql)")
    if backend == "postgresql":
        url = url.set(drivername="postgresql+psycopg")
    return url


def open_history(location: str | Path, *, must_exist: bool = False) -> HistoryStore:
    """The store at ``location``; with ``must_exist`` an SQLite file that is not there is a ``HarnessError``
    (a command that only reads must not leave an empty history behind)."""
    url = store_url(location)
    if must_exist and url.get_backend_name() == "sqlite" and not Path(str(url.database)).is_file():
        raise HarnessError(f"no history at {url.database} (runs record one beside their folders; or --history URL)")
    return HistoryStore(url)


def describe(url: URL) -> str:
    """The URL for messages, password hidden."""
    return url.render_as_string(hide_password=True)


def migrate(engine: Engine) -> None:
    """Bring the store's schema to the newest Alembic revision of reports/migrations."""
    config = Config()
    config.set_main_option("script_location", str(resources.files("reports").joinpath("migrations")))
    config.set_main_option("version_table", VERSION_TABLE)
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def _to_run(row: RunRow) -> HistoryRun:
    facts = RunFacts(
        run_id=row.run_id, scenario=row.scenario, profile=row.profile, target=row.target,
        target_version=row.target_version, harness_version=row.harness_version, machine=dict(row.machine),
        started_at=row.started_at, run_dir=row.run_dir,
    )  # fmt: skip
    metrics = {m.name: m.value for m in row.metrics}
    return HistoryRun(facts, row.verdict, dict(row.verdicts), metrics, row.recorded_at)


class HistoryStore:
    """An open history database; use as a context manager so the connections are released."""

    def __init__(self, location: str | Path | URL) -> None:
        self.url = location if isinstance(location, URL) else store_url(location)
        with self._guard("cannot open"):
            self.engine = create_engine(self.url)
            try:
                migrate(self.engine)
            except BaseException:
                self.engine.dispose()
                raise
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Database errors as a one-line ``HarnessError`` naming the store."""
        try:
            yield
        except (SQLAlchemyError, CommandError) as exc:  # CommandError: a schema newer than this harness knows
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise HarnessError(f"history {describe(self.url)}: {doing}: {reason}") from exc

    def record(self, run: HistoryRun) -> bool:
        """Add ``run`` unless its run id is already recorded; True when it was added."""
        f = run.facts
        with self._guard("cannot record"):
            try:
                with self.sessions.begin() as session:
                    if session.scalar(select(RunRow.id).where(RunRow.run_id == f.run_id)) is not None:
                        return False
                    session.add(
                        RunRow(
                            run_id=f.run_id, scenario=f.scenario, profile=f.profile, target=f.target,
                            target_version=f.target_version, harness_version=f.harness_version,
                            fingerprint=f.fingerprint, machine=f.machine, started_at=f.started_at,
                            recorded_at=run.recorded_at or time.time(), verdict=run.verdict,
                            verdicts=run.verdicts, run_dir=f.run_dir,
                            metrics=[MetricRow(name=k, value=v) for k, v in sorted(run.metrics.items())],
                        )
                    )  # fmt: skip
            except IntegrityError:  # recorded meanwhile by another judge: the first record stands
                return False
        return True

    def get(self, run_id: str) -> HistoryRun | None:
        with self._guard("cannot read"), self.sessions() as session:
            row = session.scalar(select(RunRow).where(RunRow.run_id == run_id))
            return _to_run(row) if row is not None else None

    def runs(self, scenario: str | None = None) -> list[HistoryRun]:
        """Recorded runs (of one scenario when given), oldest first."""
        query = select(RunRow).order_by(RunRow.started_at, RunRow.run_id)
        if scenario is not None:
            query = query.where(RunRow.scenario == scenario)
        with self._guard("cannot read"), self.sessions() as session:
            return [_to_run(row) for row in session.scalars(query)]

    def pin(self, run_id: str) -> HistoryRun:
        """Pin a recorded run as the baseline of its scenario, profile and machine (replacing any pin)."""
        run = self.get(run_id)
        if run is None:
            raise HarnessError(f"run {run_id} is not in the history {describe(self.url)}; judge it first")
        f = run.facts
        with self._guard("cannot pin"), self.sessions.begin() as session:
            session.merge(PinRow(scenario=f.scenario, profile=f.profile, fingerprint=f.fingerprint,
                                 run_id=run_id, pinned_at=time.time()))  # fmt: skip
        return run

    def unpin(self, scenario: str, profile: str, fingerprint: str) -> bool:
        """Remove a pin; True when there was one."""
        with self._guard("cannot unpin"), self.sessions.begin() as session:
            gone = session.execute(
                delete(PinRow).where(
                    PinRow.scenario == scenario, PinRow.profile == profile, PinRow.fingerprint == fingerprint
                )
            )
            return bool(getattr(gone, "rowcount", 0))

    def pins(self) -> list[Pin]:
        query = select(PinRow).order_by(PinRow.scenario, PinRow.profile)
        with self._guard("cannot read"), self.sessions() as session:
            return [Pin(p.scenario, p.profile, p.fingerprint, p.run_id, p.pinned_at) for p in session.scalars(query)]

    def pinned(self, scenario: str, profile: str, fingerprint: str) -> HistoryRun | None:
        """The pinned baseline run for a scenario, profile and machine, or None."""
        query = select(PinRow.run_id).where(
            PinRow.scenario == scenario, PinRow.profile == profile, PinRow.fingerprint == fingerprint
        )
        with self._guard("cannot read"), self.sessions() as session:
            run_id = session.scalar(query)
        return self.get(run_id) if run_id is not None else None
