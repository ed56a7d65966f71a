"""The locustfile of a run: writers and listeners of the plan in ``$LQH_PLAN``.

Run by ``lqharness run`` in one of three modes: in-process (``locust -f locustfiles/live.py
--headless ...``), master (``--master --expect-workers N``) or worker (``--worker``).
There is one ListenerUser per plan listener and one WriterUser per writer group; the
coordinator (master or in-process) ends the run itself and writes the delivery files.
"""

from __future__ import annotations

from typing import Any

from gevent import monkey
from locust import events

from harness.errors import HarnessError
from harness.identity import messages_schema
from harness.plan import load_plan
from harness.targets import create_target
from locustfiles import coordination, listeners, writers

if not monkey.is_module_patched("socket"):
    raise HarnessError(
        "Locust runs without gevent monkey patching (LOCUST_SKIP_MONKEY_PATCH is set): unset it"
    )
PLAN = load_plan()


class ListenerUser(listeners.ListenerUser):
    fixed_count = len(PLAN.listeners)


class WriterUser(writers.WriterUser):
    fixed_count = len(PLAN.writer_groups)


@events.init.add_listener
def _install(environment: Any, **_: Any) -> None:
    context = coordination.RunContext(PLAN, messages_schema(PLAN), create_target(PLAN.target))
    coordination.install(environment, context)
