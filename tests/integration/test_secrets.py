"""No secret in a run folder, a log or a command line.

A run folder is what people upload as a CI artifact, so a scenario runs with known passwords and
every byte the run left behind (files, logs, the server's data, the command's own output) is searched
for them and for anything shaped like a token or a generated password.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from harness.orchestration.runner import Runner, RunOptions
from harness.plan import APP_PASSWORD_ENV, PLAN_ENV, TARGET_PASSWORD_ENV, load_plan
from harness.scenarios.catalogue import resolve
from reports.judge import RULES
from tests.support.refserver import start_refserver
from tests.support.verdicts import small_run_criteria

KNOWN = "Known-Secret-4711"
GENERATED = re.compile(rb"(Root|Lqh|lqh)-[0-9a-f]{16}")  # generated root, app user and Parse master keys
JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}")


def _leaks(folder: Path, *secrets: bytes) -> list[str]:
    """Every file under ``folder`` holding one of ``secrets``, a generated password or a JWT."""
    found = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        hits = [s.decode() for s in secrets if s in data]
        hits += [m.group().decode() for m in (GENERATED.search(data), JWT.search(data)) if m]
        if hits:
            found.append(f"{path.relative_to(folder)}: {hits}")
    return found


@pytest.mark.timeout(120)
def test_a_run_against_a_url_leaves_no_password_anywhere(tmp_path: Path) -> None:
    """--password-file to a target started with a known root password, master and worker: nothing leaks."""
    password_file = tmp_path / "password"
    password_file.write_text(KNOWN + "\n")
    password_file.chmod(0o600)
    out = tmp_path / "runs"
    with start_refserver(tmp_path / "server", root_password=KNOWN) as server:
        cmd = [sys.executable, "-m", "harness.cli", "run", "live.ordering", "--quick", "--workers", "1"]
        cmd += ["--target-url", server.url, "--password-file", str(password_file), "--out", str(out)]
        cmd += ["--criteria", str(small_run_criteria(tmp_path))]
        done = subprocess.run(cmd, capture_output=True, timeout=110, env={**os.environ, "KALAMDB_PASSWORD": ""})
        assert KNOWN not in " ".join(psutil.Process(server.pid).cmdline())
    assert done.returncode == 0, done.stdout.decode()[-2000:] + done.stderr.decode()[-2000:]
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    assert b'"password"' not in (run_dir / "plan.json").read_bytes()
    assert _leaks(out, KNOWN.encode()) == []  # the run folder and what lies beside it (the run history)
    assert _leaks(tmp_path / "server", KNOWN.encode()) == []  # the server's log and data
    for stream in (done.stdout, done.stderr):
        assert KNOWN.encode() not in stream and not GENERATED.search(stream) and not JWT.search(stream)


@pytest.mark.timeout(90)
def test_a_run_on_the_embedded_server_leaves_no_generated_password(tmp_path: Path) -> None:
    """The runner's own root password and the app user's password appear in no file of the run folder."""
    out = tmp_path / "runs"
    (scenario,) = resolve(["live.deletes"], RULES)
    options = RunOptions(quick=True, out_dir=out, progress=lambda _msg: None, criteria=small_run_criteria(tmp_path))
    code = Runner(options).run(scenario)
    assert code == 0
    (run_dir,) = [p for p in out.iterdir() if p.is_dir()]
    assert (run_dir / "server-data").is_dir()  # the server's SQLite is searched too
    assert _leaks(out) == []


def test_the_root_password_is_not_on_the_server_command_line(tmp_path: Path) -> None:
    with start_refserver(tmp_path, root_password=KNOWN) as server:
        assert all(KNOWN not in arg for arg in server.args)
        assert KNOWN not in " ".join(psutil.Process(server.pid).cmdline())


def test_serve_takes_the_root_password_from_a_file(tmp_path: Path) -> None:
    from tests.support.refserver import Http

    password_file = tmp_path / "root"
    password_file.write_text(KNOWN + "\n")
    password_file.chmod(0o600)
    ready = tmp_path / "ready.json"
    cmd = [sys.executable, "-m", "harness.cli", "serve", "--port", "0", "--ready-file", str(ready)]
    env = {k: v for k, v in os.environ.items() if k != "KALAMDB_ROOT_PASSWORD"}
    with subprocess.Popen([*cmd, "--root-password-file", str(password_file)], env=env) as proc:
        try:
            import json
            import time

            deadline = time.monotonic() + 20
            while not ready.exists() and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
            assert Http(json.loads(ready.read_text())["url"]).login("root", KNOWN)
        finally:
            proc.terminate()
            proc.wait(10)


def test_plan_file_has_no_password_and_loads_it_from_the_environment(tmp_path: Path) -> None:
    from tests.support.locust_flow import flow_plan

    plan = flow_plan("http://127.0.0.1:9", tmp_path, "t", (), (), ())
    path = tmp_path / "plan.json"
    plan.write(path)
    text = path.read_bytes()
    assert b'"password"' not in text and b'"app_password"' not in text
    assert all(secret.encode() not in text for secret in plan.secret_env().values())
    loaded = load_plan(environ={PLAN_ENV: str(path), **plan.secret_env()})
    assert (loaded.target.password, loaded.app_password) == (plan.target.password, plan.app_password)
    assert loaded == plan


@pytest.mark.parametrize("missing", [TARGET_PASSWORD_ENV, APP_PASSWORD_ENV])
def test_a_plan_without_its_passwords_is_a_one_line_error(tmp_path: Path, missing: str) -> None:
    from harness.errors import HarnessError
    from tests.support.locust_flow import flow_plan

    plan = flow_plan("http://127.0.0.1:9", tmp_path, "t", (), (), ())
    plan.write(tmp_path / "plan.json")
    env = {k: v for k, v in plan.secret_env().items() if k != missing}
    with pytest.raises(HarnessError, match=missing):
        load_plan(tmp_path / "plan.json", environ=env)
