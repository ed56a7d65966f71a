"""Coordination over Locust's in-process runner: unique spec claims, gate and stop messages, deltas."""

from dataclasses import replace
from types import SimpleNamespace

import orjson
import pytest
from locust.env import Environment
from locust.rpc.protocol import Message as LocustMessage

from harness.delivery.identity import messages_schema
from harness.delivery.tracker import ListenerTracker
from harness.orchestration.runner import _run_time_bound
from harness.plan import (
    QUICK_MAX_SECONDS,
    ChurnSettings,
    Extras,
    FlushSettings,
    ListenerSpec,
    Plan,
    Step,
    TargetSpec,
    WriterSpec,
)
from harness.scenarios.catalogue import build_plan, resolve
from locustfiles import coordination, messages, users
from locustfiles.aggregation import LiveView, write_outputs
from locustfiles.context import RunContext
from locustfiles.link import UserLink
from locustfiles.messages import (
    ChurnFinal,
    Claim,
    Claimed,
    ClockOffset,
    ClockPing,
    ClockPong,
    FlushFinal,
    Go,
    ListenerFinal,
    LoadDone,
    PlanWanted,
    Ready,
    RunPlan,
    Stop,
    WriterFinal,
)
from reports.judge import RULES
from tests.support.delivery_world import DRAIN_NS, PAYLOAD, World


def _plan(run_dir: str = "") -> Plan:
    return Plan(
        run_id="r", scenario="s", target=TargetSpec("kalamdb", "http://127.0.0.1:1", "root", "pw"),
        namespace="lq", table="m", table_type="SHARED", app_user="app", app_password="pw", payload_bytes=PAYLOAD,
        writers=(WriterSpec(1, 10, (Step("insert", count=1),)), WriterSpec(2, 20, (Step("insert", count=1),))),
        listeners=(ListenerSpec("L1"), ListenerSpec("L2", 10)), writer_groups=((1,), (2,)),
        drain_seconds=DRAIN_NS / 1e9, extra=Extras(run_dir=run_dir),
    )  # fmt: skip


# The coordinator reads only the target's features here: what its resume promises.
NO_TARGET = SimpleNamespace(features=frozenset({"resume"}))


def test_claims_are_unique_and_messages_reach_users() -> None:
    env = Environment(user_classes=[])
    env.create_local_runner()
    plan = _plan()
    coordination.install(env, RunContext(plan, messages_schema(plan), target=NO_TARGET))  # type: ignore[arg-type]
    link = coordination.link()
    # a claim beyond the plan's listeners and writer groups is a joiner's (locustfiles.joiners)
    assert [link.claim("listener", 1.0) for _ in range(3)] == [0, 1, 2]
    assert [link.claim("writer", 1.0) for _ in range(3)] == [0, 1, 2]
    assert [link.claim("churn", 1.0), link.claim("flush", 1.0)] == [None, None]
    messages.send(env.runner, Go(True))
    assert link.go.is_set() and link.go_ok
    messages.send(env.runner, Stop(0.0))
    assert link.stop.is_set()


def test_live_view_and_deltas_sum_listeners() -> None:
    world = World()
    world.standard()
    a = ListenerTracker("a", None, PAYLOAD, DRAIN_NS)
    b = ListenerTracker("b", None, PAYLOAD, DRAIN_NS)
    for c in world.changes:
        a.observe(c)
    b.observe(world.changes[0])
    b.observe(world.changes[0])
    view = LiveView()
    view.add({"a": a.delta(), "b": b.delta()})
    totals = view.totals()
    assert totals["received"] == len(world.changes) + 2 and totals["duplicates"] == 1
    assert totals["latency_ms"]["count"] == 14 + 2
    assert view.listeners()["b"]["received"] == 2 and view.listeners()["b"]["duplicates"] == 1


def test_write_outputs_fills_the_run_folder(tmp_path) -> None:
    world = World()
    world.standard()
    plan = _plan(str(tmp_path))
    trackers = [
        world.listen(world.changes, lid="L1"),
        world.listen([c for c in world.changes if (c.row or c.old_row)["conversation_id"] == 10], 10, "L2"),
    ]
    finals = [
        ListenerFinal(t.listener_id, t.summary().to_dict(), f"s-{t.listener_id}", {f"s-{t.listener_id}": t.received})
        for t in trackers
    ]
    ledgers = [w.ledger.to_dict() for w in world.writers.values()]
    write_outputs(plan, ledgers, finals, {"live": {"s-L1": 16, "s-L2": 8}}, {"timed_out": False}, [], {"resume"})
    delivery = orjson.loads((tmp_path / "delivery.json").read_bytes())
    assert delivery["totals"]["expected"] == delivery["totals"]["delivered"] == 24
    assert delivery["totals"]["lost"] == 0 and delivery["error"] is None
    writes = orjson.loads((tmp_path / "writes.json").read_bytes())
    assert writes["writers"]["1"]["ok"] == {"insert": 5, "update": 2, "delete": 1}
    target = orjson.loads((tmp_path / "target.json").read_bytes())
    assert target["listeners"]["L1"]["received"] == 16  # every change of the standard world, counted by its tracker
    received = {sid: n for li in target["listeners"].values() for sid, n in li["subscriptions"].items()}
    assert received == target["live"]  # what SC-055 compares: the server's counters match the listeners' counts
    assert target["listeners"]["L2"] == {
        "subscription_id": "s-L2",
        "subscriptions": {"s-L2": 8},
        "received": 8,
        "snapshot_rows": 0,
    }


def test_churn_and_flush_are_claimed_once_and_load_done_reaches_users() -> None:
    env = Environment(user_classes=[])
    env.create_local_runner()
    plan = replace(_plan(), extra=Extras(churn=ChurnSettings(2, 1), flush=FlushSettings(1.0)))
    coordination.install(env, RunContext(plan, messages_schema(plan), target=NO_TARGET))  # type: ignore[arg-type]
    link = coordination.link()
    assert [link.claim("churn", 1.0) for _ in range(2)] == [0, None]
    assert [link.claim("flush", 1.0) for _ in range(2)] == [0, None]
    assert link.claim("querier", 1.0) is None  # queriers need no index: nothing to claim
    assert not link.winding_down()
    messages.send(env.runner, LoadDone(0.0))
    assert link.winding_down() and not link.stop.is_set()


def test_stop_also_winds_extra_users_down() -> None:
    env = Environment(user_classes=[])
    env.create_local_runner()
    plan = _plan()
    coordination.install(env, RunContext(plan, messages_schema(plan), target=NO_TARGET))  # type: ignore[arg-type]
    link = coordination.link()
    messages.send(env.runner, Stop(0.0))
    assert link.winding_down() and link.stop.is_set()


EVERY_MESSAGE = [
    RunPlan(orjson.loads(_plan().to_json()), _plan().secret_env()),
    PlanWanted(),
    ClockPing(1.5),
    ClockPong(1.5, 1.75),
    ClockOffset(0.25, 0.001, 5),
    Claim("writer", "w1:1"),
    Claimed("w1:1", 3),
    Ready("L1", None),
    Go(False),
    LoadDone(12.5),
    Stop(12.5),
    WriterFinal(0, [{"writer_id": 1, "records": [[1, 2]]}], "boom"),
    ListenerFinal("L1", {"received": 2, "by_op": {"insert": 2}}, "s-1", {"s-1": 2}, None),
    ChurnFinal({"opened": 2, "before": {"live": 3}}, None),
    FlushFinal({"j1": "completed"}, 1, None),
]


@pytest.mark.parametrize("msg", EVERY_MESSAGE, ids=lambda m: type(m).__name__)
def test_every_message_survives_the_wire(msg: messages.Message) -> None:
    sent: list[LocustMessage] = []

    class Wire:
        def send_message(self, msg_type: str, data: object = None, client_id: str | None = None) -> None:
            sent.append(LocustMessage.unserialize(LocustMessage(msg_type, data, client_id or "w1").serialize()))

    messages.send(Wire(), msg)  # type: ignore[arg-type]
    (received,) = sent
    assert received.type == type(msg).TYPE
    assert messages.decode(type(msg), received) == msg


def test_message_types_are_distinct_and_documented() -> None:
    kinds = [type(m) for m in EVERY_MESSAGE]
    assert len({k.TYPE for k in kinds}) == len(kinds)
    assert all("Sent by" in (k.__doc__ or "") for k in kinds)


def test_the_coordinator_reads_the_finals_into_the_run_folder(tmp_path) -> None:
    world = World()
    world.standard()
    env = Environment(user_classes=[])
    env.create_local_runner()
    plan = replace(_plan(str(tmp_path)), extra=Extras(run_dir=str(tmp_path), flush=FlushSettings(1.0)))
    coordination.install(env, RunContext(plan, messages_schema(plan), target=NO_TARGET))  # type: ignore[arg-type]
    link = coordination.link()
    assert link.claim("listener", 1.0) == 0 and link.claim("writer", 1.0) == 0 and link.claim("flush", 1.0) == 0
    tracker = world.listen(world.changes, lid="L1")
    link.send(ListenerFinal("L1", tracker.summary().to_dict(), "s-L1", {"s-L1": tracker.received}, None))
    ledgers = [w.ledger.to_dict() for w in world.writers.values()]
    link.send(WriterFinal(0, ledgers, "writer 1: refused"))
    link.send(FlushFinal({"j1": "completed"}, 2, None))
    env.events.quitting.fire(environment=env)  # the coordinator finishes when Locust quits
    delivery = orjson.loads((tmp_path / "delivery.json").read_bytes())
    assert delivery["error"].startswith("writer 1: refused; Locust quit before the run ended")
    assert delivery["aggregation"]["missing_listeners"] == ["L2"]
    target = orjson.loads((tmp_path / "target.json").read_bytes())
    assert target["jobs"] == {"j1": "completed"} and target["flush"] == {"skipped": 2, "error": None}
    assert target["listeners"]["L1"]["subscriptions"] == {"s-L1": tracker.received}


def test_one_time_bound_serves_the_runner_and_the_coordinator() -> None:
    plan = build_plan(resolve(["live.inserts"], RULES)[0], quick=True, target=_plan().target, run_id="r", run_dir="")
    context = RunContext(plan, messages_schema(plan), target=None)  # type: ignore[arg-type]
    assert context.max_seconds == _run_time_bound(plan) == QUICK_MAX_SECONDS


def test_a_one_shot_user_runs_once_then_idles(monkeypatch: pytest.MonkeyPatch) -> None:
    env = Environment(user_classes=[])
    env.create_local_runner()
    plan = _plan()
    coordination.install(env, RunContext(plan, messages_schema(plan), target=NO_TARGET))  # type: ignore[arg-type]
    monkeypatch.setattr(users, "IDLE_SECONDS", 0.0)
    runs: list[tuple[RunContext, UserLink]] = []

    class Counting(users.OneShotUser):
        def run_once(self, ctx: RunContext, link: UserLink) -> None:
            runs.append((ctx, link))

    user = Counting(env)
    for _ in range(3):
        user.once()
    assert runs == [(coordination.context(), coordination.link())]
