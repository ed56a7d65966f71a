"""Start ``lqharness serve`` as a subprocess on a free port for tests: ``with start_refserver(tmp_path) as srv:``."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

from harness.orchestration.server import LocalServer, start_local_server

ROOT_PASSWORD = "Root-Pass-123"


@contextlib.contextmanager
def start_refserver(
    tmp_path: Path,
    *extra_args: str,
    root_password: str | None = ROOT_PASSWORD,
    timeout: float = 20.0,
    protocol: str = "0.4",
) -> Iterator[LocalServer]:
    """Run ``lqharness serve --port 0 --protocol P`` with ``extra_args`` until the block ends (None: no root password).

    The tests written for KalamDB 0.4's shapes keep the default; the 0.7 tests pass ``protocol="0.7"``.
    """
    server = start_local_server(
        tmp_path,
        ("--protocol", protocol, *extra_args),
        root_password=root_password,
        first_run=root_password is None,
        name=f"refserver-{time.monotonic_ns()}",
        timeout=timeout,
    )
    try:
        yield server
    finally:
        server.stop()


class Http:
    """Raw HTTP calls to a KalamDB-protocol server (urllib; no client library in between)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def request(
        self,
        method: str,
        path: str,
        body: object = None,
        token: str | None = None,
        raw: bytes | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict]:
        """Status and JSON body of one request."""
        import urllib.error
        import urllib.request

        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        headers = {"Content-Type": content_type}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def login(self, user: str, password: str) -> str:
        status, body = self.request("POST", "/v1/api/auth/login", {"user": user, "password": password})
        assert status == 200, body
        return body["access_token"]

    def sql(self, token: str, sql: str, params: list | None = None, **extra: object) -> tuple[int, dict]:
        body: dict[str, object] = {"sql": sql, **extra}
        if params is not None:
            body["params"] = params
        return self.request("POST", "/v1/api/sql", body, token)

    def ok(self, token: str, sql: str, params: list | None = None) -> list[dict]:
        """Run SQL that must succeed; returns ``results``."""
        status, body = self.sql(token, sql, params)
        assert status == 200 and body["status"] == "success", body
        return body["results"]


class WsClient:
    """A raw WebSocket to ``/v1/ws`` (websocket-client), decoding gzip binary frames."""

    def __init__(
        self,
        ws_url: str,
        compress: bool = False,
        token_header: str | None = None,
        timeout: float = 5,
        subprotocols: list[str] | None = None,
    ) -> None:
        import websocket

        url = ws_url + ("" if compress else "?compress=false")
        header = [f"Authorization: Bearer {token_header}"] if token_header else []
        self.ws = websocket.create_connection(
            url, timeout=timeout, header=header, skip_utf8_validation=True, subprotocols=subprotocols
        )
        self.frames: list[tuple[int, bytes]] = []

    def send(self, message: dict) -> None:
        self.ws.send(json.dumps(message))

    def recv_frame(self, timeout: float = 5) -> tuple[int, bytes]:
        """(opcode, payload) of the next data frame; close frames raise ``ClosedError``."""
        import websocket

        self.ws.settimeout(timeout)
        while True:
            frame = self.ws.recv_data_frame(control_frame=True)[1]
            if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
                code = int.from_bytes(frame.data[:2], "big") if len(frame.data) >= 2 else None
                raise ClosedError(code, frame.data[2:].decode(errors="replace"))
            if frame.opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                return frame.opcode, frame.data

    def recv(self, timeout: float = 5) -> dict:
        import gzip

        opcode, data = self.recv_frame(timeout)
        if data[:2] == b"\x1f\x8b":
            data = gzip.decompress(data)
        return json.loads(data)

    def authenticate(self, token: str) -> dict:
        self.send(
            {
                "type": "authenticate",
                "method": "jwt",
                "token": token,
                "protocol": {"serialization": "json", "compression": "gzip"},
            }
        )
        return self.recv()

    def subscribe(self, sub_id: str, sql: str, options: dict | None = None) -> dict:
        sub: dict[str, object] = {"id": sub_id, "sql": sql}
        if options is not None:
            sub["options"] = options
        self.send({"type": "subscribe", "subscription": sub})
        return self.recv()

    def changes(self, count: int, timeout: float = 5) -> list[dict]:
        """The next ``count`` messages (each must arrive within ``timeout``)."""
        return [self.recv(timeout) for _ in range(count)]

    def wait_close(self, timeout: float = 10) -> tuple[int | None, str]:
        """Read until the server's close frame; returns (code, reason)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.recv_frame(max(0.05, deadline - time.monotonic()))
            except ClosedError as closed:
                return closed.code, closed.reason
        raise TimeoutError("no close frame")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.ws.close(timeout=1)


class ClosedError(Exception):
    """The server sent a close frame."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"closed {code} {reason}")
        self.code = code
        self.reason = reason
