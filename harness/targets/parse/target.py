"""``ParseTarget``: the Parse driver's factory of admin, writer and listener sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.targets.base import Schema
from harness.targets.parse.listener import ParseListener
from harness.targets.parse.rest import Endpoint, ParseAdmin, ParseWriter, Rest

if TYPE_CHECKING:
    from harness.plan import TargetSpec

__all__ = ["FEATURES", "LACKS", "ParseTarget"]

DEFAULT_TIMEOUT = 10.0
FEATURES: frozenset[str] = frozenset()
# What Parse Server 9.10.0 LiveQuery does not have, by the feature names other targets declare, and why.
LACKS = {
    "changes_counter": "LiveQuery keeps no per-subscription count of the events it sent",
    "resume": "events carry no sequence number and a new subscription starts from now",
    "commit_order": "events carry no commit sequence (only updatedAt, in milliseconds)",
    "user_tables": "the driver acts with the master key; per-user visibility (ACLs) is not modelled",
    "flush": "there is no storage flush to start",
    "stats": "there are no server statistics to read",
    "jobs": "there are no server jobs",
}


class ParseTarget:
    """Parse Server + LiveQuery at ``spec.url`` (``http://host:port/parse``), app id ``spec.user``,
    master key ``spec.password``."""

    features = FEATURES
    lacks = LACKS

    def __init__(self, spec: TargetSpec) -> None:
        self.name = spec.name
        self.spec = spec
        self.endpoint = Endpoint(spec.url)
        self.timeout = float((spec.options or {}).get("timeout", DEFAULT_TIMEOUT))

    @property
    def protocol(self) -> str | None:
        """None: Parse has no protocol generations for the harness to tell apart."""
        return None

    def _rest(self) -> Rest:
        return Rest(self.endpoint, self.spec.user, self.spec.password, self.timeout)

    def admin(self) -> ParseAdmin:
        return ParseAdmin(self._rest(), (self.spec.options or {}).get("database_url"))

    def writer(self, schema: Schema, user: str | None = None) -> ParseWriter:
        """A writer session (every session uses the master key, whichever ``user`` is asked for)."""
        return ParseWriter(self._rest(), schema)

    def listener(self, schema: Schema, user: str | None = None) -> ParseListener:
        """A LiveQuery listener (master key, whichever ``user`` is asked for)."""
        return ParseListener(self.endpoint.ws_url, self.spec.user, self.spec.password, schema, self.timeout)
