"""Coordination over Locust's in-process runner: unique spec claims, gate and stop messages, deltas."""

import os

# Locust patches the whole process with gevent on import; the test process must stay unpatched,
# and the variable must not leak into Locust subprocesses that other tests start.
_PREVIOUS = os.environ.get("LOCUST_SKIP_MONKEY_PATCH")
os.environ["LOCUST_SKIP_MONKEY_PATCH"] = "1"

from dataclasses import replace  # noqa: E402

import orjson  # noqa: E402
from locust.env import Environment  # noqa: E402

from harness.delivery.identity import messages_schema  # noqa: E402
from harness.delivery.tracker import ListenerTracker  # noqa: E402
from harness.plan import ListenerSpec, Plan, Step, TargetSpec, WriterSpec  # noqa: E402
from locustfiles import coordination  # noqa: E402
from locustfiles.aggregation import LiveView, merge_deltas, write_outputs  # noqa: E402
from tests.unit.delivery_world import DRAIN_NS, PAYLOAD, World  # noqa: E402

if _PREVIOUS is None:
    del os.environ["LOCUST_SKIP_MONKEY_PATCH"]
else:
    os.environ["LOCUST_SKIP_MONKEY_PATCH"] = _PREVIOUS


def _plan(run_dir: str = "") -> Plan:
    return Plan(
        run_id="r", scenario="s", target=TargetSpec("kalamdb", "http://127.0.0.1:1", "root", "pw"),
        namespace="lq", table="m", table_type="SHARED", app_user="app", app_password="pw", payload_bytes=PAYLOAD,
        writers=(WriterSpec(1, 10, (Step("insert", count=1),)), WriterSpec(2, 20, (Step("insert", count=1),))),
        listeners=(ListenerSpec("L1"), ListenerSpec("L2", 10)), writer_groups=((1,), (2,)),
        drain_seconds=DRAIN_NS / 1e9, extra={"run_dir": run_dir},
    )  # fmt: skip


def test_claims_are_unique_and_messages_reach_users() -> None:
    env = Environment(user_classes=[])
    env.create_local_runner()
    plan = _plan()
    coordination.install(env, coordination.RunContext(plan, messages_schema(plan), target=None))  # type: ignore[arg-type]
    link = coordination.link()
    assert [link.claim("listener", 1.0) for _ in range(3)] == [0, 1, None]
    assert [link.claim("writer", 1.0) for _ in range(3)] == [0, 1, None]
    env.runner.send_message(coordination.GO, {"ok": True})
    assert link.go.is_set() and link.go_ok
    env.runner.send_message(coordination.STOP, {})
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
    view.add(merge_deltas([a.delta(), b.delta()]))
    totals = view.totals()
    assert totals["received"] == len(world.changes) + 2 and totals["duplicates"] == 1
    assert totals["latency_ms"]["count"] == 14 + 2


def test_write_outputs_fills_the_run_folder(tmp_path) -> None:
    world = World()
    world.standard()
    plan = _plan(str(tmp_path))
    trackers = [
        world.listen(world.changes, lid="L1"),
        world.listen([c for c in world.changes if (c.row or c.old_row)["conversation_id"] == 10], 10, "L2"),
    ]
    finals = [{"listener_id": t.listener_id, "summary": t.summary().to_dict(), "subscription_id": f"s-{t.listener_id}",
               "subscriptions": {f"s-{t.listener_id}": t.received}} for t in trackers]  # fmt: skip
    ledgers = [w.ledger.to_dict() for w in world.writers.values()]
    write_outputs(plan, ledgers, finals, {"live": {"s-L1": 16, "s-L2": 8}}, {"timed_out": False}, [], {"resume"})
    delivery = orjson.loads((tmp_path / "delivery.json").read_bytes())
    assert delivery["totals"]["expected"] == delivery["totals"]["delivered"] == 24
    assert delivery["totals"]["lost"] == 0 and delivery["error"] is None
    writes = orjson.loads((tmp_path / "writes.json").read_bytes())
    assert writes["writers"]["1"]["ok"] == {"insert": 5, "update": 2, "delete": 1}
    target = orjson.loads((tmp_path / "target.json").read_bytes())
    assert target["live"] == {"s-L1": 16, "s-L2": 8}
    assert target["listeners"]["L2"] == {
        "subscription_id": "s-L2",
        "subscriptions": {"s-L2": 8},
        "received": 8,
        "snapshot_rows": 0,
    }


def test_churn_and_flush_are_claimed_once_and_load_done_reaches_users() -> None:
    env = Environment(user_classes=[])
    env.create_local_runner()
    plan = replace(_plan(), extra={"churn": {"open": 2, "close": 1}, "flush_every_seconds": 1.0})
    coordination.install(env, coordination.RunContext(plan, messages_schema(plan), target=None))  # type: ignore[arg-type]
    link = coordination.link()
    assert [link.claim("churn", 1.0) for _ in range(2)] == [0, None]
    assert [link.claim("flush", 1.0) for _ in range(2)] == [0, None]
    assert link.claim("querier", 1.0) is None  # queriers need no index: nothing to claim
    assert not link.winding_down()
    env.runner.send_message(coordination.LOAD_DONE, {"at": 0.0})
    assert link.winding_down() and not link.stop.is_set()


def test_stop_also_winds_extra_users_down() -> None:
    env = Environment(user_classes=[])
    env.create_local_runner()
    plan = _plan()
    coordination.install(env, coordination.RunContext(plan, messages_schema(plan), target=None))  # type: ignore[arg-type]
    link = coordination.link()
    env.runner.send_message(coordination.STOP, {})
    assert link.winding_down() and link.stop.is_set()
