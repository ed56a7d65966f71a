"""Start ``lqharness serve`` as a subprocess on a free port for tests: ``with start_refserver(tmp_path) as srv:``."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT_PASSWORD = "Root-Pass-123"


@dataclass
class RunningServer:
    """A reference server subprocess: where it listens and how to stop it."""

    url: str
    ws_url: str
    pid: int
    root_password: str | None
    proc: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, wait up to ``timeout`` (then SIGKILL); returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def log(self) -> str:
        """Everything the server printed so far (stdout and stderr)."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@contextlib.contextmanager
def start_refserver(
    tmp_path: Path, *extra_args: str, root_password: str | None = ROOT_PASSWORD, timeout: float = 20.0
) -> Iterator[RunningServer]:
    """Run ``lqharness serve --port 0`` with ``extra_args`` until the block ends; wait for its ready file."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    ready = tmp_path / f"refserver-{time.monotonic_ns()}.json"
    log_path = ready.with_suffix(".log")
    cmd = [sys.executable, "-m", "harness.cli", "serve", "--port", "0", "--ready-file", str(ready), *extra_args]
    if root_password is not None:
        cmd += ["--root-password", root_password]
    env = {k: v for k, v in os.environ.items() if k != "KALAMDB_ROOT_PASSWORD"}
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + timeout
    try:
        while not ready.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"refserver exited with {proc.returncode}: {log_path.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"refserver not ready after {timeout} s: {log_path.read_text(errors='replace')}")
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        server = RunningServer(
            url=info["url"],
            ws_url=info["url"].replace("http://", "ws://", 1) + "/v1/ws",
            pid=info["pid"],
            root_password=root_password,
            proc=proc,
            log_path=log_path,
        )
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


class Http:
    """Raw HTTP calls to a KalamDB-protocol server (urllib; no client library in between)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def request(
        self, method: str, path: str, body: object = None, token: str | None = None, raw: bytes | None = None,
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

    def __init__(self, ws_url: str, compress: bool = False, token_header: str | None = None, timeout: float = 5) -> None:
        import websocket

        url = ws_url + ("" if compress else "?compress=false")
        header = [f"Authorization: Bearer {token_header}"] if token_header else []
        self.ws = websocket.create_connection(url, timeout=timeout, header=header, skip_utf8_validation=True)
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
        self.send({"type": "authenticate", "method": "jwt", "token": token,
                   "protocol": {"serialization": "json", "compression": "gzip"}})
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
