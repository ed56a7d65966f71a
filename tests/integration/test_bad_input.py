"""Bad input to ``lqharness``: each case is one line on stderr (or one named error in the run), exit 2, fast."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.orchestration.server import LocalServer

pytestmark = pytest.mark.timeout(120)


def lqh(*args: str, cwd: Path) -> tuple[int, str, str, float]:
    """Exit code, stdout, stderr and wall seconds of one ``lqharness`` command."""
    env = {k: v for k, v in os.environ.items() if k not in ("KALAMDB_PASSWORD", "KALAMDB_ROOT_PASSWORD")}
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "harness.cli", *args], capture_output=True, text=True, timeout=100, cwd=cwd, env=env
    )
    return done.returncode, done.stdout, done.stderr, time.monotonic() - started


CASES = {
    "unknown scenario": (["run", "live.nope", "--quick"], "unknown scenario or group 'live.nope'"),
    "criteria not TOML": (["run", "live.inserts", "--quick", "--criteria", "bad.toml"], "is not valid TOML"),
    "criteria wrong type": (["run", "live.inserts", "--quick", "--criteria", "types.toml"], "must be a int"),
    "criteria unknown id": (["run", "live.inserts", "--quick", "--criteria", "unknown.toml"], "unknown criteria"),
    "empty password file": (
        ["run", "live.inserts", "--target-url", "http://127.0.0.1:1", "--password-file", "empty"],
        "the file is empty",
    ),  # fmt: skip
    "not a run folder": (["judge", "."], "is not a run folder"),
    "no such pid": (["monitor", "--pid", "999999999", "--out", "m.jsonl"], "no process with pid"),
    "bad fault": (["serve", "--fault", "explode"], "unknown fault 'explode'"),
    "no password for url": (["run", "live.inserts", "--target-url", "http://127.0.0.1:1"], "needs a password"),
}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_exit_2_before_any_run(tmp_path: Path, case: str) -> None:
    (tmp_path / "bad.toml").write_text("[SC-051\n")
    (tmp_path / "types.toml").write_text('[SC-051]\nmax_lost = "many"\n')
    (tmp_path / "unknown.toml").write_text("[SC-999]\nx = 1\n")
    (tmp_path / "empty").write_text("\n")
    args, message = CASES[case]
    code, out, err, seconds = lqh(*args, cwd=tmp_path)
    assert code == 2, out + err
    assert message in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in out + err
    assert not (tmp_path / "runs").exists()  # refused before a run folder was made
    assert seconds < 30


@pytest.mark.parametrize(
    ("url", "password", "message"),
    [
        ("http://127.0.0.1:1", "Any-Pass-123", "cannot reach the server"),
        ("not-a-url", "Any-Pass-123", "target setup failed"),
        (None, "Wrong-Pass-123", "target setup failed"),  # the reference server, the wrong password
    ],
)
def test_unusable_targets_end_inconclusive_naming_the_error(
    tmp_path: Path, refserver: LocalServer, url: str | None, password: str, message: str
) -> None:
    (tmp_path / "pw").write_text(password)
    (tmp_path / "pw").chmod(0o600)
    code, out, err, seconds = lqh(
        "run", "live.inserts", "--quick", "--target-url", url or refserver.url, "--password-file", "pw", cwd=tmp_path
    )
    assert code == 2 and "Traceback" not in out + err
    assert seconds < 60
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    run = json.loads((run_dir / "run.json").read_text())
    assert run["status"] == "harness_error" and message in run["error"] and "\n" not in run["error"]
    assert json.loads((run_dir / "verdict.json").read_text())["verdict"] == "inconclusive"
    assert message in out
