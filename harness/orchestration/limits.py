"""Subscription limits a target enforces, checked against a scenario's plan before the run starts.

A real KalamDB refuses subscriptions past ``rate_limit.max_subscriptions_per_user`` (over all of a
user's connections) and past 100 per connection; the reference server emulates both behind
``--max-subscriptions-per-user`` and ``--max-subscriptions-per-connection``. A scenario that needs
more is stopped with one line up front, instead of running into a mass of refused listeners.
Every listener of the harness holds one subscription on its own connection, so only the
per-user limit can bind (``serve`` refuses a per-connection cap below 1).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence

from harness.errors import HarnessError
from harness.plan import Plan

__all__ = ["PER_CONNECTION", "PER_USER", "check_limits", "serve_limits"]

PER_USER = "max_subscriptions_per_user"
PER_CONNECTION = "max_subscriptions_per_connection"
_FLAGS = {"--max-subscriptions-per-user": PER_USER, "--max-subscriptions-per-connection": PER_CONNECTION}


def serve_limits(args: Sequence[str]) -> dict[str, int]:
    """The limits named by ``lqharness serve`` flags in ``args`` (``--flag N`` or ``--flag=N``); 0 = none."""
    found: dict[str, int] = {}
    items = list(args)
    for i, arg in enumerate(items):
        flag, eq, value = arg.partition("=")
        if flag in _FLAGS:
            text = value if eq else (items[i + 1] if i + 1 < len(items) else "")
            try:
                found[_FLAGS[flag]] = int(text)
            except ValueError:
                raise HarnessError(f"{flag} needs an integer, not {text!r}") from None
    return found


def check_limits(plan: Plan, limits: Mapping[str, int]) -> None:
    """Raise a one-line HarnessError when the plan's listeners need more subscriptions than ``limits`` allow."""
    per_user = limits.get(PER_USER, 0)
    if per_user > 0:
        needed = Counter(spec.user or plan.app_user for spec in plan.listeners)
        over = sorted((user, n) for user, n in needed.items() if n > per_user)
        if over:
            user, n = over[0]
            raise HarnessError(
                f"scenario {plan.scenario} needs {n} subscriptions as user {user!r}, but the target allows "
                f"{per_user} per user ({PER_USER}); raise the limit or use fewer listeners"
            )
