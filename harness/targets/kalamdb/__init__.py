"""The KalamDB v1 target: JWT login, ``/v1/api/sql`` over HTTP, live queries over ``/v1/ws``.

Speaks only the protocol of ``docs/kalamdb-protocol.md`` (``/work/shared/docs``), so it
drives a real KalamDB and the reference server alike. Everything is synchronous and
gevent-friendly: HTTP goes through geventhttpclient (one keep-alive connection per session),
the WebSocket through websocket-client, which cooperates once gevent has monkey-patched.
"""

from __future__ import annotations

import collections
import ipaddress
import secrets
import threading
import time
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import gevent
import orjson
import websocket
from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPParseError

from harness.plan import TargetSpec
from harness.targets.base import Change, Disconnected, Outcome, Row, Schema, TargetError, WriteResult
from harness.targets.kalamdb import wire

SQL_PATH = "/v1/api/sql"
LOGIN_PATH = "/v1/api/auth/login"
SETUP_PATH = "/v1/api/auth/setup"
STATUS_PATH = "/v1/api/auth/status"
FEATURES = frozenset({"changes_counter", "resume", "flush", "stats", "user_tables", "jobs"})
DEFAULT_TIMEOUT = 10.0
DEFAULT_BATCH_SIZE = 500  # snapshot rows per batch; below max_query_limit (1000), see protocol 2.4
DEFAULT_SUBSCRIBE_TIMEOUT = 30.0
DEFAULT_HEARTBEAT = 4.0  # the server drops clients silent for client_timeout_secs (10 s by default)
CLOSE_TIMEOUT = 1.0
LOGIN_ATTEMPTS = 3  # a 429 on login is retried with a short back-off
RATE_LIMITED_AUTH = "too many authentication"  # KalamDB's auth_error text past its per-IP limit (protocol 4.2)
AUTH_RETRY_SECONDS = 30.0  # how long a rate-limited WebSocket authentication keeps retrying
AUTH_BACKOFF_FIRST = 0.05
AUTH_BACKOFF_MAX = 1.0
PAGE = 1000  # max_query_limit: the largest page a SELECT returns


def _describe(exc: BaseException) -> str:
    """One line for a transport exception, without library internals."""
    if isinstance(exc, TimeoutError | gevent.Timeout):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, ConnectionResetError):
        return "connection reset"
    if isinstance(exc, HTTPParseError):
        return f"connection closed ({exc})"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class _TransportError(TargetError):
    """The request got no answer (refused, reset, timed out): its effect is unknown."""


class _Endpoint:
    """The target's base URL split into what HTTP and WebSocket clients need."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TargetError(f"bad KalamDB URL {url!r}: expected http://host:port")
        self.secure = parts.scheme == "https"
        self.host = parts.hostname
        try:
            self.port = parts.port or (443 if self.secure else 80)
        except ValueError:
            raise TargetError(f"bad port in KalamDB URL {url!r}") from None
        netloc = f"[{self.host}]" if ":" in self.host else self.host
        self.base_url = f"{parts.scheme}://{netloc}:{self.port}"
        self.ws_url = f"{'wss' if self.secure else 'ws'}://{netloc}:{self.port}/v1/ws"

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


class _Http:
    """One keep-alive HTTP connection posting JSON; returns (status, decoded body or None).

    geventhttpclient sockets belong to the gevent hub of the thread that made them, so a
    session used from another thread transparently opens its own connection there.
    """

    def __init__(self, endpoint: _Endpoint, timeout: float) -> None:
        self._endpoint = endpoint
        self._timeout = timeout
        self._client: HTTPClient | None = None
        self._hub: Any = None

    def _get(self) -> HTTPClient:
        hub = gevent.get_hub()
        if self._client is None or self._hub is not hub:
            self._client = HTTPClient(
                self._endpoint.host,
                port=self._endpoint.port,
                ssl=self._endpoint.secure,
                concurrency=1,
                connection_timeout=self._timeout,
                network_timeout=self._timeout,
            )
            self._hub = hub
        return self._client

    def post(self, path: str, payload: Any, token: str | None = None) -> tuple[int, Any]:
        return self.request("POST", path, orjson.dumps(payload), token)

    def request(self, method: str, path: str, body: bytes = b"", token: str | None = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            with self._get().request(method, path, body=body, headers=headers) as resp:
                status, data = resp.status_code, resp.read()
        except (OSError, HTTPParseError, gevent.Timeout, RuntimeError) as exc:
            raise _TransportError(f"{self._endpoint.base_url}{path}: {_describe(exc)}") from None
        try:
            return status, orjson.loads(data) if data else None
        except orjson.JSONDecodeError:
            return status, None

    def close(self) -> None:
        if self._client is not None and self._hub is gevent.get_hub():
            self._client.close()
        self._client = None


class _Token:
    __slots__ = ("password", "access", "expires_at")

    def __init__(self, password: str, access: str, expires_at: float | None) -> None:
        self.password = password
        self.access = access
        self.expires_at = expires_at


_TOKENS: dict[tuple[str, str], _Token] = {}  # (base URL, user) -> access token, shared by all sessions
_LOGIN_LOCKS: dict[tuple[str, str], threading.Lock] = collections.defaultdict(
    lambda: threading.Lock()  # looked up at call time, so gevent's patched lock is used once patched
)


def _expiry(text: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return None


class _Credentials:
    """One user's login on one target, with a process-wide token cache and the first-run setup."""

    def __init__(
        self,
        endpoint: _Endpoint,
        user: str,
        password: str,
        root_password: str | None = None,
        setup_user: str = "lqh_dba",
    ) -> None:
        self.endpoint = endpoint
        self.user = user
        self.password = password
        self._root_password = root_password
        self._setup_user = setup_user
        self._key = (endpoint.base_url, user)

    def token(self, http: _Http, timeout: float) -> str:
        """A valid access token, logging in only when none is cached (one login per user at a time)."""
        cached = self._cached()
        if cached:
            return cached
        lock = _LOGIN_LOCKS[self._key]
        if not lock.acquire(timeout=timeout * (LOGIN_ATTEMPTS + 1)):
            raise TargetError(
                f"login as {self.user!r} at {self.endpoint.base_url}: timed out waiting for another login"
            )
        try:
            return self._cached() or self._login(http)
        finally:
            lock.release()

    def _cached(self) -> str | None:
        tok = _TOKENS.get(self._key)
        if tok is None or tok.password != self.password:
            return None
        if tok.expires_at is not None and tok.expires_at - time.time() < 60:
            return None
        return tok.access

    def invalidate(self, access: str) -> None:
        tok = _TOKENS.get(self._key)
        if tok is not None and tok.access == access:
            del _TOKENS[self._key]

    def _login(self, http: _Http) -> str:
        where = f"login as {self.user!r} at {self.endpoint.base_url}"
        status, body = self._post_login(http, where)
        if status in (401, 428) and self._root_password and self._needs_setup(http):
            self._first_run_setup(http, where)
            status, body = self._post_login(http, where)
        if status != 200 or not isinstance(body, dict) or not body.get("access_token"):
            err = wire.error_of(body)
            detail = f"{err[0]}: {err[1]}" if err else "no access token in the reply"
            hint = ""
            if status == 428:
                hint = " (server needs first-run setup; give a root password)"
            elif status == 403 and self.user == "root":
                hint = " (KalamDB refuses remote logins of system users such as root: use a DBA user, --user)"
            raise TargetError(f"{where}: HTTP {status} {detail}{hint}")
        access = str(body["access_token"])
        _TOKENS[self._key] = _Token(self.password, access, _expiry(body.get("expires_at")))
        return access

    def _post_login(self, http: _Http, where: str) -> tuple[int, Any]:
        for attempt in range(LOGIN_ATTEMPTS):
            try:
                status, body = http.post(LOGIN_PATH, {"user": self.user, "password": self.password})
            except _TransportError as exc:
                raise TargetError(f"{where}: cannot reach the server: {exc}") from None
            if status != 429 or attempt == LOGIN_ATTEMPTS - 1:
                return status, body
            time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    def _needs_setup(self, http: _Http) -> bool:
        """``GET /v1/api/auth/status`` (local servers only): does root still lack a password?"""
        try:
            status, body = http.request("GET", STATUS_PATH)
        except _TransportError:
            return False
        return status == 200 and isinstance(body, dict) and body.get("needs_setup") is True

    def _first_run_setup(self, http: _Http, where: str) -> None:
        dba = self.user if self.user != "root" else self._setup_user
        payload = {
            "user": dba,
            "password": self.password,
            "root_password": self._root_password,
            "email": None,
        }
        try:
            status, body = http.post(SETUP_PATH, payload)
        except _TransportError as exc:
            raise TargetError(f"{where}: first-run setup: {exc}") from None
        if status not in (200, 409):
            err = wire.error_of(body)
            raise TargetError(f"{where}: first-run setup failed: HTTP {status} {err[0] + ': ' + err[1] if err else ''}")


class _SqlSession:
    """``POST /v1/api/sql`` as one user over one connection.

    A 401 (token expired, or signed with a secret the server no longer has after a restart)
    means the statement was not run: the token is dropped, and one fresh login and retry follow.
    """

    def __init__(self, endpoint: _Endpoint, creds: _Credentials, timeout: float) -> None:
        self.creds = creds
        self.timeout = timeout
        self.http = _Http(endpoint, timeout)

    def post(self, sql: str, params: list[Any] | None = None) -> tuple[int, Any]:
        """Run ``sql``; raises TargetError when logging in fails, _TransportError when no answer came."""
        payload: dict[str, Any] = {"sql": sql}
        if params is not None:
            payload["params"] = params
        for attempt in range(2):
            token = self.creds.token(self.http, self.timeout)
            status, body = self.http.post(SQL_PATH, payload, token)
            if status == 401 and attempt == 0:
                self.creds.invalidate(token)
                continue
            return status, body
        raise AssertionError("unreachable")

    def query(self, sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
        """Run ``sql`` and return its results; any error becomes a TargetError with code and message."""
        status, body = self.post(sql, params)
        err = wire.error_of(body)
        if status != 200 or err is not None or not isinstance(body, dict):
            detail = f"{err[0]}: {err[1]}" if err else "unreadable reply"
            raise TargetError(f"HTTP {status} {detail}")
        return list(body.get("results") or [])

    def close(self) -> None:
        self.http.close()


class KalamAdmin:
    """Privileged SQL: setup, ``system.live`` counters, flush jobs and ``system.stats``."""

    def __init__(self, target: KalamTarget) -> None:
        self._target = target
        self._sql = _SqlSession(target.endpoint, target.admin_credentials(), target.timeout)
        self._sql.creds.token(self._sql.http, target.timeout)

    def execute(self, sql: str) -> list[dict[str, Any]]:
        """Run SQL; one dict per statement result with ``rows`` as dicts (BIGINT values as int)."""
        return [{**r, "rows": wire.result_rows(r)} for r in self._sql.query(sql)]

    def _rows(self, sql: str) -> list[Row]:
        results = self.execute(sql)
        return results[0]["rows"] if results else []

    def setup(self, schema: Schema) -> None:
        """Create namespace, table and users. A user that already exists (an earlier run on the
        same server) gets the schema's password, so its sessions can log in."""
        self.execute(f"CREATE NAMESPACE IF NOT EXISTS {wire.identifier(schema.namespace)}")
        self.execute(wire.create_table_sql(schema))
        for user, password in schema.users.items():
            try:
                self.execute(wire.create_user_sql(user, password))
            except TargetError as exc:
                if "already exists" not in str(exc).lower():
                    raise TargetError(f"create user {user!r}: {exc}") from None
                try:
                    self.execute(wire.set_password_sql(user, password))
                except TargetError as exc:
                    raise TargetError(f"set the password of existing user {user!r}: {exc}") from None

    def live_subscriptions(self) -> dict[str, int] | None:
        """Client subscription id -> ``changes`` of every row of ``system.live``, paged by ``live_id``."""
        out: dict[str, int] = {}
        last: str | None = None
        for _ in range(1000):
            where = f" WHERE live_id > {wire.quote_literal(last)}" if last is not None else ""
            rows = self._rows(
                f"SELECT live_id, subscription_id, changes FROM system.live{where} ORDER BY live_id LIMIT {PAGE}"
            )
            for row in rows:
                changes = row.get("changes")
                out[str(row["subscription_id"])] = int(changes) if changes is not None else 0
            if len(rows) < PAGE:
                return out
            last = str(rows[-1]["live_id"])
        raise TargetError("system.live did not end after 1000 pages")

    def flush(self, table: str) -> str | None:
        """Start ``STORAGE FLUSH TABLE`` on a namespace-qualified table; the job id, or None if skipped."""
        ns, _, name = table.partition(".")
        if not name:
            raise TargetError(f"flush needs a namespace-qualified table, got {table!r}")
        results = self.execute(f"STORAGE FLUSH TABLE {wire.identifier(ns)}.{wire.identifier(name)}")
        return wire.job_id_of(results[0].get("message") if results else None)

    def job_status(self, job_id: str) -> str | None:
        rows = self._rows(f"SELECT status FROM system.jobs WHERE job_id = {wire.quote_literal(job_id)}")
        return str(rows[0]["status"]) if rows and rows[0].get("status") is not None else None

    def stats(self) -> dict[str, str] | None:
        rows = self._rows(f"SELECT metric_name, metric_value FROM system.stats LIMIT {PAGE}")
        return {str(r["metric_name"]): str(r["metric_value"]) for r in rows}

    def server_pid(self) -> int | None:
        """The ``pid`` statistic, trusted only when the server is on this machine (loopback URL)."""
        if not self._target.endpoint.loopback:
            return None
        pid = (self.stats() or {}).get("pid")
        try:
            return int(pid) if pid is not None else None
        except ValueError:
            return None

    def close(self) -> None:
        self._sql.close()


class KalamWriter:
    """One writer's HTTP session: parameterised INSERT/UPDATE/DELETE with ok/failed/indeterminate outcomes."""

    def __init__(self, target: KalamTarget, schema: Schema, creds: _Credentials) -> None:
        self._schema = schema
        self._table = wire.qualified(schema)
        self._key = wire.identifier(schema.key)
        self._bigints = wire.schema_bigints(schema)
        self._sql = _SqlSession(target.endpoint, creds, target.timeout)
        self._sql.creds.token(self._sql.http, target.timeout)

    def _write(self, sql: str, params: list[Any]) -> WriteResult:
        invoke = time.time_ns()
        try:
            status, body = self._sql.post(sql, params)
        except _TransportError as exc:
            return WriteResult(Outcome.INDETERMINATE, invoke, time.time_ns(), str(exc))
        except TargetError as exc:  # the token could not be renewed: the statement was never run
            return WriteResult(Outcome.FAILED, invoke, time.time_ns(), str(exc))
        ack = time.time_ns()
        outcome, error = wire.classify(status, body)
        return WriteResult(outcome, invoke, ack, error, wire.rows_affected(body) if outcome is Outcome.OK else None)

    def insert(self, row: Row) -> WriteResult:
        cols = list(row)
        return self._write(wire.insert_sql(self._table, cols), [row[c] for c in cols])

    def update(self, key: Any, changes: Row) -> WriteResult:
        cols = sorted(c for c in changes if c != self._key)
        if not cols:
            now = time.time_ns()
            return WriteResult(Outcome.FAILED, now, now, "update without columns to change")
        return self._write(wire.update_sql(self._table, self._key, cols), [changes[c] for c in cols] + [key])

    def delete(self, key: Any) -> WriteResult:
        return self._write(wire.delete_sql(self._table, self._key), [key])

    def select(self, where: str | None = None, limit: int | None = None) -> list[Row]:
        sql = f"SELECT * FROM {self._table}"
        if where:
            sql += f" WHERE {where}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        try:
            results = self._sql.query(sql)
        except _TransportError as exc:
            raise TargetError(f"select: {exc}") from None
        return wire.result_rows(results[0], self._bigints) if results else []

    def close(self) -> None:
        self._sql.close()


class KalamListener:
    """One live subscription on its own WebSocket, with client heartbeat and resume by ``_seq``."""

    def __init__(self, target: KalamTarget, schema: Schema, creds: _Credentials) -> None:
        self._target = target
        self._schema = schema
        self._creds = creds
        self._http = _Http(target.endpoint, target.timeout)
        self._bigints = wire.schema_bigints(schema)
        self._name = secrets.token_hex(6)
        self._count = 0
        self._ws: websocket.WebSocket | None = None
        self._sub_id: str | None = None
        self._ready = False
        self._snapshot_wanted = False
        self._buffer: collections.deque[Change] = collections.deque()
        self._last_seq: int | None = None
        self._next_ping = 0.0
        self._dead: Disconnected | None = None
        self._closed = False

    @property
    def subscription_id(self) -> str | None:
        return self._sub_id

    @property
    def last_seq(self) -> int | None:
        return self._last_seq

    # -- connection ---------------------------------------------------------------------------

    def _open(self) -> websocket.WebSocket:
        url = self._target.endpoint.ws_url + ("" if self._target.compress else "?compress=false")
        try:
            return websocket.create_connection(
                url, timeout=self._target.timeout, enable_multithread=True, skip_utf8_validation=True
            )
        except websocket.WebSocketBadStatusException as exc:
            raise TargetError(f"websocket upgrade refused at {url}: HTTP {exc.status_code}") from None
        except (OSError, websocket.WebSocketException) as exc:
            raise TargetError(f"cannot open websocket {url}: {_describe(exc)}") from None

    def _connect(self) -> None:
        """Open the socket and authenticate in-band.

        A rejected cached token is renewed once. A refusal for too many authentications from
        this address (KalamDB's per-IP limit, protocol 4.2) is retried with a growing,
        jittered back-off for up to ``AUTH_RETRY_SECONDS``.
        """
        renewed = False
        give_up = time.monotonic() + AUTH_RETRY_SECONDS
        backoff = AUTH_BACKOFF_FIRST
        while True:
            token = self._creds.token(self._http, self._target.timeout)
            refusal = self._authenticate(token)
            if refusal is None:
                return
            if RATE_LIMITED_AUTH in refusal.lower():
                if time.monotonic() + backoff > give_up:
                    raise TargetError(
                        f"websocket authentication as {self._creds.user!r} still rate-limited after "
                        f"{AUTH_RETRY_SECONDS:g}s: {refusal} (raise the server's "
                        "rate_limit.max_auth_requests_per_ip_per_sec)"
                    )
                gevent.sleep(backoff * (0.5 + secrets.randbelow(1000) / 1000))
                backoff = min(backoff * 2, AUTH_BACKOFF_MAX)
                continue
            if renewed:
                raise TargetError(f"websocket authentication as {self._creds.user!r} failed: {refusal}")
            self._creds.invalidate(token)
            renewed = True

    def _authenticate(self, token: str) -> str | None:
        """Open a socket and send ``authenticate``; None on success, else the server's refusal text."""
        self._ws = self._open()
        self._dead = None
        self._send(
            {
                "type": "authenticate",
                "method": "jwt",
                "token": token,
                "protocol": {
                    "serialization": "json",
                    "compression": "gzip" if self._target.compress else "none",
                },
            }
        )
        deadline = time.monotonic() + self._target.timeout
        while (remaining := deadline - time.monotonic()) > 0:
            msg = self._read(remaining)
            if msg is None:
                continue
            kind = msg[0].get("type")
            if kind == "auth_success":
                return None
            if kind == "auth_error":
                self._shutdown()
                return str(msg[0].get("message", ""))
        self._shutdown()
        raise TargetError(f"no authentication reply within {self._target.timeout:g}s")

    def _send(self, msg: dict[str, Any]) -> None:
        assert self._ws is not None
        try:
            self._ws.settimeout(self._target.timeout)
            self._ws.send(orjson.dumps(msg).decode())
        except (OSError, websocket.WebSocketException) as exc:
            self._lost(f"send failed: {_describe(exc)}")
            raise self._dead from None  # type: ignore[misc]
        self._next_ping = time.monotonic() + self._target.heartbeat

    def _heartbeat(self) -> None:
        """Send a WebSocket ping when the connection has been quiet on our side for ``heartbeat`` s."""
        if self._ws is None or self._dead is not None or time.monotonic() < self._next_ping:
            return
        try:
            self._ws.settimeout(self._target.timeout)
            self._ws.ping()
        except (OSError, websocket.WebSocketException) as exc:
            self._lost(f"ping failed: {_describe(exc)}")
            return
        self._next_ping = time.monotonic() + self._target.heartbeat

    def _lost(self, reason: str, expected: bool = False) -> None:
        if self._dead is None:
            self._dead = Disconnected(reason, expected=expected)
        self._shutdown()

    def _shutdown(self) -> None:
        if self._ws is not None:
            try:
                self._ws.shutdown()
            except (OSError, websocket.WebSocketException):
                pass

    def _read(self, timeout: float) -> tuple[dict[str, Any], int, int] | None:
        """One server message (message, received_ns, payload bytes), or None after ``timeout``."""
        if self._dead is not None:
            raise self._dead
        assert self._ws is not None
        try:
            self._ws.settimeout(max(timeout, 0.001))
            opcode, frame = self._ws.recv_data_frame(control_frame=True)
        except websocket.WebSocketTimeoutException:
            return None
        except websocket.WebSocketConnectionClosedException:
            self._lost("connection closed without a close frame")
            raise self._dead from None  # type: ignore[misc]
        except (OSError, websocket.WebSocketException) as exc:
            self._lost(f"connection lost: {_describe(exc)}")
            raise self._dead from None  # type: ignore[misc]
        received = time.time_ns()
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            data = frame.data or b""
            code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
            text = data[2:].decode("utf-8", "replace")
            self._lost(f"closed by server: {code} {text}".rstrip())
            raise self._dead from None  # type: ignore[misc]
        if opcode not in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
            return None
        data = frame.data
        return wire.decode_frame(data), received, len(data)

    # -- subscription -------------------------------------------------------------------------

    def subscribe(self, where: str | None = None, resume_from: int | None = None, snapshot: bool = False) -> None:
        """Subscribe to ``SELECT * FROM ns.t [WHERE where]``; returns once the server says ``ready``."""
        if self._sub_id is not None or self._closed:
            raise TargetError("this listener is already subscribed or closed; open a new one")
        try:
            self._connect()
            self._count += 1
            self._sub_id = f"lqh_{self._name}_{self._count}"
            sql = f"SELECT * FROM {wire.qualified(self._schema)}" + (f" WHERE {where}" if where else "")
            sub: dict[str, Any] = {"id": self._sub_id, "sql": sql}
            if resume_from is not None:
                sub["options"] = {"from": int(resume_from), "batch_size": self._target.batch_size}
            elif snapshot:
                sub["options"] = {"batch_size": self._target.batch_size}
            self._snapshot_wanted = "options" in sub
            self._send({"type": "subscribe", "subscription": sub})
            deadline = time.monotonic() + self._target.subscribe_timeout
            while not self._ready:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TargetError(
                        f"subscription {self._sub_id} not ready within {self._target.subscribe_timeout:g}s"
                    )
                self._pump(remaining)
        except TargetError:
            self.close()
            raise

    def _pump(self, timeout: float) -> None:
        """Read until one message or ``timeout`` s (at least one poll), in slices that keep the heartbeat going."""
        deadline = time.monotonic() + timeout
        while True:
            self._heartbeat()
            got = self._read(max(0.0, min(deadline, self._next_ping) - time.monotonic()))
            if got is not None:
                self._handle(*got)
                return
            if time.monotonic() >= deadline:
                return

    def _handle(self, msg: dict[str, Any], received_ns: int, size: int) -> None:
        kind = msg.get("type")
        if kind == "change":
            self._buffer.extend(wire.change_events(msg, received_ns, size, self._bigints))
        elif kind == "initial_data_batch":
            self._buffer.extend(wire.snapshot_events(msg.get("rows") or [], received_ns, size, self._bigints))
            control = msg.get("batch_control") or {}
            if control.get("has_more"):
                self._send(
                    {
                        "type": "next_batch",
                        "subscription_id": self._sub_id,
                        "last_seq_id": control.get("last_seq_id"),
                    }
                )
            else:
                self._ready = True
        elif kind == "subscription_ack":
            self._bigints = self._bigints | wire.wire_bigints(msg.get("schema"))
            if not self._snapshot_wanted and not (msg.get("batch_control") or {}).get("has_more"):
                self._ready = True
        elif kind == "error":
            raise TargetError(
                f"server error for subscription {msg.get('subscription_id')}: {msg.get('code')}: {msg.get('message')}"
            )

    def recv(self, timeout: float) -> Change | None:
        """Next change (snapshot rows first), None after ``timeout`` s, Disconnected when the socket ends."""
        if self._sub_id is None:
            raise TargetError("recv before subscribe")
        deadline = time.monotonic() + timeout
        while not self._buffer:
            if self._dead is not None:
                raise self._dead
            self._pump(max(0.0, deadline - time.monotonic()))
            if not self._buffer and time.monotonic() >= deadline:
                return None
        self._heartbeat()
        change = self._buffer.popleft()
        if change.server_seq is not None and (self._last_seq is None or change.server_seq > self._last_seq):
            self._last_seq = change.server_seq
        return change

    def close(self) -> None:
        """Close with code 1000 (waiting at most a second for the echo); later recv calls raise Disconnected."""
        self._closed = True
        if self._ws is not None and self._dead is None:
            try:
                self._ws.close(status=websocket.STATUS_NORMAL, timeout=CLOSE_TIMEOUT)
            except (OSError, websocket.WebSocketException):
                pass
        self._lost("closed by client", expected=True)
        self._http.close()


class KalamTarget:
    """KalamDB v1 (or the reference server): the factory of admin, writer and listener sessions."""

    features = FEATURES

    def __init__(self, spec: TargetSpec) -> None:
        self.name = spec.name
        self.spec = spec
        self.endpoint = _Endpoint(spec.url)
        opts = spec.options or {}
        self.timeout = float(opts.get("timeout", DEFAULT_TIMEOUT))
        self.compress = bool(opts.get("compress", True))
        self.batch_size = int(opts.get("batch_size", DEFAULT_BATCH_SIZE))
        if not 0 < self.batch_size < PAGE:
            # KalamDB cuts snapshot pages at max_query_limit and may then report has_more:false early
            raise TargetError(f"batch_size must be in 1..{PAGE - 1} (below max_query_limit), not {self.batch_size}")
        self.subscribe_timeout = float(opts.get("subscribe_timeout", DEFAULT_SUBSCRIBE_TIMEOUT))
        self.heartbeat = float(opts.get("heartbeat_interval", DEFAULT_HEARTBEAT))
        root_password = opts.get("root_password") or (spec.password if spec.user == "root" else None)
        self._root_password = str(root_password) if root_password else None
        self._setup_user = str(opts.get("setup_user", "lqh_dba"))

    def admin_credentials(self) -> _Credentials:
        return _Credentials(self.endpoint, self.spec.user, self.spec.password, self._root_password, self._setup_user)

    def _credentials(self, schema: Schema, user: str | None) -> _Credentials:
        if user is None or user == self.spec.user:
            return self.admin_credentials()
        if user not in schema.users:
            raise TargetError(f"no password for user {user!r}: add it to the schema's users")
        return _Credentials(self.endpoint, user, schema.users[user])

    def admin(self) -> KalamAdmin:
        return KalamAdmin(self)

    def writer(self, schema: Schema, user: str | None = None) -> KalamWriter:
        return KalamWriter(self, schema, self._credentials(schema, user))

    def listener(self, schema: Schema, user: str | None = None) -> KalamListener:
        return KalamListener(self, schema, self._credentials(schema, user))
