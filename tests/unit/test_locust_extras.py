"""The extra users' pure parts: settings and user counts, ramp steps, the phase log, query checks, monitor reads."""

import orjson
import pytest

from harness.errors import HarnessError
from harness.plan import ChurnSettings, ListenerSpec, Plan, Step, TargetSpec, WriterSpec
from harness.scenarios.catalogue import parse_extras
from harness.targets.base import Eq, TableKind
from locustfiles import population, ramp, users_needed
from locustfiles.churn import monitor_sockets
from locustfiles.queriers import RECENT_LIMIT, ask, recent_problem

TARGET = TargetSpec("kalamdb", "http://127.0.0.1:1", "root", "pw")


def _plan(extra: dict, writers: tuple[WriterSpec, ...] = (), table_type: TableKind = TableKind.USER) -> Plan:
    """A plan with ``extra`` as a scenario would write it, parsed as the catalogue parses it."""
    return Plan(
        run_id="r", scenario="s", target=TARGET, namespace="lqh", table="t", table_type=table_type,
        app_user="app", app_password="pw", payload_bytes=10, writers=writers,
        listeners=(ListenerSpec("L1"), ListenerSpec("L2")), writer_groups=tuple((w.writer_id,) for w in writers),
        drain_seconds=1.0, extra=parse_extras("scenario s", extra, quick=False),
    )  # fmt: skip


def test_users_needed_counts_every_kind() -> None:
    writers = (WriterSpec(1, 1, (Step("insert", count=1),)), WriterSpec(2, 2, (Step("insert", count=1),)))
    plain = _plan({}, writers)
    assert users_needed(plain) == 4
    full = _plan(
        {"queriers": {"count": 3, "rate": 2}, "churn": {"open": 4, "close": 2}, "flush_every_seconds": 1},
        writers,
    )
    assert population.user_counts(full) == {
        "listeners": 2,
        "writers": 2,
        "queriers": 3,
        "churn": 1,
        "flush": 1,
    }
    assert users_needed(full) == 9
    assert full.extra.churn == ChurnSettings(4, 2, 3.0)
    assert users_needed(_plan({"queriers": {"count": 0, "rate": 1}}, writers)) == 4


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"queriers": {"count": -1, "rate": 1}}, "queriers.count"),
        ({"queriers": {"count": 2}}, "queriers.rate"),
        ({"queriers": 3}, "queriers must be a table"),
        ({"churn": {"open": 2, "close": 5}}, "exceeds churn.open"),
        ({"churn": {"open": True, "close": 0}}, "churn.open"),
        ({"flush_every_seconds": "often"}, "flush_every_seconds"),
        ({"ramp": {"max_steps": 2}}, "ramp needs"),
        ({"ramp": {"max_steps": 0, "seconds": 1, "writers": 1, "growth": 2, "rate_per_writer": 1}}, "max_steps must"),
    ],
)
def test_bad_settings_are_one_line_errors(extra: dict, words: str) -> None:
    with pytest.raises(HarnessError, match=words):
        parse_extras("scenario s", extra, quick=False)


def test_rate_at_follows_pauses_counts_and_seconds() -> None:
    program = (Step("pause", seconds=2), Step("insert", count=10, rate=5), Step("insert", seconds=3, rate=7))
    assert ramp.rate_at(program, 1.0) is None
    assert ramp.rate_at(program, 2.5) == 5.0  # the count step lasts count / rate = 2 s
    assert ramp.rate_at(program, 4.5) == 7.0
    assert ramp.rate_at(program, 7.5) is None
    assert ramp.rate_at((Step("insert", count=3),), 1e6) == 0.0  # unpaced and unbounded in time


class _Admin:
    """Records the reads a querier asks for and answers them with ``answer``."""

    def __init__(self, answer: list[dict]) -> None:
        self.answer = answer
        self.calls: list[tuple] = []

    def recent(self, schema, filter, limit, as_user=None) -> list[dict]:
        self.calls.append(("recent", schema, filter, limit, as_user))
        return self.answer

    def count(self, schema, as_user=None) -> int:
        self.calls.append(("count", schema, as_user))
        return 12


def test_queries_are_bounded_reads_as_the_app_user() -> None:
    plan, schema = _plan({}), object()
    admin = _Admin([{"id": 9, "conversation_id": 7}])
    assert ask(admin, schema, plan, "recent", 7) is None
    assert ask(admin, schema, plan, "count", 7) is None
    assert admin.calls == [
        ("recent", schema, Eq("conversation_id", 7), RECENT_LIMIT, "app"),
        ("count", schema, "app"),
    ]
    assert "outside" in ask(_Admin([{"id": 9, "conversation_id": 8}]), schema, plan, "recent", 7)
    with pytest.raises(ValueError):
        ask(admin, schema, plan, "drop", 1)


def test_answer_problems_are_found() -> None:
    def rows(*pairs: tuple[int, int]) -> list[dict]:
        return [{"id": i, "conversation_id": c} for i, c in pairs]

    assert recent_problem(3, rows((9, 3), (5, 3))) is None
    assert recent_problem(3, rows()) is None
    assert "outside" in recent_problem(3, rows((9, 3), (5, 4)))
    assert "descending" in recent_problem(3, rows((5, 3), (9, 3)))
    assert "LIMIT" in recent_problem(3, rows(*[(100 - i, 3) for i in range(RECENT_LIMIT + 1)]))
    assert "usable id" in recent_problem(3, [{"conversation_id": 3}])


def test_monitor_sockets_reads_the_first_sample_after_a_mark(tmp_path) -> None:
    samples = [
        {"t": 10.0, "alive": True, "conns": {"ESTABLISHED": 5}},
        b"{cut line",
        {"t": 11.0, "alive": True, "conns": {"ESTABLISHED": 7, "TIME_WAIT": 2}},
        {"t": 12.0, "alive": True, "conns": {"TIME_WAIT": 9}},
        {"t": 13.0, "alive": True, "conns": None},
    ]
    lines = [s if isinstance(s, bytes) else orjson.dumps(s) for s in samples]
    (tmp_path / "monitor.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    assert monitor_sockets(str(tmp_path), 10.5) == (7, 11.0)
    assert monitor_sockets(str(tmp_path), 11.5) == (0, 12.0)
    assert monitor_sockets(str(tmp_path), 12.5) == (None, 13.0)
    assert monitor_sockets(None, 0.0) == (None, None)
    assert monitor_sockets(str(tmp_path / "absent"), 0.0) == (None, None)
