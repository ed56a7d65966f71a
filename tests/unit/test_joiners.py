"""Users beyond the plan (locustfiles.joiners): the specs both sides derive from a claim index, the coordinator
handing them out and waiting for them, and a writer that Locust stops in the middle of a write."""

import time
from types import SimpleNamespace
from typing import Any

import gevent
from locust.env import Environment

from harness.delivery.identity import messages_schema
from harness.delivery.ledger import WriterLedger
from harness.plan import Extras, ListenerSpec, Plan, ReconnectSpec, Step, TargetSpec, WriterSpec
from harness.targets.base import Outcome, Row, TableKind, WriteResult
from locustfiles import coordination, joiners, messages
from locustfiles.context import RunContext
from locustfiles.listeners import _tracker
from locustfiles.messages import ListenerFinal, WriterFinal
from locustfiles.writers import WriterStream

PROGRAM = (Step("insert", seconds=5.0, rate=10.0),)


def _plan() -> Plan:
    """Two listeners (one filtered, one with a planned reconnect) and two writer groups, one of two streams."""
    return Plan(
        run_id="r", scenario="s", target=TargetSpec("kalamdb", "http://127.0.0.1:1", "root", "pw"),
        namespace="lq", table="m", table_type=TableKind.USER, app_user="app", app_password="pw", payload_bytes=64,
        writers=(WriterSpec(1, 10, PROGRAM, "alice"), WriterSpec(2, 20, PROGRAM, "alice"), WriterSpec(3, 30, PROGRAM)),
        listeners=(ListenerSpec("L1", 10, "alice", ReconnectSpec(5, 1.0), "http://127.0.0.1:2"), ListenerSpec("L2")),
        writer_groups=((1, 2), (3,)), drain_seconds=1.0, extra=Extras(),
    )  # fmt: skip


def test_joiners_copy_the_plans_listeners_and_writers_under_new_ids() -> None:
    plan = _plan()
    assert joiners.listener_spec(plan, 1) is plan.listeners[1]
    assert joiners.listener_spec(plan, 2) == ListenerSpec("J1", 10, "alice")  # no reconnect, the plan's own URL
    assert joiners.listener_spec(plan, 5) == ListenerSpec("J4")
    assert joiners.writer_specs(plan, 0) == list(plan.writers[:2])
    # group size 2: joiner k takes ids 4 + 2k, 5 + 2k, copying group k mod 2
    assert joiners.writer_specs(plan, 2) == [WriterSpec(4, 10, PROGRAM, "alice"), WriterSpec(5, 20, PROGRAM, "alice")]
    assert joiners.writer_specs(plan, 3) == [WriterSpec(6, 30, PROGRAM)]
    every = [w.writer_id for w in joiners.joiner_writers(plan)]
    assert len(every) == len(set(every)) and min(every) == 4 and len(every) == 3 * joiners.MAX_JOINERS // 2
    assert joiners.claimable(plan, "listener") == 2 + joiners.MAX_JOINERS and joiners.claimable(plan, "churn") == 0


def test_a_listener_knows_the_joining_writers_before_they_join() -> None:
    """On a per-user table the rows of another user's joining writer are flagged on arrival, as a planned one's."""
    plan = _plan()
    tracker = _tracker(plan, joiners.listener_spec(plan, 3))  # J2 = a copy of L2, subscribed as the app user
    alice_joiner = joiners.writer_specs(plan, 2)[0].writer_id
    assert tracker.plan_writers[alice_joiner].conversation_id == 10
    assert {1, 2, alice_joiner} <= tracker.hidden and 3 not in tracker.hidden


def _coordinator(plan: Plan) -> Any:
    env = Environment(user_classes=[])
    env.create_local_runner()
    target = SimpleNamespace(features=frozenset({"resume"}))
    coordinator = coordination.install(env, RunContext(plan, messages_schema(plan), target=target))  # type: ignore[arg-type]
    return env, coordinator, coordination.link()


def _final(group: int, plan: Plan) -> WriterFinal:
    return WriterFinal(group, [WriterLedger(w.writer_id, w.conversation_id).to_dict() for w in
                               joiners.writer_specs(plan, group)], None)  # fmt: skip


def test_the_coordinator_waits_for_the_joiners_it_handed_out_and_hands_none_after_the_load() -> None:
    plan = _plan()
    env, coordinator, link = _coordinator(plan)
    assert [link.claim("writer", 1.0) for _ in range(3)] == [0, 1, 2]
    assert [link.claim("listener", 1.0) for _ in range(3)] == [0, 1, 2]
    assert coordinator.joined_writers() == [4, 5]
    for group in (0, 1):
        messages.send(env.runner, _final(group, plan))
    assert not coordinator._load_over()  # the joining writer group's program goes on
    messages.send(env.runner, _final(2, plan))
    assert coordinator._load_over()
    for lid in ("L1", "L2"):
        messages.send(env.runner, ListenerFinal(lid, {}, None, {}))
    assert not coordinator._all_final()  # the joining listener J1 has not sent its final
    messages.send(env.runner, ListenerFinal("J1", {}, None, {}))
    assert coordinator._all_final()
    coordinator._load_started_at = time.time()
    coordinator._end_load()
    assert link.claim("listener", 1.0) is None and link.claim("writer", 1.0) is None  # the load is over


class SlowTable:
    """A writer session whose insert waits for an answer that takes a second."""

    def insert(self, row: Row) -> WriteResult:
        gevent.sleep(1.0)
        now = time.time_ns()
        return WriteResult(Outcome.OK, now, now)


def test_a_writer_stopped_mid_write_leaves_that_write_indeterminate() -> None:
    """It may have committed: a listener that receives it must not see a write the ledger never had."""
    stream = WriterStream(WriterSpec(7, 1, (Step("insert", count=3),)), 64, time.monotonic() + 10)
    worker = gevent.spawn(stream.act, SlowTable())  # type: ignore[arg-type]
    gevent.sleep(0.05)
    worker.kill()  # as Locust stops a user when the count goes down
    assert worker.dead and worker.successful()  # GreenletExit went through
    ledger = stream.ledger.to_dict()
    assert stream.stopped and ledger["counts"]["indeterminate"]["insert"] == 1 and ledger["counts"]["ok"]["insert"] == 0
    assert ledger["wseqs"]["indeterminate"] == [[1, 1]]
