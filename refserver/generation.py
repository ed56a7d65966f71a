"""The two KalamDB protocol generations the reference server speaks (``lqharness serve --protocol``).

0.4 is KalamDB 0.4.3 (``docs/kalamdb-protocol.md`` sections 1-7): Snowflake ``_seq``, numeric
cursors, a resume that re-reads current rows, the filter checked on the new row only. 0.7 is
KalamDB 0.7.1 (section 8 there, and ``docs/kalamdb-0.7.md`` here): ``_version`` ids that are not
timestamps, string cursors, a bounded server-side replay log, filter enter/leave as insert/delete,
``batch_size`` clamped to 1..1000, absent cursors omitted, SHARED tables echoing a version domain
and their subscriptions governed by row-level policies (``CREATE POLICY``).
Storage keeps the one ``_seq`` column either way; only what clients see is renamed.
"""

from __future__ import annotations

from dataclasses import dataclass

from refserver.snowflake import IdSource, Snowflake

__all__ = ["GENERATIONS", "Generation", "VersionIds"]

VERSION_SHIFT = 16  # 0.7 ids: (log index << 16) | ordinal


@dataclass(frozen=True, slots=True)
class Generation:
    """What differs on the wire between KalamDB 0.4 and 0.7 (see the module docstring)."""

    name: str
    version_column: str  # the row-version column clients see: ``_seq`` or ``_version``
    string_cursors: bool  # ``options.from`` and ``last_seq_id`` as decimal strings
    replay_log: bool  # a resume inside the server's log replays the missed changes
    filter_transitions: bool  # an update entering the filter is an insert, one leaving it a key-only delete
    clamp_batch_size: bool  # batch_size clamped to 1..1000 instead of refused when 0
    omit_absent_cursor: bool  # batch_control.last_seq_id left out when there is none
    version_domain: bool  # SHARED tables: batch_control.version_domain, echoed with ``from``
    jwt_subprotocol: bool  # the JWT may come as the ``kalamdb.jwt.<token>`` WebSocket subprotocol
    default_port: int
    row_policies: bool = False  # SHARED subscriptions under CREATE POLICY, not ACCESS_LEVEL (refserver.policies)

    def version_ids(self, node_id: int) -> IdSource:
        """The generator of row versions: Snowflake ids (0.4) or log-index ids (0.7)."""
        return VersionIds() if self.name == "0.7" else Snowflake(node_id)


GENERATIONS: dict[str, Generation] = {
    "0.4": Generation("0.4", "_seq", False, False, False, False, False, False, False, 8080),
    "0.7": Generation("0.7", "_version", True, True, True, True, True, True, True, 2900, row_policies=True),
}


class VersionIds:
    """0.7 row versions: ``(log index << 16) | ordinal``, unique and increasing, with gaps; not a timestamp.

    Each version takes the next log index (ordinal 0), as a single-node server that commits one
    change per Raft entry would; ``observe`` continues above the versions already stored.
    """

    def __init__(self) -> None:
        self._index = 0

    def next(self) -> int:
        self._index += 1
        return self._index << VERSION_SHIFT

    def observe(self, seen: int) -> None:
        self._index = max(self._index, seen >> VERSION_SHIFT)
