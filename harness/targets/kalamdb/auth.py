"""KalamDB credentials: JWT login, a process-wide token cache and the first-run root password setup.

Every session of one user on one server shares one cached access token, so a run with
hundreds of listeners logs each user in once (KalamDB rate-limits logins per address).
"""

from __future__ import annotations

import collections
import threading
import time
from datetime import datetime
from typing import Any

from harness.targets.base import TargetError
from harness.targets.kalamdb import wire
from harness.targets.kalamdb.transport import Endpoint, Http, TransportError

__all__ = ["Credentials"]

LOGIN_PATH = "/v1/api/auth/login"
SETUP_PATH = "/v1/api/auth/setup"
STATUS_PATH = "/v1/api/auth/status"
LOGIN_ATTEMPTS = 3  # a 429 on login is retried with a short back-off
DEFAULT_SETUP_USER = "lqh_dba"
RENEW_BEFORE_SECONDS = 60  # a token this close to its expiry is renewed rather than used


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


class Credentials:
    """One user's login on one target, with a process-wide token cache and the first-run setup."""

    def __init__(
        self,
        endpoint: Endpoint,
        user: str,
        password: str,
        root_password: str | None = None,
        setup_user: str = DEFAULT_SETUP_USER,
    ) -> None:
        self.endpoint = endpoint
        self.user = user
        self.password = password
        self._root_password = root_password
        self._setup_user = setup_user
        self._key = (endpoint.base_url, user)

    def token(self, http: Http, timeout: float) -> str:
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
        if tok.expires_at is not None and tok.expires_at - time.time() < RENEW_BEFORE_SECONDS:
            return None
        return tok.access

    def invalidate(self, access: str) -> None:
        """Forget ``access`` (the server rejected it), unless another session already replaced it."""
        tok = _TOKENS.get(self._key)
        if tok is not None and tok.access == access:
            del _TOKENS[self._key]

    def _login(self, http: Http) -> str:
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

    def _post_login(self, http: Http, where: str) -> tuple[int, Any]:
        for attempt in range(LOGIN_ATTEMPTS):
            try:
                status, body = http.post(LOGIN_PATH, {"user": self.user, "password": self.password})
            except TransportError as exc:
                raise TargetError(f"{where}: cannot reach the server: {exc}") from None
            if status != 429 or attempt == LOGIN_ATTEMPTS - 1:
                return status, body
            time.sleep(0.5 * 2**attempt)
        raise AssertionError("unreachable")

    def _needs_setup(self, http: Http) -> bool:
        """``GET /v1/api/auth/status`` (local servers only): does root still lack a password?"""
        try:
            status, body = http.request("GET", STATUS_PATH)
        except TransportError:
            return False
        return status == 200 and isinstance(body, dict) and body.get("needs_setup") is True

    def _first_run_setup(self, http: Http, where: str) -> None:
        dba = self.user if self.user != "root" else self._setup_user
        payload = {
            "user": dba,
            "password": self.password,
            "root_password": self._root_password,
            "email": None,
        }
        try:
            status, body = http.post(SETUP_PATH, payload)
        except TransportError as exc:
            raise TargetError(f"{where}: first-run setup: {exc}") from None
        if status not in (200, 409):
            err = wire.error_of(body)
            raise TargetError(f"{where}: first-run setup failed: HTTP {status} {err[0] + ': ' + err[1] if err else ''}")
