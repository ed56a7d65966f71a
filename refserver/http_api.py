"""KalamDB's HTTP API: login/refresh/setup/status, ``POST /v1/api/sql`` and the health routes."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Any, Protocol

import orjson
from aiohttp import web

from refserver import auth
from refserver.accounts import Accounts
from refserver.auth import TokenError
from refserver.engine import Principal, StatementError
from refserver.errors import SqlError
from refserver.storage import UserRecord, now_us
from refserver.system_stats import BUILD_DATE, VERSION

MAX_BODY = 10 << 20  # the application's client_max_size: a larger request body is answered 413
MAX_SQL = 1 << 20
MAX_PARAM = 512 * 1024
LOOPBACK = ("127.0.0.1", "::1", "localhost")
_LOGIN_FIELDS = {"user", "username", "password"}


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _rfc3339(epoch_seconds: float) -> str:
    return dt.datetime.fromtimestamp(epoch_seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def _us_rfc3339(us: int) -> str:
    return _rfc3339(us / 1e6)


async def _read_bounded(request: web.Request) -> bytes | None:
    """The request body, or None when it exceeds the application's ``client_max_size`` (then: 413)."""
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge:
        return None


def _too_large() -> str:
    return f"Request body exceeds {MAX_BODY} bytes"


def _is_local(request: web.Request) -> bool:
    return (request.remote or "") in LOOPBACK


class SqlRunner(Protocol):
    """What ``POST /v1/api/sql`` needs of the engine."""

    def split(self, sql: str) -> list[str]: ...

    def execute(
        self, principal: Principal, statements: Sequence[str], params: list[Any], namespace: str
    ) -> list[dict[str, Any]]: ...


class HttpApi:
    """Route handlers over the server's users (``accounts``) and its SQL engine."""

    def __init__(self, accounts: Accounts, engine: SqlRunner) -> None:
        self.accounts = accounts
        self.engine = engine

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/api/sql", self.sql),
            web.post("/v1/api/auth/login", self.login),
            web.post("/v1/api/auth/refresh", self.refresh),
            web.post("/v1/api/auth/setup", self.setup),
            web.get("/v1/api/auth/status", self.status),
            web.get("/health", self.health),
            web.get("/v1/api/healthcheck", self.health),
        ]

    # ------------------------------------------------------------ health

    async def health(self, request: web.Request) -> web.Response:
        if not _is_local(request):
            return _json({"error": "forbidden", "message": "Health checks are local only"}, 403)
        return _json({"status": "healthy", "version": VERSION, "api_version": "v1", "build_date": BUILD_DATE})

    # ------------------------------------------------------------ auth

    async def _body(self, request: web.Request) -> dict[str, Any] | web.Response:
        raw = await _read_bounded(request)
        if raw is None:
            return _json({"error": "payload_too_large", "message": _too_large()}, 413)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _json({"error": "bad_request", "message": f"Invalid JSON body: {exc}"}, 400)
        if not isinstance(body, dict):
            return _json({"error": "bad_request", "message": "Expected a JSON object"}, 400)
        return body

    def _token_body(self, record: UserRecord) -> dict[str, Any]:
        tokens = self.accounts.tokens
        access, access_exp = tokens.issue(record.user_id, record.role, "access")
        refresh, refresh_exp = tokens.issue(record.user_id, record.role, "refresh")
        return {
            "user": {
                "id": record.user_id,
                "role": record.role,
                "email": record.email,
                "created_at": _us_rfc3339(record.created_at),
                "updated_at": _us_rfc3339(record.updated_at),
            },
            "admin_ui_access": record.role in ("dba", "system"),
            "expires_at": _rfc3339(access_exp),
            "access_token": access,
            "refresh_token": refresh,
            "refresh_expires_at": _rfc3339(refresh_exp),
        }

    async def login(self, request: web.Request) -> web.Response:
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        unknown = set(body) - _LOGIN_FIELDS
        user = body.get("user", body.get("username"))
        password = body.get("password")
        if unknown or not isinstance(user, str) or not isinstance(password, str):
            detail = f"unknown field `{sorted(unknown)[0]}`" if unknown else "expected `user` and `password` strings"
            return _json({"error": "bad_request", "message": f"Invalid login request: {detail}"}, 400)
        if len(user) > 128 or len(password) > 256:
            return _json({"error": "bad_request", "message": "User or password too long"}, 400)
        record = self.accounts.user(user)
        if record is not None and record.password_hash == "":
            if not _is_local(request):
                return _json({"error": "forbidden", "message": "Root has no password; run setup locally"}, 403)
            return _json({"error": "setup_required", "message": "Server setup required: root has no password"}, 428)
        if record is None or not password or not auth.verify_password(password, record.password_hash):
            return _json({"error": "unauthorized", "message": "Invalid username or password"}, 401)
        if record.role == "system" and not _is_local(request):
            return _json({"error": "forbidden", "message": "System users may log in from localhost only"}, 403)
        self.accounts.touch(record.user_id)
        return _json(self._token_body(record))

    async def refresh(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else request.cookies.get("auth_token", "")
        if not token:
            return _json({"error": "unauthorized", "message": "Missing refresh token"}, 401)
        try:
            claims = self.accounts.tokens.verify(token, "refresh")
        except TokenError:
            try:
                claims = self.accounts.tokens.verify(token, "access")
            except TokenError as exc:
                return _json({"error": "unauthorized", "message": exc.message}, 401)
        record = self.accounts.user(claims.user_id)
        if record is None:
            return _json({"error": "unauthorized", "message": "User no longer exists"}, 401)
        return _json(self._token_body(record))

    async def status(self, request: web.Request) -> web.Response:
        if not _is_local(request):
            return _json({"error": "forbidden", "message": "Setup status is local only"}, 403)
        needs = self.accounts.needs_setup()
        message = "Server requires initial setup" if needs else "Server is set up"
        return _json({"needs_setup": needs, "message": message})

    async def setup(self, request: web.Request) -> web.Response:
        if not _is_local(request):
            return _json({"error": "forbidden", "message": "Setup is allowed from localhost only"}, 403)
        if not self.accounts.needs_setup():
            return _json({"error": "already_configured", "message": "Server is already set up"}, 409)
        body = await self._body(request)
        if isinstance(body, web.Response):
            return body
        user, password, root_password = body.get("user"), body.get("password"), body.get("root_password")
        email = body.get("email")
        if not all(isinstance(v, str) and v for v in (user, password, root_password)):
            return _json({"error": "bad_request", "message": "Expected user, password and root_password"}, 400)
        assert isinstance(user, str) and isinstance(password, str) and isinstance(root_password, str)
        if user == "root" or self.accounts.user(user) is not None:
            return _json({"error": "bad_request", "message": f"User '{user}' cannot be created"}, 400)
        try:
            auth.check_password(password)
            auth.check_password(root_password)
        except SqlError as exc:
            return _json({"error": "weak_password", "message": exc.message}, 400)
        self.accounts.set_root_password(root_password)
        now = now_us()
        self.accounts.add(
            UserRecord(user, auth.hash_password(password), "dba", email if isinstance(email, str) else None, now, now)
        )
        return _json({"message": f"Setup complete: root password set and DBA user '{user}' created"})

    # ------------------------------------------------------------ SQL

    async def sql(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        header = request.headers.get("Authorization")
        if not header:
            return _auth_error("MISSING_AUTHORIZATION", "Missing Authorization header", started)
        if not header.startswith(("Bearer ", "bearer ")):
            return _auth_error("INVALID_CREDENTIALS", "Only Bearer tokens are accepted", started)
        try:
            principal = self.accounts.principal_for(header[7:].strip())
        except TokenError as exc:
            return _auth_error(exc.code, exc.message, started)
        if not request.content_type == "application/json":
            return _sql_error("INVALID_INPUT", "Content-Type must be application/json", started, 400)
        raw = await _read_bounded(request)
        if raw is None:
            return _sql_error("INVALID_INPUT", _too_large(), started, 413)
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return _sql_error("INVALID_INPUT", f"Invalid JSON body: {exc}", started, 400)
        if not isinstance(body, dict) or not isinstance(body.get("sql"), str):
            return _sql_error("INVALID_INPUT", "Body must be a JSON object with a `sql` string", started, 400)
        sql = body["sql"]
        params = body.get("params") or []
        namespace = body.get("namespace_id") or "default"
        if len(sql) > MAX_SQL:
            return _sql_error("INVALID_INPUT", "SQL exceeds 1 MB", started, 400)
        if not isinstance(params, list) or not isinstance(namespace, str):
            return _sql_error("INVALID_PARAMETER", "`params` must be an array, `namespace_id` a string", started, 400)
        if len(params) > 50 or any(isinstance(p, str) and len(p) > MAX_PARAM for p in params):
            return _sql_error("INVALID_PARAMETER", "At most 50 parameters of at most 512 KB each", started, 400)
        statements = self.engine.split(sql)
        if not statements:
            return _sql_error("EMPTY_SQL", "SQL is empty", started, 400)
        if params and len(statements) > 1:
            return _sql_error("PARAMS_WITH_BATCH", "Parameters cannot be used with multiple statements", started, 400)
        try:
            results = self.engine.execute(principal, statements, params, namespace.lower())
        except StatementError as exc:
            details = sql if principal.role in ("dba", "system") else None
            return _sql_error(exc.error.code, str(exc), started, exc.error.http_status, details)
        took = round((time.perf_counter() - started) * 1000, 3)
        response: dict[str, Any] = {"status": "success", "results": results, "took": took}
        if len(statements) == 1 and "schema" in results[0] and "rows" in results[0]:
            response["error"] = None
        return _json(response)


def _auth_error(code: str, message: str, started: float) -> web.Response:
    status = 403 if code in ("REMOTE_ACCESS_DENIED", "INSUFFICIENT_PERMISSIONS") else 401
    return _sql_error(code, message, started, status)


def _sql_error(code: str, message: str, started: float, status: int, details: str | None = None) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    took = round((time.perf_counter() - started) * 1000, 3)
    return _json({"status": "error", "results": [], "took": took, "error": error}, status)
