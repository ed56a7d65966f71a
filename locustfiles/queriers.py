"""Query users (``extra.queriers``): bounded reads of the run's table during the load, as Locust ``QUERY`` requests.

Each QueryUser takes turns between two kinds of query at ``rate`` per second, from the
writers' start until the load is over: ``recent`` (the newest ``RECENT_LIMIT`` rows of one
conversation, highest id first: ``Admin.recent``) and ``count`` (the table's rows:
``Admin.count``). Every answer's shape is checked (filter, order, limit; a count the target
could read); a refused query or a wrong answer is a request failure. Queries read as the app
user, whose rows the writers fill (on per-user tables: its partition).
"""

from __future__ import annotations

import math
import random
import time

from harness.plan import Plan
from harness.targets.base import Admin, Eq, Row, Schema, TargetError
from locustfiles.context import RunContext
from locustfiles.link import UserLink
from locustfiles.users import OneShotUser

QUERY_KINDS = ("recent", "count")
RECENT_LIMIT = 20


class QueryFailed(Exception):
    """A query the target refused or answered wrongly (reported to Locust as a QUERY failure)."""


def ask(admin: Admin, schema: Schema, plan: Plan, kind: str, conversation: int) -> str | None:
    """Run one query of ``kind`` (``recent`` or ``count``) as the app user; what is wrong with the answer, or None.

    A count the target cannot read as one non-negative integer is a TargetError of the driver.
    """
    if kind == "recent":
        rows = admin.recent(schema, Eq("conversation_id", conversation), RECENT_LIMIT, as_user=plan.app_user)
        return recent_problem(conversation, rows)
    if kind == "count":
        admin.count(schema, as_user=plan.app_user)
        return None
    raise ValueError(f"unknown query kind {kind!r}")


def recent_problem(conversation: int, rows: list[Row]) -> str | None:
    """What is wrong with the answer to a ``recent`` query, or None when its shape is right."""
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


class QueryUser(OneShotUser):
    """Issues the plan's queries from the writers' start until the load is over, then idles."""

    def run_once(self, ctx: RunContext, link: UserLink) -> None:
        settings = ctx.plan.extra.queriers
        if settings is None or not link.wait_go(ctx.go_timeout):
            return
        try:
            admin = ctx.target.admin()
        except TargetError as exc:
            self._fire("connect", time.perf_counter(), QueryFailed(str(exc)))
            return
        try:
            self._loop(ctx.plan, ctx.schema, admin, settings.rate, ctx.max_seconds, link)
        finally:
            admin.close()

    def _loop(self, plan: Plan, schema: Schema, admin: Admin, rate: float, max_seconds: float, link: UserLink) -> None:
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
            self._one(plan, schema, admin, kind, rng.choice(conversations))

    def _one(self, plan: Plan, schema: Schema, admin: Admin, kind: str, conversation: int) -> None:
        started = time.perf_counter()
        try:
            problem = ask(admin, schema, plan, kind, conversation)
        except TargetError as exc:
            problem = str(exc)
        self._fire(kind, started, QueryFailed(problem) if problem else None)

    def _fire(self, name: str, started: float, exception: Exception | None) -> None:
        self.fire("QUERY", name, (time.perf_counter() - started) * 1000.0, exception)
