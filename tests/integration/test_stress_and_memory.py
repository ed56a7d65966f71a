"""The ten memory and stress scenarios, through the same runner as `lqharness run stress`.

The quick profiles run in `make test`: each must pass every criterion it lists against the
reference server, except the inconclusives in ``QUICK_ALLOWED``, each for the one reason given
there (a quick profile is smaller than the specification's sizes). Any other inconclusive, an
allowed one for another reason, a failure or a wrong exit code fails the test. The full-length
profiles (the specification's numbers) are marked `nightly`, run by `make nightly-tests`, and must pass
every criterion with no allowance.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.orchestration.runner import Runner, RunOptions
from harness.scenarios.catalogue import Scenario, resolve
from reports.judge import RULES
from tests.support.verdicts import FEW_NOTIFICATIONS, FEW_SAMPLES, NETWORK_SHARE, Allowances, assert_passes

STRESS = resolve(["stress"], RULES)
# criteria that measure the machine's speed: a scenario judging one runs alone (the `serial` marker),
# the others (memory, connections, jobs, liveness) beside other tests
TIMED = {"SC-054", "SC-058", "CPU-1000", "DEGRADATION"}


def _cases() -> list:
    """Each stress scenario as a test parameter, marked `serial` when it judges a timed criterion."""
    return [
        pytest.param(s, id=s.name, marks=[pytest.mark.serial] if TIMED & set(s.criteria) else [])
        for s in STRESS
    ]  # fmt: skip


SHORT_LOAD = "s of load (the criterion needs 300 s)"
QUICK_ALLOWED: Allowances = {
    ("stress.memory-write", "SC-056"): SHORT_LOAD,  # 300 inserts at 50/s: 6 s of load
    ("stress.writers-listeners", "SC-056"): SHORT_LOAD,  # 15 s of mixed writes
    ("stress.writers-listeners", "SC-057"): FEW_NOTIFICATIONS,  # about 1,500 writes x 20 listeners
    ("stress.flush", "SC-056"): SHORT_LOAD,  # 15 s of inserts
    ("stress.actor-health", "SC-057"): FEW_NOTIFICATIONS,  # about 1,500 writes x 10 listeners
    # one writer stream at 1,000 inserts/s reaches about 93% of it on this 2-core machine (issue 12, open);
    # the criterion says so instead of passing on a lower rate
    ("stress.cpu", "CPU-1000"): "the load reached only",
    ("stress.impairments", "SC-056"): SHORT_LOAD,  # 20 s of load under latency, jitter and a bandwidth cap
    ("stress.impairments", "SC-057"): FEW_NOTIFICATIONS,  # about 1,600 notifications
    ("stress.interactive", "SC-054"): FEW_SAMPLES,  # 5 s of 20 changes/s
    # 100 +- 3 ms each way: it passes when the p99 less the 97 ms the network surely added is within 50 ms;
    # on a loaded machine the proxy's own lateness (the network's) can leave the target's share undecided
    ("stress.impairments", "SC-054"): NETWORK_SHARE,
    # 3 steps of 4 s at 50, 100, 200 writes/s hold the SLO: the ramp reaches its last step and finds no
    # capacity ("... with the SLO holding, before the server reached capacity"); on a loaded machine the
    # generator may give out first ("the ramp stopped before the server reached capacity: the generator ...")
    ("stress.degradation", "DEGRADATION"): "before the server reached capacity",
}


def run_scenario(tmp_path: Path, scenario: Scenario, quick: bool) -> tuple[int, dict, dict]:
    out = tmp_path / "runs"
    code = Runner(RunOptions(quick=quick, out_dir=out, progress=lambda _msg: None)).run(scenario)
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]  # history.sqlite lies beside the run folders
    verdict = json.loads((run_dir / "verdict.json").read_text())
    run = json.loads((run_dir / "run.json").read_text())
    return code, verdict, run


@pytest.mark.timeout(240)
@pytest.mark.parametrize("scenario", _cases())
def test_quick_stress_profile_passes_but_for_its_listed_inconclusives(tmp_path: Path, scenario: Scenario) -> None:
    code, verdict, run = run_scenario(tmp_path, scenario, quick=True)
    assert run["status"] == "completed", run["error"]
    assert_passes(scenario.name, scenario.criteria, code, verdict, QUICK_ALLOWED)


@pytest.mark.nightly
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("scenario", _cases())
def test_full_stress_profile_passes_every_criterion(tmp_path: Path, scenario: Scenario) -> None:
    code, verdict, run = run_scenario(tmp_path, scenario, quick=False)
    assert run["status"] == "completed", run["error"]
    assert_passes(scenario.name, scenario.criteria, code, verdict)
