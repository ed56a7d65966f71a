"""Snowflake ids for ``_seq`` and ``SNOWFLAKE_ID()``: 41 bits of ms since 2024-01-01 UTC,
10 bits node, 12 bits sequence."""

from __future__ import annotations

import time
from typing import Protocol

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
_NODE_BITS = 10
_SEQ_BITS = 12
_SEQ_MASK = (1 << _SEQ_BITS) - 1


class IdSource(Protocol):
    """A generator of increasing 64-bit ids (Snowflake ids, or 0.7's row versions)."""

    def next(self) -> int: ...

    def observe(self, seen: int) -> None: ...


class Snowflake:
    """Strictly increasing 64-bit ids; borrows the next millisecond when 4096 ids are used up in one."""

    def __init__(self, node_id: int) -> None:
        if not 0 <= node_id < (1 << _NODE_BITS):
            raise ValueError(f"node id must be in 0..{(1 << _NODE_BITS) - 1}")
        self._node = node_id << _SEQ_BITS
        self._last_ms = 0
        self._seq = 0

    def next(self) -> int:
        """A new id, larger than every id this generator returned before."""
        ms = int(time.time() * 1000) - EPOCH_MS
        if ms > self._last_ms:
            self._last_ms = ms
            self._seq = 0
        else:
            self._seq += 1
            if self._seq > _SEQ_MASK:
                self._last_ms += 1
                self._seq = 0
        return (self._last_ms << (_NODE_BITS + _SEQ_BITS)) | self._node | self._seq

    def observe(self, seen: int) -> None:
        """Never go below an id already stored (a restart on an old data dir, or a clock step back)."""
        ms = seen >> (_NODE_BITS + _SEQ_BITS)
        if ms > self._last_ms:
            self._last_ms = ms
            self._seq = seen & _SEQ_MASK
