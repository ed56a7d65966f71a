"""Which KalamDB protocol generation a server speaks, remembered per server for the process.

The driver's ``protocol`` option forces one (``0.4`` or ``0.7``); otherwise the first reply
that shows a row-version column decides (``wire.generation_of``: a subscription's schema, or
an HTTP ``SELECT *``). The rules of each generation are in ``wire`` and ``dialect``; this
module only remembers the answer, and the SHARED-table version domains a 0.7 resume echoes.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

__all__ = ["Memory", "MEMORY"]


class Memory:
    """Detected generations by server base URL, and version domains by (server, table)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._generations: dict[str, str] = {}
        self._domains: dict[tuple[str, str], dict[str, Any]] = {}

    def generation(self, base_url: str) -> str | None:
        with self._lock:
            return self._generations.get(base_url)

    def note_generation(self, base_url: str, generation: str) -> None:
        with self._lock:
            self._generations[base_url] = generation

    def domain(self, base_url: str, table: str) -> dict[str, Any] | None:
        with self._lock:
            return self._domains.get((base_url, table))

    def note_domain(self, base_url: str, table: str, domain: Mapping[str, Any] | None) -> None:
        with self._lock:
            if domain is None:
                self._domains.pop((base_url, table), None)
            else:
                self._domains[(base_url, table)] = dict(domain)


MEMORY = Memory()
