"""Coordination between Locust users and the run's coordinator, over Locust custom messages.

Users (on workers, or in-process) talk to the coordinator (on the master, or in-process)
with the messages below; in-process, Locust delivers them by direct calls, so both sides
run unchanged in all three modes. The coordinator hands each user a unique spec index,
opens the writers' gate once every listener is ready (after ``extra.preload_seconds`` of an
idle server, when set), and ends the run: writers (and the
churn) done → queriers and flusher wind down → drain → target counters → stop listeners →
final summaries → checker → run folder → quit. It logs each phase to ``phases.jsonl`` as it
ends (``subscribe``, ``preload``, ``load``, ``step-<n>`` for ramps, ``drain``).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from gevent.event import AsyncResult, Event
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from harness.delivery.tracker import ListenerTracker
from harness.plan import Plan
from harness.targets.base import Schema, Target, TargetError
from locustfiles import population, ramp
from locustfiles.aggregation import LiveView, merge_deltas, write_outputs
from locustfiles.phases import PhaseLog

CLAIM = "lqh_claim"  # user -> coordinator: {kind, token}
CLAIMED = "lqh_claimed"  # coordinator -> user: {token, index|None}
READY = "lqh_ready"  # listener -> coordinator: {listener_id, error|None}
GO = "lqh_go"  # coordinator -> users: {ok}: writers may start (ok) or must not (ready timeout)
WRITER_FINAL = "lqh_writer_final"  # writer user -> coordinator: {group, ledgers[]}
STOP = "lqh_stop"  # coordinator -> users: listeners stop receiving and report
LISTENER_FINAL = "lqh_listener_final"  # listener user -> coordinator: {listener_id, summary, subscriptions}
LOAD_DONE = "lqh_load_done"  # coordinator -> users: writers and churn done; queriers, flusher wind down
CHURN_FINAL = "lqh_churn_final"  # churn user -> coordinator: {released|None, error|None}
FLUSH_FINAL = "lqh_flush_final"  # flush user -> coordinator: {jobs: {id: status}, skipped, error|None}

POLL_SECONDS = 0.1
END_MARGIN_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class RunContext:
    """What every user of this process shares: the plan, the table schema and the target driver."""

    plan: Plan
    schema: Schema
    target: Target

    @property
    def max_seconds(self) -> float:
        """Hard bound of the whole run (the runner's Locust ``--run-time``)."""
        return float(self.plan.extra.get("max_seconds", 900))


class UserLink:
    """The users' side in one process: claims, the writers' gate, the stop signal, live deltas."""

    def __init__(self, runner: Any) -> None:
        self.runner = runner
        self.go = Event()
        self.go_ok = False
        self.load_done = Event()
        self.stop = Event()
        self.trackers: list[ListenerTracker] = []
        self._pending: dict[str, AsyncResult] = {}
        self._tokens = itertools.count(1)

    def register(self) -> None:
        self.runner.register_message(CLAIMED, self._on_claimed)
        self.runner.register_message(GO, self._on_go)
        self.runner.register_message(LOAD_DONE, self._on_load_done)
        self.runner.register_message(STOP, self._on_stop)

    def claim(self, kind: str, timeout: float) -> int | None:
        """A spec index of ``kind`` (listener, writer, churn, flush) no other user has, or None if none is left."""
        token = f"{getattr(self.runner, 'client_id', 'local')}:{next(self._tokens)}"
        result: AsyncResult = AsyncResult()
        self._pending[token] = result
        try:
            self.send(CLAIM, {"kind": kind, "token": token})
            return result.get(timeout=timeout)
        except gevent.Timeout:
            return None
        finally:
            self._pending.pop(token, None)

    def send(self, msg_type: str, data: dict[str, Any]) -> None:
        self.runner.send_message(msg_type, data)

    def delta(self) -> dict[str, Any]:
        """Sum of this process's tracker deltas since the last call."""
        return merge_deltas([t.delta() for t in self.trackers])

    def _on_claimed(self, environment: Environment, msg: Any, **_: Any) -> None:
        pending = self._pending.get(msg.data["token"])
        if pending is not None:
            pending.set(msg.data["index"])

    def _on_go(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.go_ok = bool(msg.data["ok"])
        self.go.set()

    def _on_load_done(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.load_done.set()

    def _on_stop(self, environment: Environment, msg: Any, **_: Any) -> None:
        self.load_done.set()
        self.stop.set()

    def winding_down(self) -> bool:
        """True once the load is over (or the run stops): extra users end their loops."""
        return self.load_done.is_set()


class Coordinator:
    """The run's single coordinator (master or in-process runner)."""

    def __init__(self, environment: Environment, context: RunContext) -> None:
        self.environment = environment
        self.context = context
        self.plan = context.plan
        self.live_view = LiveView()
        self.phases = PhaseLog(self.plan.extra.get("run_dir"))
        self.ramp = ramp.settings(self.plan)
        self._churn = population.churn(self.plan) is not None
        self._flush = population.flush(self.plan) is not None
        self._totals = {
            "listener": len(self.plan.listeners),
            "writer": len(self.plan.writer_groups),
            "churn": int(self._churn),
            "flush": int(self._flush),
        }
        self._next = dict.fromkeys(self._totals, 0)
        self._ready: dict[str, str | None] = {}
        self._ledgers: dict[int, dict[str, Any]] = {}
        self._groups_done: set[int] = set()
        self._listener_finals: dict[str, dict[str, Any]] = {}
        self._listeners_stopped_at: float | None = None
        self._churn_final: dict[str, Any] | None = None
        self._flush_final: dict[str, Any] | None = None
        self._load_started_at: float | None = None
        self._load_logged = False
        self._clock: ramp.RampClock | None = None
        self._claims_by_node: dict[str, int] = {}
        self._finals_by_node: dict[str, int] = {}
        self._greenlet: gevent.Greenlet | None = None
        self._finished = False
        self._errors: list[str] = []
        self._target_side: dict[str, Any] = {}
        self._summary_timed_out = False
        self._started = time.monotonic()

    @property
    def runner(self) -> Any:
        return self.environment.runner

    def register(self) -> None:
        self.runner.register_message(CLAIM, self._on_claim)
        self.runner.register_message(READY, self._on_ready)
        self.runner.register_message(WRITER_FINAL, self._on_writer_final)
        self.runner.register_message(LISTENER_FINAL, self._on_listener_final)
        self.runner.register_message(CHURN_FINAL, self._on_churn_final)
        self.runner.register_message(FLUSH_FINAL, self._on_flush_final)
        self.environment.events.worker_report.add_listener(self._on_worker_report)

    def start(self) -> None:
        """Begin the run's end-to-end sequence (once; later test starts are ignored)."""
        if self._greenlet is None:
            self._started = time.monotonic()
            self._greenlet = gevent.spawn(self._run)

    # -- messages -------------------------------------------------------------------------------

    def _on_claim(self, environment: Environment, msg: Any, **_: Any) -> None:
        kind = msg.data["kind"]
        total = self._totals.get(kind, 0)
        index = self._next[kind] if kind in self._next and self._next[kind] < total else None
        if index is not None:
            self._next[kind] += 1
            self._claims_by_node[msg.node_id] = self._claims_by_node.get(msg.node_id, 0) + 1
        self.runner.send_message(CLAIMED, {"token": msg.data["token"], "index": index}, client_id=msg.node_id)

    def _on_ready(self, environment: Environment, msg: Any, **_: Any) -> None:
        self._ready[msg.data["listener_id"]] = msg.data.get("error")

    def _count_final(self, node_id: str) -> None:
        self._finals_by_node[node_id] = self._finals_by_node.get(node_id, 0) + 1

    def _on_writer_final(self, environment: Environment, msg: Any, **_: Any) -> None:
        self._count_final(msg.node_id)
        self._groups_done.add(int(msg.data["group"]))
        for ledger in msg.data["ledgers"]:
            self._ledgers[int(ledger["writer_id"])] = ledger
        if msg.data.get("error"):
            self._errors.append(msg.data["error"])

    def _on_listener_final(self, environment: Environment, msg: Any, **_: Any) -> None:
        self._count_final(msg.node_id)
        self._listener_finals[msg.data["listener_id"]] = msg.data
        if len(self._listener_finals) >= len(self.plan.listeners):
            self._listeners_stopped_at = time.time()
        if msg.data.get("error"):
            self._errors.append(msg.data["error"])

    def _on_churn_final(self, environment: Environment, msg: Any, **_: Any) -> None:
        self._count_final(msg.node_id)
        self._churn_final = msg.data
        self._target_side["released"] = msg.data.get("released")
        if msg.data.get("error"):
            self._target_side["churn_error"] = msg.data["error"]

    def _on_flush_final(self, environment: Environment, msg: Any, **_: Any) -> None:
        self._count_final(msg.node_id)
        self._flush_final = msg.data
        self._target_side["jobs"] = dict(msg.data.get("jobs") or {})
        self._target_side["flush"] = {k: msg.data.get(k) for k in ("skipped", "error")}

    def _on_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        if "lqh" in data:
            self.live_view.add(data["lqh"])

    # -- the run --------------------------------------------------------------------------------

    def _deadline(self) -> float:
        """When the run must start ending so it finishes before the runner's hard bound."""
        reserve = self.plan.drain_seconds + self.plan.summary_timeout + END_MARGIN_SECONDS
        return self._started + max(self.context.max_seconds - reserve, 1.0)

    def _wait(self, done: Callable[[], bool], until: float, local_link: UserLink | None) -> bool:
        while not done():
            if time.monotonic() >= until:
                return False
            if local_link is not None:
                self.live_view.add(local_link.delta())
            if self._clock is not None:
                self._clock.tick(time.time())
            gevent.sleep(POLL_SECONDS)
        return True

    def _load_over(self) -> bool:
        """Every writer group reported, and the churn (part of the load) too when there is one."""
        return len(self._groups_done) >= len(self.plan.writer_groups) and (
            not self._churn or self._churn_final is not None
        )

    def _all_final(self) -> bool:
        return (
            len(self._listener_finals) >= len(self.plan.listeners)
            and self._load_over()
            and (not self._flush or self._flush_final is not None)
        )

    def _end_load(self) -> float:
        """Log the ``load`` phase (and the ramp's last steps) once, ending now; return its end."""
        now = time.time()
        if self._load_started_at is not None and not self._load_logged:
            self._load_logged = True
            if self._clock is not None:
                self._clock.tick(now, final=True)
                self._clock = None
            self.phases.write(
                "load", self._load_started_at, now, writers=len(self.plan.writers),
                writer_users=len(self.plan.writer_groups),
            )  # fmt: skip
        return now

    def _run(self) -> None:
        local = _state.get("link") if has_users(self.runner) else None
        plan = self.plan
        n_listeners = len(plan.listeners)
        subscribe_start = time.time()
        ready_by = min(time.monotonic() + plan.ready_timeout, self._deadline())
        all_ready = self._wait(lambda: len(self._ready) >= n_listeners, ready_by, local)
        self.phases.write("subscribe", subscribe_start, time.time(), listeners=n_listeners, ready=len(self._ready))
        failed = {lid: err for lid, err in self._ready.items() if err}
        ok = all_ready and not failed
        if not all_ready:
            missing = sorted({s.listener_id for s in plan.listeners} - set(self._ready))
            self._errors.append(f"listeners not ready within {plan.ready_timeout:g} s: {', '.join(missing)}")
        for lid, err in sorted(failed.items()):
            self._errors.append(f"listener {lid} could not subscribe: {err}")
        preload = population.preload_seconds(plan)
        if ok and preload > 0:
            preload_start, until = (
                time.time(),
                time.monotonic() + min(preload, self._deadline() - time.monotonic()),
            )
            self._wait(lambda: time.monotonic() >= until, until + 1.0, local)
            self.phases.write("preload", preload_start, time.time())
        self.runner.send_message(GO, {"ok": ok})
        self._load_started_at = time.time()
        if self.ramp is not None and ok:
            self._clock = ramp.RampClock(plan, self.ramp, self._load_started_at, self.phases)
        n_groups = len(plan.writer_groups)
        if not self._wait(self._load_over, self._deadline(), local):
            churn = "" if not self._churn else f", churn {'done' if self._churn_final else 'not done'}"
            self._errors.append(
                f"load not done before the run's time bound ({len(self._groups_done)}/{n_groups} writer groups{churn})"
            )
        writers_done_at = self._end_load()
        self.runner.send_message(LOAD_DONE, {"at": writers_done_at})
        if ok:
            gevent.sleep(plan.drain_seconds)
        self._read_target_side()
        self.runner.send_message(STOP, {"writers_done_at": writers_done_at})
        summary_by = time.monotonic() + plan.summary_timeout
        self._summary_timed_out = not self._wait(self._all_final, summary_by, local)
        self.phases.write("drain", writers_done_at, self._listeners_stopped_at or time.time())
        self.finish()
        self.runner.quit()

    def _read_target_side(self) -> None:
        """The target's own counters at the end of load (``target.json``)."""
        admin = None
        try:
            admin = self.context.target.admin()
            self._target_side["live"] = admin.live_subscriptions()
            self._target_side["stats"] = admin.stats()
        except TargetError as exc:
            self._target_side.setdefault("live", None)
            self._target_side["error"] = f"cannot read target counters: {exc}"
        finally:
            if admin is not None:
                admin.close()

    def finish(self, error: str | None = None) -> None:
        """Check delivery and write the run folder files (once; also called when Locust quits early)."""
        if self._finished:
            return
        self._finished = True
        if error:
            self._errors.append(error)
        self._end_load()
        if self._churn and self._churn_final is None:
            self._target_side["churn_error"] = "the churn user sent no final report"
        if self._flush and self._flush_final is None:
            self._target_side["flush"] = {"skipped": None, "error": "the flush user sent no final report"}
        workers = self.runner.worker_count if isinstance(self.runner, MasterRunner) else 0
        expected_ids = {s.listener_id for s in self.context.plan.listeners}
        extra_expected = int(self._churn) + int(self._flush)
        users_expected = len(expected_ids) + len(self.plan.writer_groups) + extra_expected
        users_received = (
            len(self._listener_finals) + len(self._groups_done)
            + int(self._churn_final is not None) + int(self._flush_final is not None)
        )  # fmt: skip
        nodes_complete = [n for n, c in self._claims_by_node.items() if self._finals_by_node.get(n, 0) >= c]
        aggregation = {
            "workers_expected": workers,
            "summaries_expected": len(self._claims_by_node),
            "summaries_received": len(nodes_complete),
            "users_expected": users_expected,
            "users_received": users_received,
            "timed_out": self._summary_timed_out or users_received < users_expected,
            "missing_listeners": sorted(expected_ids - set(self._listener_finals)),
            "missing_writers": sorted({w.writer_id for w in self.plan.writers} - set(self._ledgers)),
            "live_view": self.live_view.totals(),
        }
        write_outputs(
            self.plan,
            list(self._ledgers.values()),
            list(self._listener_finals.values()),
            self._target_side,
            aggregation,
            list(dict.fromkeys(self._errors)),
            self.context.target.features,
        )


_state: dict[str, Any] = {}


def install(environment: Environment, context: RunContext) -> None:
    """Wire this process's side(s) of the run into ``environment`` (called from Locust's init event)."""
    runner = environment.runner
    _state["context"] = context
    if has_users(runner):
        link = UserLink(runner)
        link.register()
        _state["link"] = link
        if isinstance(runner, WorkerRunner):
            environment.events.report_to_master.add_listener(
                lambda client_id, data, **_: data.__setitem__("lqh", link.delta())
            )
    if is_coordinator(runner):
        coordinator = Coordinator(environment, context)
        coordinator.register()
        _state["coordinator"] = coordinator
        environment.events.test_start.add_listener(lambda **_: coordinator.start())
        environment.events.quitting.add_listener(
            lambda **_: coordinator.finish("Locust quit before the run ended (time bound or interrupt)")
        )


def context() -> RunContext:
    """The shared run context of this process (set up by ``install``)."""
    return _state["context"]


def link() -> UserLink:
    """This process's user link (set up by ``install``)."""
    return _state["link"]


def is_coordinator(runner: Any) -> bool:
    """True on the master and on an in-process runner (where the run is coordinated)."""
    return not isinstance(runner, WorkerRunner)


def has_users(runner: Any) -> bool:
    """True on workers and on an in-process runner (where users run)."""
    return not isinstance(runner, MasterRunner)
