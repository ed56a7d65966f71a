"""The churn user (``extra.churn``): opens subscriptions, closes some, and records what the server released.

Once every planned listener is ready it opens ``open`` extra subscriptions (each on its own
WebSocket), counts the server's live subscriptions (``Admin.live_subscriptions``) and its
established sockets, closes ``close`` of them, waits ``settle_seconds`` and counts again;
then it closes the rest. Sockets are not visible through the target interface: they are
read from the monitor's samples (``monitor.jsonl`` in the run folder, ``conns.ESTABLISHED``)
taken after each mark, and are null when the run has no monitor (a remote target). The
counts and marks go to ``target.json["released"]``. The churn is part of the load: the
coordinator ends the load phase only after it.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import gevent
import orjson

from harness.plan import ChurnSettings
from harness.runfolder import MONITOR
from harness.targets.base import Admin, Listener, TargetError
from locustfiles.context import RunContext
from locustfiles.link import UserLink
from locustfiles.messages import ChurnFinal
from locustfiles.users import OneShotUser

MONITOR_WAIT_SECONDS = 5.0  # how long to wait for a monitor sample taken after a mark
TAIL_BYTES = 64 * 1024
PUMP_SECONDS = 0.1
CLOSE_WAIT_SECONDS = 5.0  # bound on closing a batch (each close waits at most about a second for its echo)
MAX_DRAIN = 200  # notifications read from one held subscription per pump round


def monitor_sockets(run_dir: str | None, after: float) -> tuple[int | None, float | None]:
    """Established server sockets in the first monitor sample at or after ``after`` (unix s), with its time.

    Waits up to ``MONITOR_WAIT_SECONDS`` for that sample; (None, None) without a monitor file
    or sample, or when the sample has no connection counts.
    """
    path = Path(run_dir) / MONITOR if run_dir else None
    deadline = time.monotonic() + MONITOR_WAIT_SECONDS
    for _ in range(math.ceil(MONITOR_WAIT_SECONDS / PUMP_SECONDS) + 1):
        if path is None or not path.exists():
            break
        sample = _first_sample_after(path, after)
        if sample is not None:
            conns = sample.get("conns")
            if not isinstance(conns, dict):
                return None, float(sample["t"])
            return int(conns.get("ESTABLISHED", 0)), float(sample["t"])
        if time.monotonic() >= deadline:
            break
        gevent.sleep(PUMP_SECONDS)
    return None, None


def _first_sample_after(path: Path, after: float) -> dict[str, Any] | None:
    try:
        with path.open("rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - TAIL_BYTES))
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        try:
            sample = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue  # the cut first line of the tail, or a line being written
        if isinstance(sample, dict) and isinstance(sample.get("t"), int | float) and sample["t"] >= after:
            if sample.get("alive") is not False:
                return sample
    return None


class Churn:
    """One churn cycle against the target: open, count, close some, settle, count, close the rest."""

    def __init__(self, ctx: RunContext, settings: ChurnSettings, stop: Any) -> None:
        self.ctx = ctx
        self.settings = settings
        self.stop = stop  # callable: the run is ending
        self.held: list[Listener] = []
        self.errors: list[str] = []
        self.run_dir = ctx.plan.extra.run_dir

    def open_all(self, until: float) -> None:
        """Open ``settings.open`` subscriptions (unfiltered, as the app user) one after another until ``until``."""
        plan = self.ctx.plan
        for _ in range(self.settings.open):
            if self.stop() or time.monotonic() >= until:
                self.errors.append(f"churn opened only {len(self.held)} of {self.settings.open} subscriptions in time")
                return
            listener = self.ctx.target.listener(self.ctx.schema, plan.app_user)
            try:
                listener.subscribe(None)
            except TargetError as exc:
                listener.close()
                self.errors.append(f"churn subscription {len(self.held) + 1} refused: {exc}")
                continue
            self.held.append(listener)

    def hold(self, seconds: float) -> None:
        """Keep the held subscriptions alive (heartbeat, drain notifications) for ``seconds``."""
        until = time.monotonic() + seconds
        for _ in range(2 * math.ceil(seconds / PUMP_SECONDS) + 1):
            for listener in list(self.held):
                try:
                    for _ in range(MAX_DRAIN):
                        if listener.recv(0.0) is None:
                            break
                except TargetError as exc:  # Disconnected, or an error message on the subscription
                    self.held.remove(listener)
                    listener.close()
                    self.errors.append(f"churn subscription {listener.subscription_id} dropped: {exc}")
            left = until - time.monotonic()
            if left <= 0 or self.stop():
                return
            gevent.sleep(min(PUMP_SECONDS, left))

    def count(self, admin: Admin) -> dict[str, Any]:
        """Live subscriptions now and established sockets in the next monitor sample."""
        t = time.time()
        live = admin.live_subscriptions()
        sockets, sockets_t = monitor_sockets(self.run_dir, t)
        return {
            "t": t,
            "live": None if live is None else len(live),
            "sockets": sockets,
            "sockets_t": sockets_t,
            "ids": set(live) if live is not None else None,
        }

    def close(self, listeners: list[Listener]) -> None:
        """Close ``listeners`` concurrently while the others are kept alive (a close may wait for its echo)."""
        for listener in listeners:
            self.held.remove(listener)
        closing = [gevent.spawn(listener.close) for listener in listeners]
        until = time.monotonic() + CLOSE_WAIT_SECONDS
        for _ in range(math.ceil(CLOSE_WAIT_SECONDS / PUMP_SECONDS) + 1):
            if all(g.dead for g in closing) or time.monotonic() >= until:
                break
            self.hold(PUMP_SECONDS)
        gevent.joinall(closing, timeout=max(0.0, until - time.monotonic()))

    def run(self, admin: Admin, deadline: float) -> dict[str, Any]:
        """The whole cycle; returns the ``released`` record for target.json."""
        settings = self.settings
        self.open_all(min(deadline, time.monotonic() + self.ctx.plan.ready_timeout))
        opened_at = time.time()
        opened = len(self.held)
        self.hold(min(1.0, settings.settle_seconds))
        before = self.count(admin)
        self.hold(0.0)
        closing = self.held[: settings.close]
        closed_ids = {listener.subscription_id for listener in closing}
        self.close(closing)
        closed_at = time.time()
        self.hold(max(0.0, min(settings.settle_seconds, deadline - time.monotonic())))
        after = self.count(admin)
        still = None if after["ids"] is None else len(closed_ids & after["ids"])
        for record in (before, after):
            record.pop("ids")
        return {
            "opened": opened,
            "closed": len(closing),
            "churn_opened_at": opened_at,
            "churn_closed_at": closed_at,
            "before": before,
            "after": after,
            "closed_still_live": still,
        }


class ChurnUser(OneShotUser):
    """Runs the plan's churn once, after every listener is ready, and reports it to the coordinator."""

    def run_once(self, ctx: RunContext, link: UserLink) -> None:
        settings = ctx.plan.extra.churn
        if settings is None or link.claim("churn", timeout=ctx.plan.ready_timeout) is None:
            return
        released: dict[str, Any] | None = None
        churn = Churn(ctx, settings, link.stop.is_set)
        try:
            go = link.wait_go(ctx.go_timeout)
            if go is None:
                churn.errors.append("churn: no go from the coordinator in time")
            elif go:
                released = self._run(ctx, churn)
        finally:
            churn.close(list(churn.held))
            if released is not None:
                released["errors"] = churn.errors[:10]
            error = None if released is not None else "; ".join(churn.errors[:5]) or "no churn (listeners not ready)"
            link.send(ChurnFinal(released, error))

    def _run(self, ctx: RunContext, churn: Churn) -> dict[str, Any] | None:
        started = time.perf_counter()
        admin = None
        try:
            admin = ctx.target.admin()
            released = churn.run(admin, time.monotonic() + ctx.max_seconds)
        except TargetError as exc:
            churn.errors.append(f"churn: {exc}")
            self._fire(started, str(exc))
            return None
        finally:
            if admin is not None:
                admin.close()
        self._fire(started, None)
        return released

    def _fire(self, started: float, error: str | None) -> None:
        self.fire(
            "CHURN", "open-close", (time.perf_counter() - started) * 1000.0, ChurnFailed(error) if error else None
        )


class ChurnFailed(Exception):
    """The churn could not be done (reported to Locust as a CHURN failure)."""
