"""The workers' clock offsets (run.json ``clocks``) and whether a latency threshold can tolerate them.

A delivery latency is a receive time on a listener's worker minus a send time stamped on a
writer's worker, so each worker's clock offset to the master is added to the latencies it takes
part in. The master estimates every offset (``locustfiles.clock``) to within half the ping's round
trip; a worker's clock is off by at most ``|offset_s| + rtt_s / 2``. A latency criterion is judged
only when that bound stays within ``max_offset_fraction`` of its threshold for every worker; the
rule is in docs/distributed.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.errors import HarnessError
from reports.criteria import Criteria
from reports.runfolder import RunFolder


@dataclass(frozen=True, slots=True)
class WorkerClock:
    """One worker's estimated offset to the master (master minus worker) and the ping that gave it."""

    node: str
    offset_s: float
    rtt_s: float
    samples: int

    @property
    def bound_ms(self) -> float:
        """How far off the worker's clock may be: the offset plus the estimate's uncertainty, in ms (to the µs)."""
        return round((abs(self.offset_s) + self.rtt_s / 2) * 1000.0, 3)

    def label(self) -> str:
        return (
            f"worker {self.node} offset {self.offset_s * 1000.0:+.3f} ms ± {self.rtt_s * 500.0:.3f} ms "
            f"(rtt/2, best of {self.samples} pings)"
        )


@dataclass(frozen=True, slots=True)
class Clocks:
    """What run.json says of the workers' clocks: each estimate, and the workers that gave none.

    A run.json without ``clocks`` predates the estimates: its workers' clocks are not checked.
    """

    workers: int  # run.json ``workers``: 0 for one local Locust process (no clock but the master's)
    estimates: tuple[WorkerClock, ...]
    malformed: tuple[str, ...]  # node ids whose record is not {offset_s, rtt_s, samples}
    recorded: bool = True  # run.json has ``clocks`` (an empty one for a single process)

    @property
    def unknown(self) -> int:
        """Workers the run had whose offset is not known (missing or malformed estimates)."""
        if not self.recorded:
            return 0
        return max(self.workers - len(self.estimates), len(self.malformed))


CLOCK_THRESHOLDS = {"DEGRADATION": ("report", "slo_p95_ms")}
"""Where a criterion of ``[clocks] affects`` has its latency threshold, when not its own ``max_latency_ms``."""


def clock_threshold_ms(cid: str, criteria: Criteria) -> float:
    """The latency threshold (ms) against which criterion ``cid`` tolerates the workers' clock offsets."""
    table, key = CLOCK_THRESHOLDS.get(cid, (cid, "max_latency_ms"))
    if table not in criteria.tables or key not in criteria[table]:
        raise HarnessError(f"criteria: [clocks] affects {cid}, which has no latency threshold ({table}.{key})")
    return float(criteria[table][key])


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def worker_clocks(folder: RunFolder) -> Clocks:
    """The clocks of run.json (a single-process run has no workers, so nothing to estimate)."""
    run = folder.run or {}
    workers = run.get("workers")
    raw = run.get("clocks")
    estimates: list[WorkerClock] = []
    malformed: list[str] = []
    for node, record in sorted(raw.items()) if isinstance(raw, dict) else ():
        offset = _number(record.get("offset_s")) if isinstance(record, dict) else None
        rtt = _number(record.get("rtt_s")) if isinstance(record, dict) else None
        if offset is None or rtt is None or rtt < 0:
            malformed.append(str(node))
            continue
        samples = record.get("samples")
        estimates.append(WorkerClock(str(node), offset, rtt, samples if isinstance(samples, int) else 0))
    count = workers if isinstance(workers, int) and not isinstance(workers, bool) else len(estimates)
    return Clocks(max(count, 0), tuple(estimates), tuple(malformed), recorded=isinstance(raw, dict))


def tolerance_ms(threshold_ms: float, fraction: float) -> float:
    """The largest clock bound a latency threshold tolerates (to the µs, as the bounds are)."""
    return round(fraction * threshold_ms, 3)


def clock_doubt(clocks: Clocks, threshold_ms: float, fraction: float) -> str | None:
    """Why latencies judged against ``threshold_ms`` cannot be trusted for the workers' clocks, or None.

    A worker whose bound exceeds the tolerance is named with its offset, uncertainty and the
    tolerance; a worker of the run with no usable estimate makes the latency untrusted too.
    """
    tolerance = tolerance_ms(threshold_ms, fraction)
    over = [c for c in clocks.estimates if c.bound_ms > tolerance]
    reasons = [f"{c.label()}: up to {c.bound_ms:.3f} ms off" for c in over]
    if clocks.unknown:
        named = f" ({', '.join(clocks.malformed)} unreadable)" if clocks.malformed else ""
        reasons.append(
            f"{clocks.unknown} of the run's {max(clocks.workers, len(clocks.malformed))} worker(s) have no clock "
            f"offset in run.json{named}"
        )
    if not reasons:
        return None
    return (
        f"{'; '.join(reasons)}; the tolerance is {tolerance:g} ms ({fraction:.0%} of the {threshold_ms:g} ms "
        "threshold), so the measured latency may be the clocks' and not the target's"
    )


def clocks_summary(clocks: Clocks) -> dict[str, Any]:
    """The clocks as verdict.json shows them beside a scenario: each worker's figures, and how many are unknown."""
    return {
        "workers": {
            c.node: {
                "offset_ms": round(c.offset_s * 1000.0, 3),
                "rtt_ms": round(c.rtt_s * 1000.0, 3),
                "samples": c.samples,
                "bound_ms": c.bound_ms,
            }
            for c in clocks.estimates
        },  # fmt: skip
        "unknown": clocks.unknown,
    }
