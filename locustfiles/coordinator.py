"""The run's coordinator (on the master, or in-process): spec claims, the writers' gate, the end of the run.

It hands each user a unique spec index, opens the writers' gate once every listener is
ready (after ``extra.preload_seconds`` of an idle server, when set), and ends the run:
writers (and the churn) done → queriers and flusher wind down → drain → target counters →
stop listeners → final summaries → checker → run folder → ``on_finished`` → quit (headless) or stop (web UI,
which stays up to show the result). A stop from Locust (``--run-time`` over, the web UI's stop button)
ends the load early and runs the same end. It logs each phase to
``phases.jsonl`` as it ends (``subscribe``, ``preload``, ``load``, ``step-<n>`` and ``ramp`` for ramps, ``drain``).
An open-ended ramp (``locustfiles.ramp``) ends the load itself when it stops: the writers get
``LoadDone`` early and wind down.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner

from harness.targets.base import TargetError
from locustfiles import clock, joiners, messages, ramp
from locustfiles.aggregation import LiveView, write_outputs
from locustfiles.context import END_MARGIN_SECONDS, RunContext
from locustfiles.lag import LagSampler
from locustfiles.link import UserLink
from locustfiles.messages import (
    ChurnFinal,
    Claim,
    Claimed,
    ClockOffset,
    FlushFinal,
    Go,
    ListenerFinal,
    LoadDone,
    Ready,
    Stop,
    WriterFinal,
)
from locustfiles.phases import PhaseLog

POLL_SECONDS = 0.1
USER_KINDS = {"ListenerUser": "listeners", "WriterUser": "writer_users"}  # shown by kind in a user-count step
LIVE_VIEW_SECONDS = 1.0  # how often the in-process live view takes this process's listener deltas


class Coordinator:
    """The run's single coordinator (master or in-process runner)."""

    def __init__(
        self,
        environment: Environment,
        context: RunContext,
        lag: LagSampler,
        local_link: UserLink | None = None,
        on_finished: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.environment = environment
        self.context = context
        self.plan = context.plan
        self.local_link = local_link  # this process's users, when they run here (in-process)
        self.live_view = LiveView()
        self.on_finished = on_finished  # called with the checker's delivery once the run folder files are written
        self.delivery: dict[str, Any] | None = None  # the checker's output, once the run ended
        self.clocks: dict[str, dict[str, Any]] = {}  # each worker's ClockOffset, by node id
        self.lag = lag  # this process's event-loop lag (the Delivery tab shows it)
        self.worker_lag_ms: dict[str, float] = {}  # each worker's last reported loop lag
        self._stop_asked = False
        # (unix time, Locust user count, users by kind) at each spawn's end
        self._user_counts: list[tuple[float, int, dict[str, int]]] = []
        self.phases = PhaseLog(self.plan.extra.run_dir)
        self.ramp = self.plan.extra.ramp
        self._churn = self.plan.extra.churn is not None
        self._flush = self.plan.extra.flush is not None
        self._totals = {  # claims handed out at most: listeners and writers beyond the plan's are joiners
            "listener": joiners.claimable(self.plan, "listener"),
            "writer": joiners.claimable(self.plan, "writer"),
            "churn": int(self._churn),
            "flush": int(self._flush),
        }
        self._next = dict.fromkeys(self._totals, 0)
        self._planned_listeners = frozenset(s.listener_id for s in self.plan.listeners)
        self._ready: dict[str, str | None] = {}
        self._ledgers: dict[int, dict[str, Any]] = {}
        self._groups_done: set[int] = set()
        self._listener_finals: dict[str, ListenerFinal] = {}
        self._listeners_stopped_at: float | None = None
        self._churn_final: ChurnFinal | None = None
        self._flush_final: FlushFinal | None = None
        self._load_started_at: float | None = None
        self._load_logged = False
        self._clock: ramp.RampController | None = None
        self._ramp_stop_sent = False
        self._claims_by_node: dict[str, int] = {}
        self._claimed: dict[str, list[tuple[str, int]]] = {}  # node id -> the (kind, index) it drives
        self._lost_nodes: set[str] = set()  # workers the master saw go missing
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
        """Listen for the users' messages and the workers' reports."""
        messages.on(self.runner, Claim, self._on_claim)
        messages.on(self.runner, Ready, self._on_ready)
        messages.on(self.runner, WriterFinal, self._on_writer_final)
        messages.on(self.runner, ListenerFinal, self._on_listener_final)
        messages.on(self.runner, ChurnFinal, self._on_churn_final)
        messages.on(self.runner, FlushFinal, self._on_flush_final)
        if isinstance(self.runner, MasterRunner):
            clock.answer_pings(self.runner)
            messages.on(self.runner, ClockOffset, self._on_clock_offset)
        self.environment.events.worker_report.add_listener(self._on_worker_report)
        self.environment.events.test_stopping.add_listener(lambda **_: self.stop_requested())
        self.environment.events.spawning_complete.add_listener(self._on_spawned)

    def start(self) -> None:
        """Begin the run's end-to-end sequence (once; later test starts are ignored)."""
        if self._greenlet is None:
            self._started = time.monotonic()
            self._greenlet = gevent.spawn(self._run)

    def stop_requested(self) -> None:
        """Locust is stopping the test (run time over, web UI stop): end the load now and wait for the run's end.

        Locust kills the users once this returns, so the drain, the listeners' finals and the run
        folder must be done first. Ignored when the coordinator itself stops Locust at the end.
        """
        greenlet = self._greenlet
        if greenlet is None or greenlet.dead or gevent.getcurrent() is greenlet:
            return
        self._stop_asked = True
        greenlet.join(timeout=self.plan.drain_seconds + self.plan.summary_timeout + END_MARGIN_SECONDS)

    # -- messages -------------------------------------------------------------------------------

    def _planned(self, kind: str) -> int:
        return len(self.plan.listeners) if kind == "listener" else len(self.plan.writer_groups)

    def _on_claim(self, msg: Claim, node_id: str) -> None:
        total = self._totals.get(msg.kind, 0)
        index = self._next[msg.kind] if msg.kind in self._next and self._next[msg.kind] < total else None
        if index is not None and index >= self._planned(msg.kind) and self._load_logged:
            index = None  # a user that joins once the load is over has nothing left to add
        if index is not None:
            self._next[msg.kind] += 1
            self._claims_by_node[node_id] = self._claims_by_node.get(node_id, 0) + 1
            self._claimed.setdefault(node_id, []).append((msg.kind, index))
        messages.send(self.runner, Claimed(msg.token, index), client_id=node_id)

    def _on_ready(self, msg: Ready, node_id: str) -> None:
        self._ready[msg.listener_id] = msg.error

    def _count_final(self, node_id: str) -> None:
        self._finals_by_node[node_id] = self._finals_by_node.get(node_id, 0) + 1

    def _on_writer_final(self, msg: WriterFinal, node_id: str) -> None:
        self._count_final(node_id)
        self._groups_done.add(int(msg.group))
        for ledger in msg.ledgers:
            self._ledgers[int(ledger["writer_id"])] = ledger
        if msg.error:
            self._errors.append(msg.error)

    def _on_listener_final(self, msg: ListenerFinal, node_id: str) -> None:
        self._count_final(node_id)
        self._listener_finals[msg.listener_id] = msg
        if self._claimed_listeners() <= set(self._listener_finals):
            self._listeners_stopped_at = time.time()
        if msg.error:
            self._errors.append(msg.error)

    def _on_churn_final(self, msg: ChurnFinal, node_id: str) -> None:
        self._count_final(node_id)
        self._churn_final = msg
        self._target_side["released"] = msg.released
        if msg.error:
            self._target_side["churn_error"] = msg.error

    def _on_flush_final(self, msg: FlushFinal, node_id: str) -> None:
        self._count_final(node_id)
        self._flush_final = msg
        self._target_side["jobs"] = dict(msg.jobs)
        self._target_side["flush"] = {"skipped": msg.skipped, "error": msg.error}

    def _on_spawned(self, user_count: int, **_: Any) -> None:
        by_class = getattr(self.runner, "target_user_classes_count", None) or {}
        kinds = {kind: int(by_class.get(cls, 0)) for cls, kind in USER_KINDS.items()}
        self._user_counts.append((time.time(), int(user_count), kinds))

    def _write_user_steps(self, start: float, end: float) -> None:
        """An interactive ramp: when the user count changed during the load (web UI, or keys w/s), log each
        count as a ``step-<n>`` phase with its ``users`` (and of them ``listeners`` and ``writer_users``), so
        the report draws the load against them."""
        steps = [(max(t, start), n, kinds) for t, n, kinds in self._user_counts if t < end]
        steps = [step for i, step in enumerate(steps) if i == 0 or step[1] != steps[i - 1][1]]
        if len(steps) < 2:
            return
        for i, (t, users, kinds) in enumerate(steps):
            until = steps[i + 1][0] if i + 1 < len(steps) else end
            self.phases.write(f"step-{i + 1}", t, until, users=users, **kinds)

    def _claimed_listeners(self) -> set[str]:
        """The listener ids handed out: the plan's (all of them are owed a final) and the joiners claimed."""
        joined = range(len(self.plan.listeners), self._next["listener"])
        return set(self._planned_listeners) | {joiners.listener_spec(self.plan, i).listener_id for i in joined}

    def _claimed_groups(self) -> set[int]:
        """The writer group indexes owed a final: the plan's and the joiners claimed."""
        return set(range(max(len(self.plan.writer_groups), self._next["writer"])))

    def joined_writers(self) -> list[int]:
        """The writer ids of the joining writer groups claimed so far."""
        joined = range(len(self.plan.writer_groups), self._next["writer"])
        return [w.writer_id for i in joined for w in joiners.writer_specs(self.plan, i)]

    def _on_clock_offset(self, msg: ClockOffset, node_id: str) -> None:
        self.clocks[node_id] = asdict(msg)

    def _on_worker_report(self, client_id: str, data: dict[str, Any]) -> None:
        if "lqh" in data:
            self.live_view.add(data["lqh"])
        if "lqh_lag_ms" in data:
            self.worker_lag_ms[client_id] = float(data["lqh_lag_ms"])

    # -- the run --------------------------------------------------------------------------------

    def _deadline(self) -> float:
        """When the run must start ending so it finishes before the runner's hard bound."""
        reserve = self.plan.drain_seconds + self.plan.summary_timeout + END_MARGIN_SECONDS
        return self._started + max(self.context.max_seconds - reserve, 1.0)

    def _wait(self, done: Callable[[], bool], until: float) -> bool:
        next_view = 0.0
        while not done():
            now = time.monotonic()
            if now >= until:
                return False
            if self.local_link is not None and now >= next_view:
                # once a second, and the histograms as objects: encoding and decoding them (about 2 ms a
                # listener) pulled every poll held the in-process loop most of the time
                self.live_view.add(self.local_link.delta(encode=False))
                next_view = now + LIVE_VIEW_SECONDS
            if self._clock is not None:
                self._clock.tick(time.time())
                self._end_ramp()
            gevent.sleep(POLL_SECONDS)
        return True

    def _lost(self, kind: str) -> set[int]:
        """The indexes of ``kind`` driven by workers the master saw go missing (noted once, as a run error)."""
        if isinstance(self.runner, MasterRunner):
            for node in self.runner.clients.missing:
                if node.id not in self._lost_nodes:
                    self._lost_nodes.add(node.id)
                    users = ", ".join(f"{k} {i}" for k, i in self._claimed.get(node.id, [])) or "no users"
                    self._errors.append(f"Locust worker {node.id} went missing (no heartbeat); lost: {users}")
        return {i for node in self._lost_nodes for k, i in self._claimed.get(node, []) if k == kind}

    def _load_over(self) -> bool:
        """Every writer group claimed (the plan's and the joiners) reported or was lost with its worker, and the
        churn (part of the load) too: a joining writer's program extends the load, until the run's time bound."""
        groups = self._groups_done | self._lost("writer")
        churn_over = not self._churn or self._churn_final is not None or bool(self._lost("churn"))
        return self._claimed_groups() <= groups and churn_over

    def _all_final(self) -> bool:
        lost = {joiners.listener_spec(self.plan, i).listener_id for i in self._lost("listener")}
        return (
            self._claimed_listeners() <= set(self._listener_finals) | lost
            and self._load_over()
            and (not self._flush or self._flush_final is not None or bool(self._lost("flush")))
        )

    def _end_ramp(self) -> None:
        """Once the ramp decided to stop, end the load: the writers wind down and send their ledgers."""
        if self._clock is not None and self._clock.stop is not None and not self._ramp_stop_sent:
            self._ramp_stop_sent = True
            messages.send(self.runner, LoadDone(time.time()))

    def _end_load(self) -> float:
        """Log the ``load`` phase (and the ramp's last steps) once, ending now; return its end."""
        now = time.time()
        if self._load_started_at is not None and not self._load_logged:
            self._load_logged = True
            if self._clock is not None:
                self._clock.finish(now)
                self._clock = None
            self.phases.write(
                "load", self._load_started_at, now, writers=len(self.plan.writers),
                writer_users=len(self.plan.writer_groups),
            )  # fmt: skip
            if self.ramp is None:
                self._write_user_steps(self._load_started_at, now)
        return now

    def _run(self) -> None:
        plan = self.plan
        n_listeners = len(plan.listeners)
        subscribe_start = time.time()
        ready_by = min(time.monotonic() + plan.ready_timeout, self._deadline())
        all_ready = self._wait(lambda: self._planned_listeners <= set(self._ready), ready_by)
        ready = len(self._planned_listeners & set(self._ready))
        self.phases.write("subscribe", subscribe_start, time.time(), listeners=n_listeners, ready=ready)
        # a joiner that could not subscribe does not hold the writers back: its final names why
        failed = {lid: err for lid, err in self._ready.items() if err and lid in self._planned_listeners}
        ok = all_ready and not failed
        if not all_ready:
            missing = sorted({s.listener_id for s in plan.listeners} - set(self._ready))
            self._errors.append(f"listeners not ready within {plan.ready_timeout:g} s: {', '.join(missing)}")
        for lid, err in sorted(failed.items()):
            self._errors.append(f"listener {lid} could not subscribe: {err}")
        preload = plan.extra.preload_seconds
        if ok and preload > 0:
            preload_start, until = (
                time.time(),
                time.monotonic() + min(preload, self._deadline() - time.monotonic()),
            )
            self._wait(lambda: time.monotonic() >= until, until + 1.0)
            self.phases.write("preload", preload_start, time.time())
        messages.send(self.runner, Go(ok))
        self._load_started_at = time.time()
        if self.ramp is not None and ok:
            meter = ramp.LocustMeter(
                self.runner, self.lag.recent_ms if self.local_link is not None else None, self.worker_lag_ms
            )
            self._clock = ramp.RampController(
                plan, self.ramp, self._load_started_at, self.phases, meter, ramp.unix_deadline(self._deadline())
            )
        n_groups = len(plan.writer_groups)
        if not self._wait(lambda: self._load_over() or self._stop_asked, self._deadline()):
            churn = "" if not self._churn else f", churn {'done' if self._churn_final else 'not done'}"
            self._errors.append(
                f"load not done before the run's time bound ({len(self._groups_done)}/{n_groups} writer groups{churn})"
            )
        if self._stop_asked and not self._load_over():
            self._errors.append("the load was stopped before its end (Locust stopped the test: run time or web UI)")
        writers_done_at = self._end_load()
        messages.send(self.runner, LoadDone(writers_done_at))
        if ok:
            gevent.sleep(plan.drain_seconds)
        self._read_target_side()
        messages.send(self.runner, Stop(writers_done_at))
        summary_by = time.monotonic() + plan.summary_timeout
        self._summary_timed_out = not self._wait(self._all_final, summary_by)
        self.phases.write("drain", writers_done_at, self._listeners_stopped_at or time.time())
        self.finish()
        if self._stop_asked:
            return  # Locust is stopping the test already
        options = self.environment.parsed_options
        if options is not None and not options.headless and self.environment.web_ui is not None:
            self.runner.stop()
        else:
            self.runner.quit()

    def _read_target_side(self) -> None:
        """The target's own counters at the end of load (``target.json``)."""
        admin = None
        try:
            admin = self.context.target.admin()
            self._target_side["live"] = admin.live_subscriptions()
            self._target_side["stats"] = admin.stats()
            if self.plan.contended:
                self._target_side["commits"] = admin.commits(self.context.schema)
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
        expected_ids = self._claimed_listeners()
        extra_expected = int(self._churn) + int(self._flush)
        users_expected = len(expected_ids) + len(self._claimed_groups()) + extra_expected
        users_received = (
            len(self._listener_finals) + len(self._groups_done)
            + int(self._churn_final is not None) + int(self._flush_final is not None)
        )  # fmt: skip
        nodes_complete = [n for n, c in self._claims_by_node.items() if self._finals_by_node.get(n, 0) >= c]
        joined = self.joined_writers()
        aggregation = {
            "workers_expected": workers,
            "summaries_expected": len(self._claims_by_node),
            "summaries_received": len(nodes_complete),
            "users_expected": users_expected,
            "users_received": users_received,
            "timed_out": self._summary_timed_out or users_received < users_expected,
            "missing_listeners": sorted(expected_ids - set(self._listener_finals)),
            "missing_writers": sorted({*(w.writer_id for w in self.plan.writers), *joined} - set(self._ledgers)),
            "lost_workers": sorted(self._lost_nodes),
            "live_view": self.live_view.totals(),
            "clocks": dict(sorted(self.clocks.items())),
            "joined_listeners": sorted(expected_ids - self._planned_listeners),
            "joined_writers": joined,
        }
        self.delivery = write_outputs(
            self.plan,
            list(self._ledgers.values()),
            list(self._listener_finals.values()),
            self._target_side,
            aggregation,
            list(dict.fromkeys(self._errors)),
            self.context.target.features,
        )
        self.lag.stop()
        if self.on_finished is not None:
            self.on_finished(self.delivery)
