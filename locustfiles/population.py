"""How many Locust users a plan needs, per kind and in all (Locust's ``-u``).

Kept free of Locust and gevent imports, so the runner (an unpatched process) can size
Locust's ``-u`` with :func:`users_needed` from the same numbers the locustfile uses. The
settings themselves were validated when the catalogue loaded (``harness.scenarios.catalogue``).
"""

from __future__ import annotations

from harness.plan import Plan


def user_counts(plan: Plan) -> dict[str, int]:
    """Locust users per kind: one per listener and writer group, the queriers, one churner, one flusher."""
    extra = plan.extra
    return {
        "listeners": len(plan.listeners),
        "writers": len(plan.writer_groups),
        "queriers": extra.queriers.count if extra.queriers else 0,
        "churn": int(extra.churn is not None),
        "flush": int(extra.flush is not None),
    }


def users_needed(plan: Plan) -> int:
    """Locust ``-u`` for this plan: the sum of :func:`user_counts`."""
    return sum(user_counts(plan).values())
