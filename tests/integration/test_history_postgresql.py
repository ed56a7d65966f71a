"""The shared history on a real PostgreSQL: Debian's server, started by the test in a temporary folder on
a free loopback port. The judge records into it with --history URL, compares against it, and judging
again leaves it unchanged; a real quick run records into it too.

PostgreSQL is installed by scripts/install-postgresql.sh when missing; where it cannot be, the test skips
with the reason, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from harness.cli import main as cli_main
from reports.history import VERSION_TABLE, Base, HistoryStore
from tests.support.history import regression, synthetic_run

INSTALLER = Path(__file__).resolve().parents[2] / "scripts" / "install-postgresql.sh"
ROOT = Path(__file__).resolve().parents[2]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL is required under CI: {reason}")
    pytest.skip(reason)


def _initdbs() -> list[str]:
    """Debian's initdb binaries, oldest PostgreSQL version first."""
    return sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[4]))


def _bin_dir() -> Path:
    """The newest Debian PostgreSQL bin folder, installing the server with the project script if needed."""
    found = _initdbs()
    if not found:
        try:
            result = subprocess.run(["bash", str(INSTALLER)], capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            _unavailable("postgresql is not installed and scripts/install-postgresql.sh did not finish in 600 s")
        found = _initdbs()
        if result.returncode != 0 or not found:
            reason = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            _unavailable(f"postgresql cannot be installed here: {reason[0]}")
    return Path(found[-1]).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def postgresql_url() -> Iterator[str]:
    """A PostgreSQL cluster of its own (trust auth on loopback only), as a URL; stopped and removed after."""
    bin_dir = _bin_dir()
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="lqh-pg-"))
    if os.geteuid() == 0:  # postgres refuses to run as root: run it as Debian's postgres user
        if shutil.which("runuser") is None:
            _unavailable("running as root without runuser, so PostgreSQL cannot be started unprivileged")
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
    data, sockets, log = base / "data", base / "sockets", base / "server.log"
    port = _free_port()
    subprocess.run([*as_user, "mkdir", str(sockets)], check=True)
    init = subprocess.run(
        [*as_user, str(bin_dir / "initdb"), "-D", str(data), "-U", "lqh", "--auth=trust", "-E", "UTF8"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert init.returncode == 0, init.stderr
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    start = subprocess.run(
        [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"],
        capture_output=True, text=True, timeout=90,
    )  # fmt: skip
    assert start.returncode == 0, start.stderr + start.stdout
    try:
        yield f"postgresql://lqh@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.timeout(300)
def test_judge_records_into_postgresql_and_judging_again_changes_nothing(postgresql_url: str, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    folders = [synthetic_run(runs, n) for n in range(3)]
    for folder in folders:
        assert cli_main(["judge", str(folder), "--quiet", "--no-report", "--history", postgresql_url]) == 0
    slow = synthetic_run(runs, 3, p99=30.0)
    assert cli_main(["judge", str(slow), "--quiet", "--history", postgresql_url]) == 1
    found = regression(slow)
    assert found["verdict"] == "fail" and "delivery_p99_ms" in found["evidence"]
    assert not (runs / "history.sqlite").exists()  # everything went to PostgreSQL

    with HistoryStore(postgresql_url) as store:
        before = [r.to_dict() for r in store.runs("stress.synthetic")]
        with store.engine.connect() as connection:
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        assert [d for d in diff if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)] == []
    assert [r["verdict"] for r in before] == ["pass", "pass", "pass", "fail"]
    assert cli_main(["judge", str(slow), str(folders[0]), "--quiet", "--history", postgresql_url]) == 1
    with HistoryStore(postgresql_url) as store:
        assert [r.to_dict() for r in store.runs("stress.synthetic")] == before

    assert cli_main(["baseline", "set", str(folders[1]), "--history", postgresql_url]) == 0
    assert cli_main(["compare", str(slow), "--history", postgresql_url, "--json"]) == 1


@pytest.mark.timeout(300)
def test_a_quick_run_records_into_postgresql(postgresql_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-m", "harness.cli", "run", "live.high-frequency", "--quick", "--out", str(tmp_path),
         "--history", postgresql_url],
        capture_output=True, text=True, timeout=240, env=env, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode in (0, 1, 2), result.stderr
    assert "REGRESSION" in result.stdout, result.stdout + result.stderr
    (folder,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    run_id = orjson.loads((folder / "run.json").read_bytes())["run_id"]
    with HistoryStore(postgresql_url) as store:
        recorded = store.get(run_id)
    assert recorded is not None and recorded.facts.profile == "quick"
    assert recorded.facts.target_version.endswith("-refserver") and "delivery_p99_ms" in recorded.metrics
