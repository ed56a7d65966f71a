"""Background jobs: ``STORAGE FLUSH TABLE`` runs a real SQLite WAL checkpoint asynchronously,
tracked in ``system.jobs``."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import traceback
import uuid

import orjson

from refserver.catalog import TableDef
from refserver.storage import Store, now_us

log = logging.getLogger("lqrefserver.jobs")


class Jobs:
    """Starts flush jobs and moves them through new → running → completed (or failed / cancelled)."""

    def __init__(self, store: Store, node_id: int) -> None:
        self.store = store
        self.node_id = node_id
        self.pending_writes: dict[str, int] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.writes_since_checkpoint = 0
        self.writes_total = 0  # every committed write since the start (the idle release watches it)

    def note_writes(self, table_key: str, count: int) -> None:
        """Remember that a table has writes not yet flushed."""
        self.pending_writes[table_key] = self.pending_writes.get(table_key, 0) + count
        self.writes_since_checkpoint += count
        self.writes_total += count

    async def checkpoint_loop(self, interval: float = 1.0) -> None:
        """Background auto-flush: checkpoint the WAL in a worker thread once a second when there were writes."""
        while True:
            await asyncio.sleep(interval)
            if self.writes_since_checkpoint:
                self.writes_since_checkpoint = 0
                try:
                    await asyncio.to_thread(_checkpoint, str(self.store.path))
                except sqlite3.Error as exc:
                    log.warning("background checkpoint failed: %s", exc)

    def start_flush(self, table: TableDef) -> str | None:
        """Queue a flush of ``table``; None when it has no pending writes (KalamDB then skips)."""
        pending = self.pending_writes.pop(table.key, 0)
        if pending == 0:
            return None
        job_id = f"FL-{uuid.uuid4().hex[:16]}"
        params = orjson.dumps({"namespace_id": table.namespace, "table_name": table.name, "rows": pending}).decode()
        self.store.put_job(
            {
                "job_id": job_id,
                "job_type": "flush",
                "status": "new",
                "message": None,
                "exception_trace": None,
                "retry_count": 0,
                "created_at": now_us(),
                "node_id": self.node_id,
                "parameters": params,
            }
        )
        self.tasks[job_id] = asyncio.get_running_loop().create_task(self._run(job_id, table, pending))
        return job_id

    async def _run(self, job_id: str, table: TableDef, pending: int) -> None:
        await asyncio.sleep(0)
        self.store.put_job(
            {
                "job_id": job_id,
                "job_type": "flush",
                "status": "running",
                "created_at": now_us(),
                "node_id": self.node_id,
                "started_at": now_us(),
            }
        )
        try:
            frames = await asyncio.to_thread(_checkpoint, str(self.store.path))
            self.store.put_job(
                {
                    "job_id": job_id,
                    "job_type": "flush",
                    "status": "completed",
                    "created_at": now_us(),
                    "node_id": self.node_id,
                    "finished_at": now_us(),
                    "message": (
                        f"Flushed {pending} pending write(s) of '{table.key}'; checkpointed {frames} WAL frame(s)"
                    ),
                }
            )
        except asyncio.CancelledError:
            self.store.put_job(
                {
                    "job_id": job_id,
                    "job_type": "flush",
                    "status": "cancelled",
                    "created_at": now_us(),
                    "node_id": self.node_id,
                    "finished_at": now_us(),
                    "message": "Cancelled",
                }
            )
        except Exception as exc:  # noqa: BLE001 - a failed job is recorded, never raised into the server
            log.warning("job %s failed: %s", job_id, exc)
            self.store.put_job(
                {
                    "job_id": job_id,
                    "job_type": "flush",
                    "status": "failed",
                    "created_at": now_us(),
                    "node_id": self.node_id,
                    "finished_at": now_us(),
                    "message": str(exc),
                    "exception_trace": traceback.format_exc(),
                }
            )
        finally:
            self.tasks.pop(job_id, None)

    def kill(self, job_id: str) -> bool:
        """Cancel a job that has not finished."""
        task = self.tasks.get(job_id)
        if task is None or task.done():
            return False
        task.cancel()
        return True


def _checkpoint(path: str) -> int:
    """Copy the WAL into the database file (PASSIVE: never blocks the server's writers)."""
    db = sqlite3.connect(path, timeout=10)
    try:
        _busy, _log_frames, checkpointed = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return checkpointed
    finally:
        db.close()
