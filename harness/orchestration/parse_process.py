"""Install and run the Parse target: Parse Server + LiveQuery (Node) on a private PostgreSQL cluster.

Everything the project needs is in its own files: the pinned ``package.json`` / ``package-lock.json``
and the launcher ``server.js`` beside the Parse driver (``harness/targets/parse/node/``). The Node
modules are installed once from the npm registry into a cache outside the clone, keyed by a hash
of those files, and reused. Each start initialises a PostgreSQL cluster in a folder of its own
(the run folder), on a free loopback port, and a stop removes it again. Missing ``node``, ``npm``
or PostgreSQL is a one-line error that names the Debian package to install.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from harness.errors import HarnessError
from harness.orchestration.server import LocalServer
from harness.plan import TargetSpec
from harness.processes import terminate
from harness.runfolder import PARSE_SERVER_LOG, POSTGRES_DIR, POSTGRES_LOG

__all__ = ["ParseServer", "check_prerequisites", "ensure_installed", "recorded_spec", "start_parse", "stop_recorded"]

PARSE_VERSION = "9.10.0"
APP_ID = "lqharness"
NODE_FILES = ("package.json", "package-lock.json", "server.js")
LIVE_CLASSES = "[A-Za-z].*"  # every class the harness creates (system classes start with "_")
NODE_ENGINES = ((20, 19), (22, 13), (24, 11))  # parse-server 9.10.0: >=20.19 <21, >=22.13 <23, >=24.11 <25
INSTALL_TIMEOUT = 600.0
PROGRESS_SECONDS = 5.0
PG_START_TIMEOUT = 60
HEALTH_TIMEOUT = 90.0
STOP_GRACE = 10.0
COMPLETE_MARK = ".lqh-installed"
STATE_FILE = "parse-target.json"
DEBIAN_PG = Path("/usr/lib/postgresql")  # Debian keeps each major version's server binaries here

Progress = Callable[[str], None]


def cache_root() -> Path:
    """Where installs are kept: ``$XDG_CACHE_HOME`` (or ``~/.cache``) ``/livequery-harness/parse``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "livequery-harness" / "parse"


def _node_sources() -> dict[str, bytes]:
    folder = resources.files("harness.targets.parse").joinpath("node")
    return {name: folder.joinpath(name).read_bytes() for name in NODE_FILES}


def install_key(sources: dict[str, bytes]) -> str:
    """The cache key of an install: a digest of the pinned package files and the launcher."""
    digest = hashlib.sha256()
    for name in NODE_FILES:
        digest.update(name.encode() + b"\0" + sources[name] + b"\0")
    return digest.hexdigest()[:16]


def _tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise HarnessError(f"{name} not found: install the Debian package {package} (apt-get install {package})")
    return path


def _check_node(node: str) -> None:
    try:
        out = subprocess.run([node, "--version"], capture_output=True, text=True, timeout=30, check=True).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise HarnessError(f"cannot run {node} --version: {exc}") from None
    match = re.match(r"v(\d+)\.(\d+)", out.strip())
    if not match:
        raise HarnessError(f"cannot read the version of {node}: {out.strip()!r}")
    major, minor = int(match[1]), int(match[2])
    if not any(major == m and minor >= n for m, n in NODE_ENGINES):
        ranges = ", ".join(f">={m}.{n} <{m + 1}" for m, n in NODE_ENGINES)
        raise HarnessError(f"node {out.strip()} cannot run parse-server {PARSE_VERSION} (needs {ranges})")


def check_prerequisites() -> None:
    """Fail with one line now, before any run folder, when node (new enough), npm or PostgreSQL is missing.

    npm is needed only while nothing is installed in the cache yet.
    """
    _check_node(_tool("node", "nodejs"))
    if not (cache_root() / install_key(_node_sources()) / COMPLETE_MARK).is_file():
        _tool("npm", "npm")
    pg_bindir()
    _run_as()


def ensure_installed(progress: Progress = print) -> Path:
    """The folder holding the launcher and its ``node_modules``, installed with ``npm ci`` on first use.

    Installs go to a temporary sibling first and are renamed into place when complete, so an
    interrupted install is never reused and two concurrent installs cannot mix.
    """
    sources = _node_sources()
    dest = cache_root() / install_key(sources)
    if (dest / COMPLETE_MARK).is_file():
        return dest
    node = _tool("node", "nodejs")
    _check_node(node)
    npm = _tool("npm", "npm")
    tmp = dest.with_name(f"{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name, data in sources.items():
        (tmp / name).write_bytes(data)
    progress(f"installing parse-server {PARSE_VERSION} from the npm registry into {dest} (once; about a minute)")
    started = time.monotonic()
    try:
        code, last = _npm_ci(npm, tmp, progress)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if code != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise HarnessError(f"npm ci failed with exit code {code}: {last}")
    (tmp / COMPLETE_MARK).write_text(f"{time.time()}\n")
    try:
        tmp.rename(dest)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another install finished first; use it
        if not (dest / COMPLETE_MARK).is_file():
            raise HarnessError(f"cannot move the Parse install into {dest}") from None
    progress(f"installed parse-server {PARSE_VERSION} in {time.monotonic() - started:.0f} s")
    return dest


def _npm_ci(npm: str, folder: Path, progress: Progress) -> tuple[int, str]:
    """``npm ci`` in ``folder``, reporting fetched packages every few seconds; (exit code, last error line)."""
    cmd = [npm, "ci", "--no-audit", "--no-fund", "--loglevel=http"]
    proc = subprocess.Popen(
        cmd, cwd=folder, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    assert proc.stdout is not None
    started = last_note = time.monotonic()
    fetched, last = 0, "(no output)"
    for line in proc.stdout:
        if " fetch GET " in line:
            fetched += 1
        elif line.strip() and not line.startswith("npm http"):
            last = line.strip()
            if "ERR" in line or line.startswith("added "):
                progress(f"  npm: {last}")
        if time.monotonic() - last_note >= PROGRESS_SECONDS:
            progress(f"  npm ci: {fetched} registry fetches in {time.monotonic() - started:.0f} s")
            last_note = time.monotonic()
        if time.monotonic() - started > INSTALL_TIMEOUT:
            proc.kill()
            proc.wait()
            raise HarnessError(f"npm ci did not finish within {INSTALL_TIMEOUT:.0f} s")
    return proc.wait(), last


def _version_of(path: Path) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", path.parent.name)) or (0,)


def pg_bindir() -> Path:
    """The PostgreSQL server binaries: ``initdb`` on PATH, else Debian's newest ``/usr/lib/postgresql/*/bin``."""
    on_path = shutil.which("initdb")
    candidates = [Path(on_path).resolve().parent] if on_path else []
    candidates += sorted(DEBIAN_PG.glob("*/bin"), key=_version_of, reverse=True)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    raise HarnessError(
        "PostgreSQL server not found (no initdb and pg_ctl): install the Debian package postgresql "
        "(apt-get install postgresql)"
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as() -> str | None:
    """PostgreSQL refuses to run as root: as root, its programs run as the ``postgres`` user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise HarnessError(
            "running as root, PostgreSQL needs the postgres user: install the Debian package postgresql"
        ) from None
    return "postgres"


class PgCluster:
    """A private PostgreSQL cluster in ``folder/pg``: initdb, start on a loopback port, stop, remove.

    As root the cluster belongs to the ``postgres`` user; when that user cannot reach ``folder``
    (a private temporary folder, a home directory) the cluster goes to a temporary folder of its
    own instead. Its log is copied into ``folder`` when it is removed.
    """

    def __init__(self, folder: Path, root: Path | None = None) -> None:
        self.folder = folder
        self.root = root or folder / POSTGRES_DIR
        self.port: int | None = None
        self.bindir = pg_bindir()
        self.user = _run_as()

    @property
    def data(self) -> Path:
        return self.root / "data"

    def _cmd(self, *args: str) -> list[str]:
        return (["runuser", "-u", self.user, "--"] if self.user else []) + list(args)

    def _run(self, what: str, *args: str, timeout: float = 120) -> None:
        try:
            done = subprocess.run(
                self._cmd(*args), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            raise HarnessError(f"PostgreSQL {what} did not finish within {timeout:.0f} s") from None
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines() or ["(no output)"]
            raise HarnessError(f"PostgreSQL {what} failed: {lines[-1]}")

    def init(self) -> None:
        """Create the cluster (trust authentication: it listens on 127.0.0.1 only)."""
        self.root.mkdir(parents=True, exist_ok=False)
        if self.user and not self._owned(self.root):
            shutil.rmtree(self.root)
            self.root = Path(tempfile.mkdtemp(prefix="lqh-pg-"))
            if not self._owned(self.root):
                raise HarnessError(f"the {self.user} user cannot write {self.root}")
        self._run(
            "initdb",
            str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
            "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions",
        )  # fmt: skip

    def _owned(self, path: Path) -> bool:
        """Give ``path`` to the server's user; whether that user can then write it."""
        assert self.user is not None
        shutil.chown(path, self.user, self.user)
        return subprocess.run(self._cmd("test", "-w", str(path)), stdin=subprocess.DEVNULL).returncode == 0

    def start(self) -> None:
        """Start on ``port`` (a free one when None), loopback TCP only, no Unix socket; waits until ready."""
        self.port = self.port or free_port()
        settings = (
            f"-c listen_addresses=127.0.0.1 -p {self.port} -c unix_socket_directories= "
            "-c wal_level=logical -c max_replication_slots=4 -c max_wal_senders=4"
        )
        self._run(
            "start",
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / POSTGRES_LOG),
            "-w", "-t", str(PG_START_TIMEOUT), "-o", settings, "start",
            timeout=PG_START_TIMEOUT + 10,
        )  # fmt: skip

    @property
    def pid(self) -> int | None:
        """The postmaster's pid, from its pid file."""
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    @property
    def uri(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def stop_and_remove(self) -> None:
        """Stop the server (fast shutdown), keep its log beside the folder, remove the cluster."""
        if self.data.is_dir():
            try:
                self._run("stop", str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
            except HarnessError:
                pid = self.pid
                if pid is not None:
                    _kill(pid, STOP_GRACE)
        log = self.root / POSTGRES_LOG
        if log.is_file():
            shutil.copyfile(log, self.folder / POSTGRES_LOG)
        shutil.rmtree(self.root, ignore_errors=True)


def _kill(pid: int, grace: float) -> None:
    """SIGTERM ``pid``, then SIGKILL once ``grace`` seconds pass (a process that is not ours to wait on)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _running(pid):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _request(url: str, master_key: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else orjson.dumps(body)
    req = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    req.add_header("X-Parse-Application-Id", APP_ID)
    req.add_header("X-Parse-Master-Key", master_key)
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, orjson.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, None


@dataclass
class ParseServer(LocalServer):
    """A running Parse Server (the Node process, ``proc``) with its PostgreSQL cluster."""

    master_key: str = ""
    cluster: PgCluster | None = None
    folder: Path = field(default_factory=Path)

    def spec(self) -> TargetSpec:
        """How the ``parse`` driver reaches this server."""
        options = {"database_url": self.cluster.uri} if self.cluster is not None else {}
        return TargetSpec("parse", self.url, APP_ID, self.master_key, options)

    @property
    def pg_pid(self) -> int | None:
        return self.cluster.pid if self.cluster else None

    @property
    def database_pid(self) -> int | None:
        """PostgreSQL's postmaster: the monitor samples it and its backends (``database.jsonl``)."""
        return self.pg_pid

    def stop(self, timeout: float = STOP_GRACE) -> int:
        """Stop Node (SIGTERM, then SIGKILL), then PostgreSQL, and remove the cluster; Node's exit code."""
        code = terminate(self.proc, timeout)
        if self.cluster is not None:
            self.cluster.stop_and_remove()
        return code


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, master_key: str, log: Path) -> None:
    """Until ``/health`` says ok; then check that ``/batch`` works (the documented router pin)."""
    deadline = time.monotonic() + HEALTH_TIMEOUT
    while True:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise HarnessError(f"parse-server exited with code {proc.returncode}: {tail[0]}")
        try:
            status, body = _request(f"{url}/health", master_key)
            if status == 200 and isinstance(body, dict) and body.get("status") == "ok":
                break
        except (OSError, orjson.JSONDecodeError):
            pass
        if time.monotonic() > deadline:
            raise HarnessError(f"parse-server not healthy within {HEALTH_TIMEOUT:.0f} s (log: {log})")
        time.sleep(0.2)
    status, body = _request(f"{url}/batch", master_key, {"requests": []})
    if status != 200:
        raise HarnessError(
            f"POST /parse/batch answers HTTP {status}: the router 2.2.0 pin of package.json is not in effect"
        )


def start_parse(folder: Path, progress: Progress = print, *, detach: bool = False) -> ParseServer:
    """Install if needed, then start PostgreSQL and Parse Server under ``folder``; returns once healthy.

    With ``detach`` the Node process gets its own session, so it outlives the calling command
    (``lqharness target up``). On any failure everything started so far is stopped again.
    """
    install = ensure_installed(progress)
    node = _tool("node", "nodejs")
    folder.mkdir(parents=True, exist_ok=True)
    folder = folder.resolve()  # PostgreSQL runs as another user, from another working directory
    cluster = PgCluster(folder)
    if cluster.root.exists():  # left by a start that was killed: not ours to remove
        raise HarnessError(f"a PostgreSQL cluster is already in {cluster.root}: stop it, or remove the folder")
    try:
        cluster.init()
        progress(f"starting PostgreSQL {cluster.bindir.parent.name} (cluster in {cluster.root})")
        cluster.start()
    except BaseException:
        cluster.stop_and_remove()
        raise
    port = free_port()
    master_key = "lqh-" + secrets.token_hex(12)
    url = f"http://127.0.0.1:{port}/parse"
    env = {
        **os.environ,
        "LQH_PARSE_PORT": str(port),
        "LQH_PARSE_DATABASE_URI": cluster.uri,
        "LQH_PARSE_APP_ID": APP_ID,
        "LQH_PARSE_MASTER_KEY": master_key,
        "LQH_PARSE_LIVE_CLASSES": LIVE_CLASSES,
    }
    log_path = folder / PARSE_SERVER_LOG
    progress(f"starting parse-server {PARSE_VERSION} on {url}")
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [node, str(install / "server.js")], cwd=install, env=env, stdout=log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=detach,
        )  # fmt: skip
    server = ParseServer(
        proc=proc, url=url, root_password=None, log_path=log_path, master_key=master_key, cluster=cluster, folder=folder
    )
    try:
        _wait_healthy(proc, url, master_key, log_path)
    except BaseException:
        server.stop()
        raise
    return server


def write_state(server: ParseServer) -> Path:
    """Record a detached server (pids, URL, key, folders) so ``stop_recorded`` can stop it later."""
    assert server.cluster is not None
    state = {
        "target": "parse",
        "url": server.url,
        "app_id": APP_ID,
        "master_key": server.master_key,
        "node_pid": server.pid,
        "postgres_pid": server.pg_pid,
        "postgres_port": server.cluster.port,
        "postgres_dir": str(server.cluster.root),
        "folder": str(server.folder.resolve()),
        "started_at": time.time(),
    }
    path = server.folder / STATE_FILE
    path.write_bytes(orjson.dumps(state, option=orjson.OPT_INDENT_2))
    path.chmod(0o600)
    return path


def read_state(folder: Path) -> dict[str, Any]:
    """The record ``write_state`` left in ``folder``; a missing or unreadable one is a one-line error."""
    path = folder / STATE_FILE
    try:
        state = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        raise HarnessError(f"no target is up in {folder} ({path} not found)") from None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise HarnessError(f"cannot read {path}: {exc}") from None
    if not isinstance(state, dict) or state.get("target") != "parse":
        raise HarnessError(f"{path} is not a Parse target record")
    return state


def recorded_spec(folder: Path) -> TargetSpec:
    """How to reach the server ``lqharness target up parse --dir folder`` started; one line if it is not running."""
    state = read_state(folder)
    if not _is_launcher(int(state.get("node_pid") or 0)):
        raise HarnessError(
            f"the Parse server recorded in {folder} is not running: `lqharness target down --dir {folder}`"
        )
    port = state.get("postgres_port")
    options = {"database_url": f"postgres://postgres@127.0.0.1:{port}/postgres"} if port else {}
    return TargetSpec("parse", str(state["url"]), str(state["app_id"]), str(state["master_key"]), options)


def _is_launcher(pid: int) -> bool:
    """Whether ``pid`` is still our Node launcher (not a reused pid)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(part.endswith(b"server.js") for part in cmdline) and _running(pid)


def stop_recorded(folder: Path) -> dict[str, Any]:
    """Stop the server recorded in ``folder`` by its pids, remove its cluster and the record; the record."""
    state = read_state(folder)
    node_pid = int(state.get("node_pid") or 0)
    if node_pid and _is_launcher(node_pid):
        _kill(node_pid, STOP_GRACE)
    pg_dir = state.get("postgres_dir")
    PgCluster(Path(state.get("folder") or folder), Path(pg_dir) if pg_dir else None).stop_and_remove()
    (folder / STATE_FILE).unlink(missing_ok=True)
    return state
