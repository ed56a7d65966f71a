"""Whether the load generator itself was saturated during the load phase (generator.jsonl).

A saturated generator under-drives the server and inflates the latencies it measures, so
criteria it can distort become "inconclusive" instead of "fail".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reports.runfolder import GENERATOR, RunFolder

SATURATED = "saturated"
HEALTHY = "healthy"
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Saturation:
    """``state`` is saturated / healthy / unknown; ``evidence`` says which process and how long."""

    state: str
    evidence: str
    worst_fraction: float | None = None

    @property
    def saturated(self) -> bool:
        return self.state == SATURATED

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "evidence": self.evidence, "worst_fraction": self.worst_fraction}


def assess(folder: RunFolder, cfg: dict[str, Any]) -> Saturation:
    """Per generator process, the fraction of its load-phase samples at or above ``saturated_core_pct``."""
    frame = folder.generator
    if frame.empty:
        return Saturation(
            UNKNOWN, f"generator not monitored ({folder.why_missing(GENERATOR) or 'no samples'})"
        )
    window = folder.load_window()
    if window is None:
        return Saturation(UNKNOWN, "no load phase in run.json to check the generator against")
    inside = frame[(frame["t"] >= window[0]) & (frame["t"] <= window[1])]
    if "cpu_core_pct" not in inside:
        return Saturation(UNKNOWN, "generator samples carry no cpu_core_pct")
    inside = inside[inside["cpu_core_pct"].notna()]
    if inside.empty:
        return Saturation(UNKNOWN, "no generator CPU sample during the load phase")
    limit = float(cfg["saturated_core_pct"])
    allowed = float(cfg["max_saturated_fraction"])
    per_process = [
        (float((group["cpu_core_pct"] >= limit).mean()), key, group)
        for key, group in inside.groupby("pid" if "pid" in inside else "role")
    ]
    fraction, pid, group = max(per_process, key=lambda item: item[0])
    role, peak, n = str(group["role"].iloc[0]), float(group["cpu_core_pct"].max()), len(group)
    text = (
        f"generator {role} pid {int(pid) if isinstance(pid, int | float) else pid} at >= {limit:.0f}% of a core "
        f"in {fraction:.0%} of its {n} load-phase samples (peak {peak:.0f}%, allowed {allowed:.0%})"
    )
    return Saturation(SATURATED if fraction > allowed else HEALTHY, text, fraction)
