"""The KalamDB target's transport: its URL split for HTTP and WebSocket, and one keep-alive HTTP connection.

Knows hosts, ports and JSON bodies, nothing of SQL or tokens beyond the Bearer header.
Transport failures become one-line ``TransportError``s, so callers never see library internals.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

import orjson

from harness.targets.base import TargetError
from harness.targets.http_session import NO_ANSWER, HubSession, describe

__all__ = ["Endpoint", "Http", "TransportError", "describe"]

WS_PATH = "/v1/ws"
DEFAULT_PORT = 2900  # KalamDB's since 0.7 (8080 before): a URL without a port means it


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

    One connection per gevent hub (``harness.targets.http_session``).
    """

    def __init__(self, endpoint: Endpoint, timeout: float) -> None:
        self._endpoint = endpoint
        self._session = HubSession(endpoint.host, endpoint.port, timeout, secure=endpoint.secure)

    def post(self, path: str, payload: Any, token: str | None = None) -> tuple[int, Any]:
        """POST ``payload`` as JSON to ``path``."""
        return self.request("POST", path, orjson.dumps(payload), token)

    def request(self, method: str, path: str, body: bytes = b"", token: str | None = None) -> tuple[int, Any]:
        """One request; raises TransportError when no answer came."""
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        try:
            return self._session.request(method, path, body, headers)
        except NO_ANSWER as exc:
            raise TransportError(f"{self._endpoint.base_url}{path}: {describe(exc)}") from None

    @property
    def base_url(self) -> str:
        """The server this connection talks to."""
        return self._endpoint.base_url

    def close(self) -> None:
        self._session.close()
