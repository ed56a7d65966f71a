"""The KalamDB driver's settings, read once from ``TargetSpec.options`` and shared by its sessions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from harness.targets.base import TargetError
from harness.targets.kalamdb import wire
from harness.targets.kalamdb.auth import DEFAULT_SETUP_USER, Credentials
from harness.targets.kalamdb.transport import Endpoint

if TYPE_CHECKING:
    from harness.plan import TargetSpec

__all__ = ["Settings"]

DEFAULT_TIMEOUT = 10.0
DEFAULT_BATCH_SIZE = 500  # snapshot rows per batch; below max_query_limit (1000), see protocol 2.4
DEFAULT_SUBSCRIBE_TIMEOUT = 30.0
DEFAULT_HEARTBEAT = 4.0  # the server drops clients silent for client_timeout_secs (10 s by default)


@dataclass(frozen=True, slots=True)
class Settings:
    """Where the server is, how long to wait for it, and how listeners talk to it.

    ``root_password`` is used only for the first-run setup of a fresh server;
    ``setup_user`` is the DBA that setup creates when the harness logs in as root.
    ``table_options`` are KalamDB's own table options by name (``flush_policy``, ...), which
    ``Admin.setup`` writes into the ``CREATE TABLE`` statement. ``protocol`` forces a protocol
    generation (else it is detected); ``ws_auth`` picks how a WebSocket carries the JWT.
    """

    endpoint: Endpoint
    user: str
    password: str
    timeout: float = DEFAULT_TIMEOUT
    compress: bool = True
    batch_size: int = DEFAULT_BATCH_SIZE
    subscribe_timeout: float = DEFAULT_SUBSCRIBE_TIMEOUT
    heartbeat: float = DEFAULT_HEARTBEAT
    root_password: str | None = None
    setup_user: str = DEFAULT_SETUP_USER
    table_options: Mapping[str, str] = field(default_factory=dict)
    protocol: str | None = None  # "0.4" or "0.7" forces the generation; None detects it (generation.py)
    ws_auth: str = "message"  # "message": in-band authenticate (both generations); "subprotocol": 0.7's

    @classmethod
    def from_spec(cls, spec: TargetSpec) -> Settings:
        """Settings of ``spec``; a bad URL or batch size is a one-line TargetError."""
        endpoint = Endpoint(spec.url)
        opts = spec.options or {}
        batch_size = int(opts.get("batch_size", DEFAULT_BATCH_SIZE))
        if not 0 < batch_size < wire.PAGE:
            # KalamDB cuts snapshot pages at max_query_limit and may then report has_more:false early
            raise TargetError(f"batch_size must be in 1..{wire.PAGE - 1} (below max_query_limit), not {batch_size}")
        table_options = opts.get("table_options") or {}
        if not isinstance(table_options, Mapping):
            raise TargetError(f"table_options must map option names to values, not {table_options!r}")
        root_password = opts.get("root_password") or (spec.password if spec.user == "root" else None)
        protocol = opts.get("protocol")
        if protocol is not None and str(protocol) not in wire.GENERATIONS:
            raise TargetError(f"protocol must be one of {', '.join(wire.GENERATIONS)}, not {protocol!r}")
        ws_auth = str(opts.get("ws_auth", "message"))
        if ws_auth not in ("message", "subprotocol"):
            raise TargetError(f"ws_auth must be message or subprotocol, not {ws_auth!r}")
        return cls(
            endpoint=endpoint,
            user=spec.user,
            password=spec.password,
            timeout=float(opts.get("timeout", DEFAULT_TIMEOUT)),
            compress=bool(opts.get("compress", True)),
            batch_size=batch_size,
            subscribe_timeout=float(opts.get("subscribe_timeout", DEFAULT_SUBSCRIBE_TIMEOUT)),
            heartbeat=float(opts.get("heartbeat_interval", DEFAULT_HEARTBEAT)),
            root_password=str(root_password) if root_password else None,
            setup_user=str(opts.get("setup_user", DEFAULT_SETUP_USER)),
            table_options={str(k): str(v) for k, v in table_options.items()},
            protocol=None if protocol is None else str(protocol),
            ws_auth=ws_auth,
        )

    def admin_credentials(self) -> Credentials:
        """The spec's own user, able to run the first-run setup."""
        return Credentials(self.endpoint, self.user, self.password, self.root_password, self.setup_user)
