"""Verdict values, one criterion's finding, and how findings combine into a scenario verdict.

The values and the exit code each verdict ends a command with are the run-folder contract's
(``harness.runfolder.Verdict`` and ``verdict_exit_code``), since ``verdict.json`` carries them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from harness.runfolder import Verdict

PASS = Verdict.PASS
FAIL = Verdict.FAIL
INCONCLUSIVE = Verdict.INCONCLUSIVE
NA = Verdict.NA


@dataclass(frozen=True, slots=True)
class Finding:
    """What one rule concluded: the verdict, the measured value, the threshold and the evidence."""

    verdict: str
    value: Any = None
    threshold: Any = None
    evidence: str = ""
    # A latency rule's least share of ``value`` that is surely the target's (what the declared network
    # surely did not add); None: all of ``value``. The generator-lag rule subtracts its lag from it.
    floor: float | None = None


@dataclass(frozen=True, slots=True)
class CriterionResult:
    """A finding under its criterion id and title, as written to verdict.json."""

    id: str
    title: str
    verdict: str
    value: Any
    threshold: Any
    evidence: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "verdict": self.verdict,
            "value": self.value,
            "threshold": self.threshold,
            "evidence": self.evidence,
        }


class Unsupported(Exception):
    """Raised by a rule or measure when the run folder cannot support a verdict; the message is the reason."""


def inconclusive(reason: str, value: Any = None, threshold: Any = None) -> Finding:
    return Finding(INCONCLUSIVE, value, threshold, reason)


def not_applicable(reason: str, threshold: Any = None) -> Finding:
    return Finding(NA, None, threshold, reason)


def worst(verdicts: Iterable[str]) -> str:
    """fail if any failed, else inconclusive if any was, else pass (n/a ignored; nothing at all = inconclusive)."""
    seen = [v for v in verdicts if v != NA]
    if FAIL in seen:
        return FAIL
    if INCONCLUSIVE in seen or not seen:
        return INCONCLUSIVE
    return PASS


def brief(value: Any) -> str:
    """A value or threshold as short text for tables: dicts as ``k=v`` pairs, floats to 4 digits."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return " ".join(f"{k}={brief(v)}" for k, v in value.items())
    if isinstance(value, list | tuple):
        return ", ".join(brief(v) for v in value)
    return str(value)
