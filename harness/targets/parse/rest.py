"""Parse Server's REST API as the harness uses it: one keep-alive connection, the admin and writer sessions.

Every request carries the application id and the master key (accepted from loopback only), so
sessions see every object: Parse's per-user visibility (ACLs) is not modelled, and the driver
does not declare ``user_tables``. Objects are created with the harness's key as their
``objectId`` (the launcher sets ``allowCustomObjectId``), so updates and deletes address them
without a lookup.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import orjson

from harness.targets.base import Eq, Outcome, Row, Schema, TargetError, WriteResult
from harness.targets.http_session import NO_ANSWER, HubSession, describe
from harness.targets.parse import commitlog, wire

__all__ = ["Endpoint", "Rest", "ParseAdmin", "ParseWriter", "TransportError"]

PAGE = 1000  # rows per read when the caller sets no limit
ALREADY_EXISTS = 103  # Parse error code: the class (schema) exists


class TransportError(TargetError):
    """The request got no answer (refused, reset, timed out): its effect is unknown."""


class Endpoint:
    """The server URL (``http://host:port/parse``) split for HTTP and the LiveQuery WebSocket."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise TargetError(f"bad Parse URL {url!r}: expected http://host:port/parse")
        try:
            self.port = parts.port or 80
        except ValueError:
            raise TargetError(f"bad port in Parse URL {url!r}") from None
        self.host = parts.hostname
        self.mount = parts.path.rstrip("/") or "/parse"
        self.url = f"http://{self.host}:{self.port}{self.mount}"
        self.ws_url = f"ws://{self.host}:{self.port}{self.mount}"


class Rest:
    """One keep-alive HTTP connection to Parse with the app id and master key on every request.

    One connection per gevent hub (``harness.targets.http_session``).
    """

    def __init__(self, endpoint: Endpoint, app_id: str, master_key: str, timeout: float) -> None:
        self.endpoint = endpoint
        self._headers = {
            "X-Parse-Application-Id": app_id,
            "X-Parse-Master-Key": master_key,
            "Content-Type": "application/json",
        }
        self._session = HubSession(endpoint.host, endpoint.port, timeout)

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """``method`` on ``<mount><path>``; (status, decoded JSON or None). TransportError when no answer came."""
        data = b"" if body is None else orjson.dumps(body)
        url = self.endpoint.mount + path
        try:
            return self._session.request(method, url, data, self._headers)
        except NO_ANSWER as exc:
            raise TransportError(f"{method} {self.endpoint.url}{path}: {describe(exc)}") from None

    def query(self, schema: Schema, filter: Eq | None, limit: int, order: str | None = None) -> list[Row]:
        """``GET /classes/<class>`` with a ``where`` from ``filter``: the matching rows, at most ``limit``."""
        params = {"where": orjson.dumps(wire.where_of(filter)).decode(), "limit": str(limit)}
        if order:
            params["order"] = order
        path = f"/classes/{quote(wire.class_name(schema))}?{urlencode(params)}"
        status, body = self.request("GET", path)
        if status != 200 or not isinstance(body, dict):
            raise TargetError(f"query {wire.class_name(schema)}: {wire.error_text(status, body)}")
        return [row for obj in body.get("results") or [] if (row := wire.row_of(obj, schema)) is not None]

    def close(self) -> None:
        self._session.close()


class ParseAdmin:
    """Class setup and bounded reads. Parse has no changes counter, flush, jobs or statistics to read."""

    def __init__(self, rest: Rest, database_url: str | None = None) -> None:
        self._rest = rest
        self._database_url = database_url  # Parse's PostgreSQL, when the harness runs it: the commit log

    def setup(self, schema: Schema) -> None:
        """Create the class with one field per column (idempotent: an existing class is kept)."""
        body = wire.schema_body(schema)
        try:
            status, reply = self._rest.request("POST", f"/schemas/{quote(body['className'])}", body)
        except TransportError as exc:
            raise TargetError(f"create class {body['className']}: {exc}") from None
        if status != 200 and not (isinstance(reply, dict) and reply.get("code") == ALREADY_EXISTS):
            raise TargetError(f"create class {body['className']}: {wire.error_text(status, reply)}")

    def recent(self, schema: Schema, filter: Eq | None, limit: int, as_user: str | None = None) -> list[Row]:
        """The ``limit`` matching rows with the highest keys, highest first (every user sees every row)."""
        return self._rest.query(schema, filter, limit, order=f"-{schema.key}")

    def count(self, schema: Schema, as_user: str | None = None) -> int:
        """``GET /classes/<class>?count=1&limit=0``: the number of objects in the class.

        With a ``where`` that every object matches: without one, Parse on PostgreSQL answers the
        planner's estimate (``pg_class.reltuples``), not the count.
        """
        where = orjson.dumps({schema.key: {"$exists": True}}).decode()
        path = f"/classes/{quote(wire.class_name(schema))}?{urlencode({'count': 1, 'limit': 0, 'where': where})}"
        status, body = self._rest.request("GET", path)
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("count"), int):
            raise TargetError(f"count {wire.class_name(schema)}: {wire.error_text(status, body)}")
        return int(body["count"])

    def live_subscriptions(self) -> dict[str, int] | None:
        return None

    def track_commits(self, schema: Schema) -> bool:
        """Open a logical decoding slot on the class's table (when the database is reachable)."""
        if self._database_url is None:
            return False
        commitlog.start(self._database_url, wire.class_name(schema))
        return True

    def commits(self, schema: Schema) -> list[tuple[int, int, int, int]] | None:
        """The class's committed updates in commit order, from the slot ``track_commits`` opened."""
        if self._database_url is None:
            return None
        return commitlog.read(self._database_url, wire.class_name(schema))

    def flush(self, schema: Schema) -> str | None:
        return None

    def job_status(self, job_id: str) -> str | None:
        return None

    def stats(self) -> dict[str, str] | None:
        return None

    def server_pid(self) -> int | None:
        return None

    def close(self) -> None:
        self._rest.close()


def _outcome(status: int) -> Outcome:
    """2xx is done; a 5xx may have been applied before it failed; any other answer is a refusal."""
    if 200 <= status < 300:
        return Outcome.OK
    return Outcome.INDETERMINATE if status >= 500 else Outcome.FAILED


class ParseWriter:
    """One writer's REST session: create, update and delete objects one at a time, or several in one ``/batch``."""

    def __init__(self, rest: Rest, schema: Schema) -> None:
        self._rest = rest
        self._schema = schema
        self._class = quote(wire.class_name(schema))
        self._key = schema.key

    def _write(self, method: str, path: str, body: Any) -> WriteResult:
        return self._exchange(method, path, body)[0]

    def _exchange(self, method: str, path: str, body: Any) -> tuple[WriteResult, Any]:
        """One write request: its result, and the reply body (None without an answer)."""
        invoke = time.time_ns()
        try:
            status, reply = self._rest.request(method, path, body)
        except TransportError as exc:
            return WriteResult(Outcome.INDETERMINATE, invoke, time.time_ns(), str(exc)), None
        ack = time.time_ns()
        outcome = _outcome(status)
        error = None if outcome is Outcome.OK else wire.error_text(status, reply)
        return WriteResult(outcome, invoke, ack, error, 1 if outcome is Outcome.OK else None), reply

    def insert(self, row: Row) -> WriteResult:
        return self._write("POST", f"/classes/{self._class}", wire.create_body(row, self._key))

    def update(self, key: Any, changes: Row) -> WriteResult:
        body = {k: v for k, v in changes.items() if k != self._key}
        if not body:
            now = time.time_ns()
            return WriteResult(Outcome.FAILED, now, now, "update without columns to change")
        return self._write("PUT", f"/classes/{self._class}/{quote(str(key))}", body)

    def bump(self, key: Any, changes: Row, counter: str = "version") -> WriteResult:
        """``changes`` with ``{"__op": "Increment"}`` on ``counter``; Parse answers with the counter's new value."""
        body: dict[str, Any] = {k: v for k, v in changes.items() if k not in (self._key, counter)}
        body[counter] = {"__op": "Increment", "amount": 1}
        result, reply = self._exchange("PUT", f"/classes/{self._class}/{quote(str(key))}", body)
        value = reply.get(counter) if isinstance(reply, dict) and result.outcome is Outcome.OK else None
        version = value if isinstance(value, int) and not isinstance(value, bool) else None
        return WriteResult(result.outcome, result.invoke_ns, result.ack_ns, result.error, result.rows_affected, version)

    def delete(self, key: Any) -> WriteResult:
        return self._write("DELETE", f"/classes/{self._class}/{quote(str(key))}", None)

    def insert_batch(self, rows: list[Row]) -> list[WriteResult]:
        """Create ``rows`` with one ``POST /batch``: one result per row, from its own ``success``/``error``.

        The batch is not a transaction: each request succeeds or fails alone. No answer at all
        leaves every row indeterminate.
        """
        path = f"{self._rest.endpoint.mount}/classes/{self._class}"
        requests = [{"method": "POST", "path": path, "body": wire.create_body(row, self._key)} for row in rows]
        invoke = time.time_ns()
        try:
            status, reply = self._rest.request("POST", "/batch", {"requests": requests})
        except TransportError as exc:
            ack = time.time_ns()
            return [WriteResult(Outcome.INDETERMINATE, invoke, ack, str(exc)) for _ in rows]
        ack = time.time_ns()
        if status != 200 or not isinstance(reply, list) or len(reply) != len(rows):
            outcome = Outcome.INDETERMINATE if status == 200 else _outcome(status)  # 200 with a bad body: unknown
            return [WriteResult(outcome, invoke, ack, wire.error_text(status, reply)) for _ in rows]
        return [
            WriteResult(Outcome.OK, invoke, ack, None, 1)
            if isinstance(item, dict) and "success" in item
            else WriteResult(Outcome.FAILED, invoke, ack, wire.error_text(400, (item or {}).get("error")))
            for item in reply
        ]

    def rows(self, filter: Eq | None = None, limit: int | None = None) -> list[Row]:
        """The matching rows (every user sees every row here), at most ``limit`` or ``PAGE``."""
        try:
            return self._rest.query(self._schema, filter, PAGE if limit is None else int(limit))
        except TransportError as exc:
            raise TargetError(f"rows: {exc}") from None

    def close(self) -> None:
        self._rest.close()
