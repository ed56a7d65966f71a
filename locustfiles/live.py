"""The locustfile of a run: the users of the plan in ``$LQH_PLAN``, or of ``--scenario``.

Two ways in. Plain ``locust -f locustfiles/live.py --scenario NAME`` (web UI, ``--headless``,
``--processes N``, ``--master``/``--worker``): without ``$LQH_PLAN`` the master opens the run
itself and sends the plan to the workers (``locustfiles.entry``); the harness's options are on
Locust's parser (``locustfiles.options``). Or ``lqharness run``, which writes the plan file and
runs this file in one of three modes: in-process (``locust -f locustfiles/live.py
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

import os
from typing import Any

from gevent import monkey
from locust import events

from harness.delivery.identity import messages_schema
from harness.errors import HarnessError
from harness.plan import PLAN_ENV, load_plan
from harness.targets import create_target
from locustfiles import churn, coordination, entry, flusher, listeners, options, population, queriers, writers
from locustfiles.context import RunContext

if not monkey.is_module_patched("socket"):
    raise HarnessError("Locust runs without gevent monkey patching (LOCUST_SKIP_MONKEY_PATCH is set): unset it")
PLAN = load_plan() if os.environ.get(PLAN_ENV) else None  # None: a plain Locust run, the plan comes later
# Without a plan every class is concrete; locustfiles.entry sets the counts once the scenario is known.
_PLAIN = PLAN is None
_COUNTS = population.user_counts(PLAN) if PLAN is not None else dict.fromkeys(entry.KINDS.values(), 0)


class ListenerUser(listeners.ListenerUser):
    fixed_count = _COUNTS["listeners"]
    abstract = fixed_count == 0 and not _PLAIN


class WriterUser(writers.WriterUser):
    fixed_count = _COUNTS["writers"]
    abstract = fixed_count == 0 and not _PLAIN


class QueryUser(queriers.QueryUser):
    fixed_count = _COUNTS["queriers"]
    abstract = fixed_count == 0 and not _PLAIN


class ChurnUser(churn.ChurnUser):
    fixed_count = _COUNTS["churn"]
    abstract = fixed_count == 0 and not _PLAIN


class FlushUser(flusher.FlushUser):
    fixed_count = _COUNTS["flush"]
    abstract = fixed_count == 0 and not _PLAIN


@events.init_command_line_parser.add_listener
def _options(parser: Any, **_: Any) -> None:
    options.add_arguments(parser)


@events.init.add_listener
def _install(environment: Any, **_: Any) -> None:
    if PLAN is None:
        classes = {cls.__name__: cls for cls in (ListenerUser, WriterUser, QueryUser, ChurnUser, FlushUser)}
        entry.PlainRun(environment, classes).install()
        return
    context = RunContext(PLAN, messages_schema(PLAN), create_target(PLAN.target))
    coordination.install(environment, context)
