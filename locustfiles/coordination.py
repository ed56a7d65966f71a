"""Coordination between Locust users and the run's coordinator: this process's registry and its wiring.

Users (on workers, or in-process) talk to the coordinator (on the master, or in-process)
with the messages of ``locustfiles.messages``; in-process, Locust delivers them by direct
calls, so both sides run unchanged in all three modes. :func:`install` (run from Locust's
``init`` event) sets up this process's side or sides: a ``UserLink`` (``locustfiles.link``)
where users run, the ``Coordinator`` (``locustfiles.coordinator``) where the run is coordinated.
The users then find the shared context and their link here. Where users run, the event-loop
lag sampler (``locustfiles.lag``) writes into the run folder's ``generator.jsonl``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from locustfiles import clock, messages
from locustfiles.context import RunContext
from locustfiles.coordinator import Coordinator
from locustfiles.lag import LagSampler
from locustfiles.lag import install as install_lag
from locustfiles.link import UserLink


@dataclass(slots=True)
class Registry:
    """This process's side(s) of the run, set once by :func:`install`."""

    context: RunContext | None = None
    link: UserLink | None = None
    coordinator: Coordinator | None = None
    lag: LagSampler | None = None


_registry = Registry()
log = logging.getLogger("lqharness")


def install(
    environment: Environment, context: RunContext, on_finished: Callable[[dict[str, Any]], None] | None = None
) -> Coordinator | None:
    """Wire this process's side(s) of the run into ``environment``; return the coordinator if this process has it.

    Called from Locust's init event (or, on a worker of a plain ``locust -f`` run, when the plan
    arrives). ``on_finished`` is the coordinator's call once the run folder files are written.
    """
    runner = environment.runner
    if runner is None:
        raise RuntimeError("coordination.install needs the environment's runner (Locust's init event has it)")
    _registry.context = context
    _registry.link = _registry.coordinator = None
    role = "worker" if isinstance(runner, WorkerRunner) else "local" if has_users(runner) else "master"
    if _registry.lag is not None:  # one sampler per process, whatever installed it before
        _registry.lag.stop()
    lag = _registry.lag = install_lag(context.plan.extra.run_dir, role, record=has_users(runner))
    environment.events.quitting.add_listener(lambda **_: lag.stop())
    if has_users(runner):
        link = UserLink(runner)
        link.register()
        _registry.link = link
        if isinstance(runner, WorkerRunner):

            def report(client_id: str, data: dict[str, Any], **_: Any) -> None:
                data["lqh"] = link.delta()
                data["lqh_lag_ms"] = lag.recent_ms()

            environment.events.report_to_master.add_listener(report)
            gevent.spawn(_send_clock_offset, runner)
    if is_coordinator(runner):
        coordinator = Coordinator(environment, context, lag, _registry.link, on_finished)
        coordinator.register()
        _registry.coordinator = coordinator
        environment.events.test_start.add_listener(lambda **_: coordinator.start())
        environment.events.quitting.add_listener(
            lambda **_: coordinator.finish("Locust quit before the run ended (time bound or interrupt)")
        )
    return _registry.coordinator


def _send_clock_offset(runner: WorkerRunner) -> None:
    """Estimate this worker's clock offset to the master and send it (the master records it in run.json)."""
    offset = clock.measure(runner)
    if offset is None:
        log.warning("the master answered no clock ping: this worker's clock offset is unknown")
        return
    messages.send(runner, offset)


def context() -> RunContext:
    """The shared run context of this process (set up by ``install``)."""
    if _registry.context is None:
        raise RuntimeError("coordination.install has not run in this process")
    return _registry.context


def link() -> UserLink:
    """This process's user link (set up by ``install`` where users run)."""
    if _registry.link is None:
        raise RuntimeError("this process runs no users, or coordination.install has not run")
    return _registry.link


def is_coordinator(runner: Any) -> bool:
    """True on the master and on an in-process runner (where the run is coordinated)."""
    return not isinstance(runner, WorkerRunner)


def has_users(runner: Any) -> bool:
    """True on workers and on an in-process runner (where users run)."""
    return not isinstance(runner, MasterRunner)
