"""The base of every harness user: a Locust user that does its work once, then idles until the run ends.

Listeners, writers, queriers, the churn and the flusher each run one piece of the plan for
the whole run; Locust calls a user's task again and again, so :class:`OneShotUser` runs
:meth:`OneShotUser.run_once` on the first call and only idles after it. The coordinator, not
Locust, ends the run.
"""

from __future__ import annotations

from typing import Any

import gevent
from locust import User, task

from locustfiles import coordination
from locustfiles.context import RunContext
from locustfiles.link import UserLink
from locustfiles.notify import REQUEST_TYPE as NOTIFY
from locustfiles.notify import NotifyStats

IDLE_SECONDS = 0.5  # how long a finished user sleeps per task call
BATCHED = frozenset({NOTIFY})  # request types whose successes are added to Locust's statistics in batches


class OneShotUser(User):
    """Runs :meth:`run_once` once, with this process's run context and user link, then idles."""

    abstract = True  # each kind is made concrete by locustfiles/live.py with the plan's count of it

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self._finished = False
        self._notify: NotifyStats | None = None

    @task
    def once(self) -> None:
        """Locust's task: the user's work on the first call, an idle wait on every later one."""
        if self._finished:
            gevent.sleep(IDLE_SECONDS)
            return
        self._finished = True
        self.run_once(coordination.context(), coordination.link())

    def run_once(self, ctx: RunContext, link: UserLink) -> None:
        """The user's whole work in the run."""
        raise NotImplementedError

    def fire(
        self, request_type: str, name: str, response_time: float, exception: Exception | None, length: int = 0
    ) -> None:
        """Report one request to Locust's statistics (``response_time`` in ms; ``exception`` marks a failure).

        Successes of the ``BATCHED`` request types (a listener's notifications, tens of thousands a
        second) reach the statistics in batches (``locustfiles.notify``); everything else is one
        request event.
        """
        if exception is None and request_type in BATCHED:
            notify = self._notify
            if notify is None:
                notify = self._notify = NotifyStats.of(self.environment)
            notify.add(name, response_time, length)
            return
        self.environment.events.request.fire(
            request_type=request_type,
            name=name,
            response_time=response_time,
            response_length=length,
            exception=exception,
            context={},
        )
