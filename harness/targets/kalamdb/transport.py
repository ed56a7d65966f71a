"""The KalamDB target's transport: its URL split for HTTP and WebSocket, and one keep-alive HTTP connection.

Knows hosts, ports and JSON bodies, nothing of SQL or tokens beyond the Bearer header.
Transport failures become one-line ``TransportError``s, so callers never see library internals.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import gevent
import orjson
from geventhttpclient import HTTPClient
from geventhttpclient.response import HTTPParseError

from harness.targets.base import TargetError

__all__ = ["Endpoint", "Http", "TransportError", "describe"]

WS_PATH = "/v1/ws"
DEFAULT_PORT = 2900  # KalamDB's since 0.7 (8080 before): a URL without a port means it


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


class TransportError(TargetError):
    """The request got no answer (refused, reset, timed out): its effect is unknown."""


class Endpoint:
    """The target's base URL split into what HTTP and WebSocket clients need."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise TargetError(f"bad KalamDB URL {url!r}: expected http://host:port")
        self.secure = parts.scheme == "https"
        self.host = parts.hostname
        try:
            self.port = parts.port or (443 if self.secure else DEFAULT_PORT)
        except ValueError:
            raise TargetError(f"bad port in KalamDB URL {url!r}") from None
        netloc = f"[{self.host}]" if ":" in self.host else self.host
        self.base_url = f"{parts.scheme}://{netloc}:{self.port}"
        self.ws_url = f"{'wss' if self.secure else 'ws'}://{netloc}:{self.port}{WS_PATH}"

    @property
    def loopback(self) -> bool:
        """True when the host is this machine (``localhost`` or a loopback address)."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


class Http:
    """One keep-alive HTTP connection posting JSON; returns (status, decoded body or None).

    geventhttpclient sockets belong to the gevent hub of the thread that made them, so a
    session used from another thread transparently opens its own connection there.
    """

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
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
        """POST ``payload`` as JSON to ``path``."""
        return self.request("POST", path, orjson.dumps(payload), token)

    def request(self, method: str, path: str, body: bytes = b"", token: str | None = None) -> tuple[int, Any]:
        """One request; raises TransportError when no answer came."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            with self._get().request(method, path, body=body, headers=headers) as resp:
                status, data = resp.status_code, resp.read()
        except (OSError, HTTPParseError, gevent.Timeout, RuntimeError) as exc:
            raise TransportError(f"{self._endpoint.base_url}{path}: {describe(exc)}") from None
        try:
            return status, orjson.loads(data) if data else None
        except orjson.JSONDecodeError:
            return status, None

    @property
    def base_url(self) -> str:
        """The server this connection talks to."""
        return self._endpoint.base_url

    def close(self) -> None:
        if self._client is not None and self._hub is gevent.get_hub():
            self._client.close()
        self._client = None
