"""``KalamTarget``: the KalamDB driver's factory of admin, writer and listener sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING

from harness.targets.base import Schema, TargetError
from harness.targets.kalamdb.auth import Credentials
from harness.targets.kalamdb.generation import MEMORY
from harness.targets.kalamdb.listener import KalamListener
from harness.targets.kalamdb.settings import Settings
from harness.targets.kalamdb.sql import KalamAdmin, KalamWriter
from harness.targets.kalamdb.transport import Endpoint

if TYPE_CHECKING:
    from harness.plan import TargetSpec

__all__ = ["FEATURES", "FEATURES_07", "KalamTarget"]

FEATURES = frozenset({"changes_counter", "resume", "flush", "stats", "user_tables", "jobs"})
FEATURES_07 = frozenset({"resume_replays_changes", "filter_transitions"})
"""What 0.7 adds: a resume inside the replay log replays every change (deletes included); an update
entering a listener's filter arrives as an insert, one leaving it as a delete of key and version only."""


class KalamTarget:
    """KalamDB v1 (or the reference server): the factory of admin, writer and listener sessions."""

    def __init__(self, spec: TargetSpec) -> None:
        self.name = spec.name
        self.spec = spec
        self.settings = Settings.from_spec(spec)

    @property
    def protocol(self) -> str | None:
        """The protocol generation, ``0.7`` or ``0.4``: forced by the ``protocol`` option, else as detected."""
        return self.settings.protocol or MEMORY.generation(self.endpoint.base_url)

    @property
    def features(self) -> frozenset[str]:
        """What the target promises; 0.7's resume and filter promises once the generation is known."""
        return FEATURES | FEATURES_07 if self.protocol == "0.7" else FEATURES

    @property
    def endpoint(self) -> Endpoint:
        return self.settings.endpoint

    def _credentials(self, schema: Schema, user: str | None) -> Credentials:
        if user is None or user == self.spec.user:
            return self.settings.admin_credentials()
        if user not in schema.users:
            raise TargetError(f"no password for user {user!r}: add it to the schema's users")
        return Credentials(self.endpoint, user, schema.users[user])

    def admin(self) -> KalamAdmin:
        return KalamAdmin(self.settings)

    def writer(self, schema: Schema, user: str | None = None) -> KalamWriter:
        return KalamWriter(self.settings, schema, self._credentials(schema, user))

    def listener(self, schema: Schema, user: str | None = None) -> KalamListener:
        return KalamListener(self.settings, schema, self._credentials(schema, user))
