"""Append-only JSON-lines output that survives a crash of the monitor or of the machine.

Each record is written and flushed at once; the file is fsynced every ``fsync_every``
seconds and at close, so at most that window can be lost to a power cut.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import orjson


class JsonlWriter:
    """One JSON object per line, appended to ``path`` (parent folders are created)."""

    def __init__(self, path: Path, fsync_every: float = 2.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab")  # closed by close()
        self._fsync_every = fsync_every
        self._last_fsync = time.monotonic()

    def write(self, record: dict[str, Any]) -> None:
        """Append one record and flush it to the OS."""
        self._file.write(orjson.dumps(record, default=str) + b"\n")  # odd stats values become text
        self._file.flush()
        now = time.monotonic()
        if now - self._last_fsync >= self._fsync_every:
            os.fsync(self._file.fileno())
            self._last_fsync = now

    def close(self) -> None:
        """Flush, fsync and close; safe to call twice."""
        if self._file.closed:
            return
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
