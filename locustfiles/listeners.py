"""Listener users: one live subscription each, every notification checked on arrival.

A listener subscribes (filtered by conversation when its spec says so), reports ready,
then receives until the coordinator says stop, feeding its ``ListenerTracker`` and
recording one Locust ``NOTIFY`` request per notification (anomalies as failures; successes
reach Locust's statistics in batches, ``locustfiles.notify``).
It leaves and resumes per its ``ReconnectSpec``, and reconnects with resume after an
unexpected disconnect (recorded as such). A frame the target cannot decode is a malformed
notification followed by a resume; a listener that ends before the stop says why.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import gevent
from gevent.event import Event

from harness.delivery.tracker import ListenerTracker, WriterView
from harness.plan import ListenerSpec, Plan
from harness.targets import create_target
from harness.targets.base import Disconnected, Eq, Listener, Op, ProtocolError, TableKind, Target, TargetError
from locustfiles import joiners
from locustfiles.context import RunContext
from locustfiles.lag import BACKLOG
from locustfiles.link import UserLink
from locustfiles.messages import ListenerFinal, Ready
from locustfiles.notify import NotifyStats
from locustfiles.users import OneShotUser

RECV_SLICE = 1.0  # seconds per recv call: a stop is seen within it; each idle wake-up costs a timeout
RETRY_SECONDS = (0.2, 0.5, 1.0, 2.0)
MAX_ATTEMPTS = 10_000  # subscribe attempts per (re)connection; time bounds them first


class DeliveryAnomaly(Exception):
    """A notification that showed an anomaly (reported to Locust as a NOTIFY failure)."""


class Subscription:
    """The listener's current connection, opened again (with resume) when it ends."""

    def __init__(self, spec: ListenerSpec, context: RunContext, stop: Event, deadline: float) -> None:
        self.spec = spec
        self.context = context
        self._stop = stop  # set once the run is ending
        self.deadline = deadline
        self.filter = None if spec.conversation_id is None else Eq("conversation_id", spec.conversation_id)
        # a listener with a URL of its own (its nemesis route) reaches the target through it
        self.target: Target = (
            context.target if spec.url is None else create_target(replace(context.plan.target, url=spec.url))
        )
        self.current: Listener | None = None
        self.received: dict[str, int] = {}  # subscription id -> change notifications received on it
        self.last_seq: int | None = None
        self.last_error: str | None = None
        self.requested_ns: int | None = None  # when the current subscription was requested

    @property
    def replayed(self) -> bool:
        """Whether the current subscription resumed by a replay of every change since its cursor."""
        return self.current is not None and self.current.replayed

    def stop(self) -> bool:
        return self._stop.is_set()

    def stop_wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless the run ends first; True if it did."""
        return self._stop.wait(timeout=seconds)

    def open(self, resume_from: int | None, until: float) -> bool:
        """Subscribe, retrying until ``until`` (monotonic) or stop; True once subscribed."""
        for attempt in range(MAX_ATTEMPTS):
            listener = self.target.listener(self.context.schema, self.spec.user or self.context.plan.app_user)
            self.requested_ns = time.time_ns()
            try:
                listener.subscribe(self.filter, resume_from=resume_from)
            except TargetError as exc:
                listener.close()
                self.last_error = str(exc)
                pause = RETRY_SECONDS[min(attempt, len(RETRY_SECONDS) - 1)]
                if self.stop() or time.monotonic() + pause >= min(until, self.deadline):
                    return False
                gevent.sleep(pause)
                continue
            self.current = listener
            self.received.setdefault(listener.subscription_id or f"unnamed-{len(self.received) + 1}", 0)
            return True
        return False

    def recv(self, timeout: float) -> Any:
        assert self.current is not None
        change = self.current.recv(timeout)
        if change is not None:
            if change.op is not Op.SNAPSHOT:  # the server's changes counter counts change events only
                sid = self.current.subscription_id or next(reversed(self.received))
                self.received[sid] = self.received.get(sid, 0) + 1
            if self.current.last_seq is not None:
                self.last_seq = self.current.last_seq
        return change

    def backlog(self) -> int | None:
        """Bytes the current connection has received and not yet handed out, where its client says (else None)."""
        probe = getattr(self.current, "backlog_bytes", None)
        return probe() if probe is not None else None

    def close(self) -> None:
        if self.current is not None:
            self.current.close()
            self.current = None


class ListenerUser(OneShotUser):
    """Holds the subscription of ``plan.listeners[i]`` (i claimed from the coordinator) for the whole run.

    A user beyond the plan's listeners holds a joining copy of one (``locustfiles.joiners``) from
    when it joins; Locust may stop either before the run's stop (the user count lowered).
    """

    def run_once(self, ctx: RunContext, link: UserLink) -> None:
        plan = ctx.plan
        index = link.claim("listener", timeout=plan.ready_timeout)
        if index is None:
            return
        spec = joiners.listener_spec(plan, index)
        tracker = _tracker(plan, spec)
        link.trackers.append(tracker)
        sub = Subscription(spec, ctx, link.stop, time.monotonic() + ctx.max_seconds)
        BACKLOG.add(sub)
        error = None
        early: str | None = "the listener's receive loop raised"
        try:
            if sub.open(None, time.monotonic() + plan.ready_timeout):
                tracker.transitions = "filter_transitions" in ctx.target.features  # the generation is known now
                tracker.mark_ready(time.time_ns())
                link.send(Ready(spec.listener_id))
                try:
                    early = self._receive(sub, tracker)
                except gevent.GreenletExit:
                    # Locust stopped this user before the run's stop: the user count went down (web UI, or
                    # the w/s keys), so the listener left on purpose; what it was owed ends here, not early
                    early = None
                    raise
            else:
                early = None  # never ready: counted apart, not as ended early
                error = f"listener {spec.listener_id} could not subscribe: {sub.last_error}"
                link.send(Ready(spec.listener_id, sub.last_error))
        finally:
            BACKLOG.discard(sub)
            NotifyStats.of(self.environment).flush()
            tracker.mark_end(time.time_ns(), early=None if sub.stop() else early)
            current = sub.current.subscription_id if sub.current else None
            sub.close()
            link.send(ListenerFinal(spec.listener_id, tracker.summary().to_dict(), current, dict(sub.received), error))

    def _receive(self, sub: Subscription, tracker: ListenerTracker) -> str | None:
        """Receive until the stop; return why it ended without one (None when it was told to stop)."""
        reconnect = sub.spec.reconnect
        on_connection = 0
        while not sub.stop() and time.monotonic() < sub.deadline:
            try:
                change = sub.recv(RECV_SLICE)
            except Exception as exc:  # noqa: BLE001 - the socket ended, a server error, or a frame not decodable
                if sub.stop():
                    return None
                now = time.time_ns()
                if isinstance(exc, TargetError) and not isinstance(exc, ProtocolError):
                    reason = exc.reason if isinstance(exc, Disconnected) else f"server error: {exc}"
                else:  # a frame the driver could not decode: a protocol anomaly, then a resume
                    reason = f"malformed frame: {type(exc).__name__}: {exc}"
                    tracker.observe_malformed(now, reason)
                tracker.mark_disconnected(now, reason, expected=False)
                sub.close()
                if not sub.open(sub.last_seq, sub.deadline):
                    return f"could not subscribe again after {reason}: {sub.last_error}"
                tracker.mark_resumed(time.time_ns(), sub.last_seq is not None, sub.requested_ns, replayed=sub.replayed)
                on_connection = 0
                continue
            if change is None:
                continue
            obs = tracker.observe(change)
            anomaly = DeliveryAnomaly(", ".join(obs.anomalies)) if obs.anomalies else None
            latency = obs.latency_ms if obs.latency_ms is not None else 0
            self.fire("NOTIFY", obs.op, latency, anomaly, change.wire_bytes)
            on_connection += 1
            if reconnect is not None and on_connection == reconnect.after_changes:
                reconnect_spec, reconnect = reconnect, None  # a planned reconnect happens once
                tracker.mark_disconnected(time.time_ns(), "planned reconnect", expected=True)  # before close() waits
                sub.close()
                if sub.stop_wait(reconnect_spec.away_seconds):
                    return None
                resume_from = sub.last_seq if reconnect_spec.resume else None
                if not sub.open(resume_from, sub.deadline):
                    return f"could not subscribe again after a planned reconnect: {sub.last_error}"
                tracker.mark_resumed(time.time_ns(), resume_from is not None, sub.requested_ns, replayed=sub.replayed)
                on_connection = 0
        return None if sub.stop() else "the run's time bound passed before the stop"


def _tracker(plan: Plan, spec: ListenerSpec) -> ListenerTracker:
    """The listener's tracker, knowing the plan's writers (conversation, user) and whom it may see."""
    writers = {
        w.writer_id: WriterView(w.conversation_id, w.user or plan.app_user, w.conversations)
        for w in (*plan.writers, *joiners.joiner_writers(plan))
    }
    return ListenerTracker(
        spec.listener_id,
        spec.conversation_id,
        plan.payload_bytes,
        int(plan.drain_seconds * 1e9),
        writers=writers,
        user=spec.user or plan.app_user,
        per_user=plan.table_type is TableKind.USER,
        contention=plan.contended,
    )
