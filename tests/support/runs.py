"""Runs of one scenario's quick profile against the embedded server, as ``lqharness run`` makes them."""

from __future__ import annotations

import json
from pathlib import Path

from harness.orchestration.runner import Runner, RunOptions
from harness.scenarios.catalogue import resolve
from reports.judge import RULES


def run_with_fault(tmp_path: Path, scenario: str, *faults: str, criteria: str | None = None) -> tuple[int, dict, Path]:
    """Run ``scenario``'s quick profile against a server with ``faults``; (exit code, verdict.json, run folder)."""
    out = tmp_path / "runs"
    criteria_file = None
    if criteria is not None:
        criteria_file = tmp_path / "criteria.toml"
        criteria_file.write_text(criteria)
    options = RunOptions(
        quick=True,
        out_dir=out,
        progress=lambda _msg: None,
        criteria=criteria_file,
        server_args=tuple(a for f in faults for a in ("--fault", f)),
    )
    code = Runner(options).run(resolve([scenario], RULES)[0])
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]  # history.sqlite lies beside the run folders
    return code, json.loads((run_dir / "verdict.json").read_text()), run_dir
