"""What every user and the coordinator of one Locust process share: the plan, the schema, the target.

Kept apart from the registry (``locustfiles.coordination``) so the coordinator and the users
can name it without importing the module that wires them together.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.plan import Plan
from harness.targets.base import Schema, Target

END_MARGIN_SECONDS = 5.0  # slack kept before the run's time bound, and added to the users' wait for the go


@dataclass(frozen=True, slots=True)
class RunContext:
    """The plan, the table schema and the target driver of this process."""

    plan: Plan
    schema: Schema
    target: Target

    @property
    def max_seconds(self) -> float:
        """Hard bound of the whole run (the runner's Locust ``--run-time``)."""
        return self.plan.extra.max_seconds

    @property
    def go_timeout(self) -> float:
        """How long a user waits for the writers' gate: the listeners' ready timeout, the preload, a margin."""
        return self.plan.ready_timeout + self.plan.extra.preload_seconds + END_MARGIN_SECONDS
