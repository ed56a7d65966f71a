"""The network nemesis: a loopback fault proxy between the harness and any target, and its schedule.

``schedule`` reads a scenario's faults as data; ``proxy`` forwards each listener's (and optionally
the writers') connections through a port of its own and injects the faults. The runner's hook
(``harness.orchestration.nemesis``) starts both and writes each fault window to ``nemesis.jsonl``.
"""

from harness.nemesis.proxy import FaultProxy
from harness.nemesis.schedule import DISRUPTIVE, WRITERS_ROUTE, Fault, FaultSpec, Schedule, parse_schedule

__all__ = ["DISRUPTIVE", "WRITERS_ROUTE", "Fault", "FaultProxy", "FaultSpec", "Schedule", "parse_schedule"]
