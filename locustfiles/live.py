"""The locustfile of a run: the users of the plan in ``$LQH_PLAN``.

Run by ``lqharness run`` in one of three modes: in-process (``locust -f locustfiles/live.py
--headless ...``), master (``--master --expect-workers N``) or worker (``--worker``), with
``-u`` = ``locustfiles.users_needed(plan)``. Every user class has a fixed count:

- ListenerUser: one per plan listener; WriterUser: one per writer group;
- QueryUser: ``extra.queriers.count`` (bounded reads as ``QUERY`` requests while writers run);
- ChurnUser: one when ``extra.churn`` is set (opens, counts, closes subscriptions);
- FlushUser: one when ``extra.flush`` is set (periodic flush, jobs followed).

Each is a ``locustfiles.users.OneShotUser``: its work runs once, then it idles.

The coordinator (master or in-process) ends the run itself and writes the delivery files.
Load shapes are expressed by the plan, not by a Locust LoadTestShape:

- steady / soak: writer steps bounded by ``seconds`` at a ``rate`` (soak = the same, longer);
- ramp (``extra.ramp``): writer streams whose programs start with a pause of (step index x
  step seconds), logged as ``step-<n>`` phases with ``users`` and ``rate`` (``locustfiles.ramp``);
- writers-after-listeners: always; writers start once every listener is ready (phase ``subscribe``);
- stop-then-observe: the runner keeps sampling the server ``observe_seconds`` after Locust ends
  (phase ``observe``).
"""

from __future__ import annotations

from typing import Any

from gevent import monkey
from locust import events

from harness.delivery.identity import messages_schema
from harness.errors import HarnessError
from harness.plan import load_plan
from harness.targets import create_target
from locustfiles import churn, coordination, flusher, listeners, population, queriers, writers
from locustfiles.context import RunContext

if not monkey.is_module_patched("socket"):
    raise HarnessError("Locust runs without gevent monkey patching (LOCUST_SKIP_MONKEY_PATCH is set): unset it")
PLAN = load_plan()
_COUNTS = population.user_counts(PLAN)


class ListenerUser(listeners.ListenerUser):
    fixed_count = _COUNTS["listeners"]
    abstract = fixed_count == 0


class WriterUser(writers.WriterUser):
    fixed_count = _COUNTS["writers"]
    abstract = fixed_count == 0


class QueryUser(queriers.QueryUser):
    fixed_count = _COUNTS["queriers"]
    abstract = fixed_count == 0


class ChurnUser(churn.ChurnUser):
    fixed_count = _COUNTS["churn"]
    abstract = fixed_count == 0


class FlushUser(flusher.FlushUser):
    fixed_count = _COUNTS["flush"]
    abstract = fixed_count == 0


@events.init.add_listener
def _install(environment: Any, **_: Any) -> None:
    context = RunContext(PLAN, messages_schema(PLAN), create_target(PLAN.target))
    coordination.install(environment, context)
