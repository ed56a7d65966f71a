"""A keep-alive JSON-over-HTTP connection for the drivers, one per gevent hub.

geventhttpclient sockets belong to the gevent hub of the thread that made them, so a session
used from another thread transparently opens its own connection there. Each driver adds its own
headers, paths and error type; the connection, the no-answer cases and the JSON decoding are here.
"""

from __future__ import annotations

from typing import Any

import gevent
import orjson
from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPParseError

__all__ = ["NO_ANSWER", "HubSession", "describe"]

# what a request raises when it got no answer (refused, reset, timed out): its effect is unknown
NO_ANSWER = (OSError, HTTPParseError, gevent.Timeout, RuntimeError)


def describe(exc: BaseException) -> str:
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


class HubSession:
    """One keep-alive connection to ``host:port`` per gevent hub; ``request`` returns (status, JSON or None)."""

    def __init__(self, host: str, port: int, timeout: float, secure: bool = False) -> None:
        self._host, self._port, self._timeout, self._secure = host, port, timeout, secure
        self._client: HTTPClient | None = None
        self._hub: Any = None

    def _get(self) -> HTTPClient:
        hub = gevent.get_hub()
        if self._client is None or self._hub is not hub:
            self._client = HTTPClient(
                self._host,
                port=self._port,
                ssl=self._secure,
                concurrency=1,
                connection_timeout=self._timeout,
                network_timeout=self._timeout,
            )
            self._hub = hub
        return self._client

    def request(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
        """One request: (status, the decoded JSON body or None). Raises one of ``NO_ANSWER`` when none came."""
        with self._get().request(method, path, body=body, headers=headers) as resp:
            status, data = resp.status_code, resp.read()
        try:
            return status, orjson.loads(data) if data else None
        except orjson.JSONDecodeError:
            return status, None

    def close(self) -> None:
        """Close this hub's connection (another hub's is left to its own thread)."""
        if self._client is not None and self._hub is gevent.get_hub():
            self._client.close()
        self._client = None
