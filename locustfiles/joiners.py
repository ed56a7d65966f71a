"""Users that join a plain Locust run beyond its plan: more listeners and writers, while the run goes on.

In the web UI (or with ``-u`` above what a scenario needs) the user count is the load. The plan's
listeners and writer groups come first; every Locust user beyond them claims a *joiner*: listener
index ``len(plan.listeners) + k`` is a copy of plan listener ``k mod n`` under the id ``J<k+1>``
(same conversation and user, no planned reconnect, the plan's own target URL), and writer group
index ``len(plan.writer_groups) + k`` copies group ``k mod m`` with fresh writer ids above every
planned one (same conversations, users and programs). Both sides derive the same specs from the
index alone, so a joiner needs no message beyond its claim. A joining listener's owed set runs from
its own ready time (the checker's rule for every listener), and a joining writer runs its copied
program from when it joins, so the load lasts until the last writer's program ends (or the run's time
bound). The number of joiners is bounded, and none is handed out once the load is over.
"""

from __future__ import annotations

from dataclasses import replace

from harness.plan import ListenerSpec, Plan, WriterSpec

MAX_JOINERS = 64  # joiners of each kind (listeners, writer groups) one run hands out at most


def _group_size(plan: Plan) -> int:
    return max((len(g) for g in plan.writer_groups), default=1)


def listener_spec(plan: Plan, index: int) -> ListenerSpec:
    """The listener of claim ``index``: the plan's own, or the joiner copied from a plan listener."""
    n = len(plan.listeners)
    if index < n:
        return plan.listeners[index]
    k = index - n
    return replace(plan.listeners[k % n], listener_id=f"J{k + 1}", reconnect=None, url=None)


def writer_specs(plan: Plan, index: int) -> list[WriterSpec]:
    """The writer streams of claim ``index``: a plan writer group, or a joining copy of one with new writer ids."""
    by_id = {w.writer_id: w for w in plan.writers}
    groups = plan.writer_groups
    if index < len(groups):
        return [by_id[wid] for wid in groups[index]]
    k = index - len(groups)
    base = max(by_id) + 1 + k * _group_size(plan)
    return [replace(by_id[wid], writer_id=base + j) for j, wid in enumerate(groups[k % len(groups)])]


def joiner_writers(plan: Plan) -> list[WriterSpec]:
    """Every writer stream a joiner may run (so a listener knows whose rows it may see, before any joins)."""
    if not plan.writer_groups:
        return []
    return [w for k in range(MAX_JOINERS) for w in writer_specs(plan, len(plan.writer_groups) + k)]


def claimable(plan: Plan, kind: str) -> int:
    """How many claims of ``kind`` a run hands out: the plan's, plus the joiners for listeners and writers."""
    if kind == "listener":
        return len(plan.listeners) + (MAX_JOINERS if plan.listeners else 0)
    if kind == "writer":
        return len(plan.writer_groups) + (MAX_JOINERS if plan.writer_groups else 0)
    return 0
