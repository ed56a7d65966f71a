"""The coordinator's phase log: one ``{name, start, end, ...}`` line per phase in ``<run_dir>/phases.jsonl``.

Each line is written and flushed when its phase ends, so a run that dies keeps the phases
already over; the runner folds the file into ``run.json`` after Locust exits.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from harness.runfolder import PHASES, append_jsonl

log = logging.getLogger("lqharness")


class PhaseLog:
    """Appends phases to ``run_dir/phases.jsonl`` (nothing is written without a run folder)."""

    def __init__(self, run_dir: str | None) -> None:
        self.path = Path(run_dir) / PHASES if run_dir else None
        self.written: list[dict[str, Any]] = []

    def write(self, name: str, start: float, end: float, **extra: Any) -> None:
        """Record phase ``name`` from ``start`` to ``end`` (unix seconds) with any extra fields."""
        phase = {"name": name, "start": start, "end": max(start, end), **extra}
        self.written.append(phase)
        if self.path is None:
            return
        try:
            append_jsonl(self.path, phase)
        except OSError as exc:
            log.warning("cannot append phase %s to %s: %s", name, self.path, exc)
