"""The 0.7 server-side replay log: the newest committed changes per (owner user, table) scope.

Bounded as upstream's (``backend/crates/kalamdb-live/src/replay_log.rs``): at most 1,024 changes
per scope and 64 scopes, the least recently used scope evicted; it lives in memory only, so it is
empty after a restart. A scope is tracked from the first subscription to it on. Its floor is the
lowest cursor it can serve: the snapshot boundary of a subscription (the lowest one seen), the
first recorded version when that snapshot was empty, or the newest version pushed out of the log.
A cursor ``from`` is covered when the scope is tracked, has a floor and ``from >= floor``.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

from refserver.engine import CommittedChange

__all__ = ["MAX_CHANGES_PER_SCOPE", "MAX_SCOPES", "ReplayLog", "Scope"]

MAX_CHANGES_PER_SCOPE = 1024
MAX_SCOPES = 64

Scope = tuple[str, str]  # (table key, owner user id or "" for a SHARED table)


@dataclass(slots=True)
class _ScopeLog:
    floor: int | None = None
    floor_from_first: bool = False  # the snapshot was empty: the first recorded version becomes the floor
    changes: collections.deque[CommittedChange] = field(default_factory=collections.deque)


class ReplayLog:
    """Per-scope bounded change logs with least-recently-used eviction of whole scopes."""

    def __init__(self, per_scope: int = MAX_CHANGES_PER_SCOPE, scopes: int = MAX_SCOPES) -> None:
        self.per_scope = per_scope
        self.max_scopes = scopes
        self._scopes: collections.OrderedDict[Scope, _ScopeLog] = collections.OrderedDict()

    def __bool__(self) -> bool:
        return bool(self._scopes)

    def track(self, scope: Scope, snapshot_boundary: int | None) -> None:
        """A subscription to ``scope`` starts; its snapshot ended at ``snapshot_boundary`` (None: no rows)."""
        log = self._scopes.get(scope)
        if log is None:
            while len(self._scopes) >= self.max_scopes:
                self._scopes.popitem(last=False)
            log = self._scopes[scope] = _ScopeLog()
        else:
            self._scopes.move_to_end(scope)
        if snapshot_boundary is None:
            if log.floor is None:
                log.floor_from_first = True
        else:
            log.floor = snapshot_boundary if log.floor is None else min(log.floor, snapshot_boundary)

    def record(self, change: CommittedChange) -> None:
        """Append a committed change to its scope's log, if the scope is tracked."""
        scope = (change.table.key, change.owner)
        log = self._scopes.get(scope)
        if log is None:
            return
        if log.floor is None and log.floor_from_first:
            log.floor = change.seq
        log.changes.append(change)
        if len(log.changes) > self.per_scope:
            log.floor = log.changes.popleft().seq
        self._scopes.move_to_end(scope)

    def changes_after(self, scope: Scope, cursor: int) -> list[CommittedChange] | None:
        """The changes of ``scope`` after ``cursor``, in commit order; None when the log does not cover it."""
        log = self._scopes.get(scope)
        if log is None or log.floor is None or cursor < log.floor:
            return None
        return [c for c in log.changes if c.seq > cursor]
