"""Query users (``extra.queriers``): SELECTs on the run's table while the writers run, as Locust ``QUERY`` requests.

Each QueryUser takes turns between two kinds of query at ``rate`` per second, from the
writers' start until the load is over: ``recent`` (the newest rows of one conversation,
``ORDER BY id DESC LIMIT 20``) and ``count`` (``COUNT(*)`` of the table). Every answer's
shape is checked (filter, order, limit; one count); a refused query or a wrong answer is a
request failure. Queries go through ``Admin.execute``; on USER tables they run as the app
user (``EXECUTE AS USER``), whose partition the writers fill.
"""

from __future__ import annotations

import math
import random
import time
from typing import Any

import gevent
from locust import User, task

from harness.plan import Plan
from harness.targets.base import Admin, TargetError
from locustfiles import coordination, population

QUERY_KINDS = ("recent", "count")
RECENT_LIMIT = 20
IDLE_SECONDS = 0.5


class QueryFailed(Exception):
    """A query the target refused or answered wrongly (reported to Locust as a QUERY failure)."""


def query_sql(plan: Plan, kind: str, conversation: int) -> str:
    """The SQL of one query of ``kind`` (``recent`` or ``count``), run as the app user on USER tables."""
    table = f"{plan.namespace}.{plan.table}"
    if kind == "recent":
        sql = f"SELECT * FROM {table} WHERE conversation_id = {int(conversation)} ORDER BY id DESC LIMIT {RECENT_LIMIT}"
    elif kind == "count":
        sql = f"SELECT COUNT(*) AS n FROM {table}"
    else:
        raise ValueError(f"unknown query kind {kind!r}")
    if plan.table_type.upper() == "USER":
        return f"EXECUTE AS USER '{plan.app_user}' ({sql})"
    return sql


def answer_problem(kind: str, conversation: int, results: list[dict[str, Any]]) -> str | None:
    """What is wrong with a query's answer, or None when its shape is right."""
    if len(results) != 1:
        return f"{len(results)} statement results, expected 1"
    rows = results[0].get("rows") or []
    if kind == "count":
        values = list(rows[0].values()) if len(rows) == 1 else []
        if len(values) != 1 or not isinstance(values[0], int) or isinstance(values[0], bool) or values[0] < 0:
            return f"COUNT(*) answered {rows!r}"
        return None
    if len(rows) > RECENT_LIMIT:
        return f"{len(rows)} rows for LIMIT {RECENT_LIMIT}"
    try:
        if any(int(r["conversation_id"]) != conversation for r in rows):
            return f"a row outside conversation_id = {conversation}"
        ids = [int(r["id"]) for r in rows]
    except (KeyError, TypeError, ValueError) as exc:
        return f"rows without a usable id or conversation_id ({exc!r})"
    if any(a <= b for a, b in zip(ids, ids[1:], strict=False)):
        return "rows not in descending id order"
    return None


class QueryUser(User):
    """Issues the plan's queries from the writers' start until the load is over, then idles."""

    abstract = True  # made concrete by locustfiles/live.py with the plan's querier count

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        self._finished = False

    @task
    def query(self) -> None:
        if self._finished:
            gevent.sleep(IDLE_SECONDS)
            return
        self._finished = True
        ctx, link = coordination.context(), coordination.link()
        plan = ctx.plan
        settings = population.queriers(plan)
        if (
            settings is None
            or not link.go.wait(timeout=population.go_timeout(plan, coordination.END_MARGIN_SECONDS))
            or not link.go_ok
        ):
            return
        try:
            admin = ctx.target.admin()
        except TargetError as exc:
            self._fire("connect", time.perf_counter(), QueryFailed(str(exc)))
            return
        try:
            self._loop(plan, admin, settings.rate, ctx.max_seconds, link)
        finally:
            admin.close()

    def _loop(self, plan: Plan, admin: Admin, rate: float, max_seconds: float, link: coordination.UserLink) -> None:
        conversations = sorted({w.conversation_id for w in plan.writers}) or [1]
        rng = random.Random(id(self))
        interval = 1.0 / rate
        deadline = time.monotonic() + max_seconds
        next_at = time.monotonic()
        issued = 0
        limit = math.ceil(rate * max_seconds) + 1
        while issued < limit and not link.winding_down() and time.monotonic() < deadline:
            wait = next_at - time.monotonic()
            if wait > 0:
                link.load_done.wait(timeout=wait)
                continue
            next_at = max(next_at + interval, time.monotonic() - interval)  # late: no burst to catch up
            kind = QUERY_KINDS[issued % len(QUERY_KINDS)]
            issued += 1
            self._one(plan, admin, kind, rng.choice(conversations))

    def _one(self, plan: Plan, admin: Admin, kind: str, conversation: int) -> None:
        started = time.perf_counter()
        try:
            problem = answer_problem(kind, conversation, admin.execute(query_sql(plan, kind, conversation)))
        except TargetError as exc:
            problem = str(exc)
        self._fire(kind, started, QueryFailed(problem) if problem else None)

    def _fire(self, name: str, started: float, exception: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type="QUERY",
            name=name,
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=0,
            exception=exception,
            context={},
        )
