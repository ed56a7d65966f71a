"""Live-query fan-out: connections, subscriptions, snapshots and the ordered notification pipeline.

Committed changes go into one ordered pipeline; a dispatcher task matches them against
subscription groups (same table, partition, filter and projection), serializes each change
once per group and splices in each subscription id. Every connection has a bounded queue and
one sender task, so all frames of a connection (acks, batches, changes, errors) keep their order.

Overflow: ``drop`` loses the notification (KalamDB's behaviour, counted and logged); ``block``
makes the dispatcher wait for room, and a consumer still full after ``block_timeout`` seconds is
disconnected with close code 1013 "Notification queue full" — never silently skipped.
"""

from __future__ import annotations

import asyncio
import collections
import gzip
import logging
import struct
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from refserver.engine import CommittedChange
from refserver.exprs import EvalContext, truthy
from refserver.faults import DeliveryStage, Frame
from refserver.generation import GENERATIONS, Generation
from refserver.live_query import LiveQuery, options_json
from refserver.replay import ReplayLog, Scope
from refserver.snowflake import IdSource
from refserver.storage import Store, now_us

log = logging.getLogger("lqrefserver.live")

GZIP_MIN = 512
MAX_SUBS_PER_CONNECTION = 100
MAX_BATCH_SIZE = 1000  # rows per snapshot batch by default, and 0.7's clamp
BLOCK_CLOSE_CODE = 1013
BLOCK_CLOSE_REASON = "Notification queue full"
COALESCE_S = 0.002  # a connection writes at most once per 2 ms; frames queued meanwhile share the write
BATCH_BYTES = 256 * 1024
HIGH_WATER = 64 * 1024


def dumps(obj: Any) -> bytes:
    """JSON bytes of a server message."""
    return orjson.dumps(obj)


@dataclass(eq=False, slots=True)
class Subscription:
    """One live query of one connection."""

    conn: Connection
    sub_id: str
    sql: str
    query: LiveQuery
    options: dict[str, Any] | None
    start_seq: int  # changes at or below this were committed before the subscription existed
    group: Group | None = None
    loading: bool = False
    boundary: int = 0  # snapshot boundary: rows with _seq <= boundary come by batches
    batch_num: int = 0
    buffer: collections.deque = field(default_factory=collections.deque)
    notified: int = 0  # change notifications produced for this subscription (what fault counters count)
    changes: int = 0  # change notifications delivered on the socket (system.live.changes)
    created_at: int = field(default_factory=now_us)
    last_update: int = field(default_factory=now_us)
    held: Frame | None = None  # the reorder fault's withheld notification (owned by the fault stage)
    kind_counts: dict[str, int] = field(default_factory=dict)  # per change type (kept by the fault stage)
    prefix: bytes = b""

    def __post_init__(self) -> None:
        self.prefix = b'{"type":"change","subscription_id":' + dumps(self.sub_id)

    @property
    def live_id(self) -> str:
        return f"{self.conn.user_id}-{self.conn.connection_id}-{self.sub_id}"


class Group:
    """Subscriptions sharing table, partition, filter and projection: one filter run and one body per change."""

    def __init__(self, key: tuple[Any, ...], query: LiveQuery, user: str, ids: IdSource) -> None:
        self.key = key
        self.query = query
        self.subs: list[Subscription] = []
        self.ctx = EvalContext([], [], user, ids)
        table = query.table
        self.pk = table.pk.name
        self.outputs = query.output_columns
        self.plain = [(k, c) for k, c in self.outputs if not c.name.startswith("_")]
        if table.pk.name not in {c.name for _, c in self.plain}:
            self.plain.insert(0, (table.pk.name, table.pk))
        self.stream = table.kind == "STREAM"
        self.version_key = query.version_key

    def matches(self, row: dict[str, Any]) -> bool:
        flt = self.query.filter
        return flt is None or truthy(flt(row, self.ctx))

    def visible(self, change: CommittedChange, transitions: bool) -> CommittedChange | None:
        """The change as this group's subscribers see it, None when the filter hides it.

        Without ``transitions`` (0.4) the filter is checked on the new row only. With them (0.7)
        an update is checked on both rows: entering the filter it is an insert of the new row,
        leaving it a delete whose old values are the old row's key and system columns only
        (upstream's ``project_delete_identity``: ``_deleted`` is false there).
        """
        new = change.new
        assert new is not None
        if change.kind != "update" or not transitions:
            return change if self.matches(new) else None
        old = change.old
        assert old is not None
        was, now = self.matches(old), self.matches(new)
        if was and now:
            return change
        if now:
            return CommittedChange(change.table, change.owner, "insert", new, None, change.seq)
        if was:
            identity = {self.pk: old[self.pk], "_seq": old["_seq"], "_deleted": bool(old.get("_deleted"))}
            return CommittedChange(change.table, change.owner, "delete", identity, old, change.seq)
        return None

    def body(self, change: CommittedChange, no_deleted: bool = False, stale: Mapping[str, Any] | None = None) -> bytes:
        """The part of a change message after ``subscription_id`` (shared by the group).

        ``no_deleted`` leaves ``_deleted`` out of a tombstone and ``stale`` replaces an update's old
        values: both only for the fault stage.
        """
        if change.kind == "insert":
            row = {k: c.encode(change.new.get(c.name)) for k, c in self.outputs}  # type: ignore[union-attr]
            return b',"change_type":"insert","rows":' + dumps([row]) + b"}"
        if change.kind == "update":
            new, old = change.new, change.old
            assert new is not None and old is not None
            rows: dict[str, Any] = {}
            olds: dict[str, Any] = {}
            source = stale if stale is not None else old
            for key, col in self.plain:
                value = new.get(col.name)
                if col.name == self.pk:
                    rows[key] = olds[key] = col.encode(value)
                    continue
                if value is not None:
                    rows[key] = col.encode(value)
                if old.get(col.name) != value:
                    olds[key] = col.encode(source.get(col.name))
            rows[self.version_key] = str(new["_seq"])
            olds[self.version_key] = str(old["_seq"])
            return b',"change_type":"update","rows":' + dumps([rows]) + b',"old_values":' + dumps([olds]) + b"}"
        tomb = change.new
        assert tomb is not None
        if self.stream:
            olds = {"row_id": f"{change.owner}:{change.old['_seq']}"}  # type: ignore[index]
        else:
            # a tombstone holds every column; a filter-leave identity (0.7) only the key and system columns
            olds = {k: c.encode(tomb[c.name]) for k, c in self.outputs if k != "_deleted" and c.name in tomb}
            if not no_deleted and "_deleted" in tomb:
                olds["_deleted"] = bool(tomb["_deleted"])
        return b',"change_type":"delete","old_values":' + dumps([olds]) + b"}"


class Connection:
    """One WebSocket: its identity, subscriptions, bounded outgoing queue and sender task."""

    def __init__(
        self,
        manager: LiveManager,
        ws: web.WebSocketResponse,
        compress: bool,
        transport: asyncio.Transport | None,
    ) -> None:
        self.manager = manager
        self.ws = ws
        self.transport = transport  # data frames are written here directly, several per write when they queue up
        self.compress = compress
        self.connection_id = uuid.uuid4().hex
        self.peer_ip = ""  # the client's address, for the per-IP authentication limit
        self.user_id: str | None = None
        self.role: str | None = None
        self.subs: dict[str, Subscription] = {}
        self.queue: collections.deque[tuple[bytes, Subscription | None, int]] = collections.deque()
        self.wake = asyncio.Event()
        self.room = asyncio.Event()
        self.opened = time.monotonic()
        self.last_activity = time.monotonic()
        self.last_ping_us = now_us()
        self.closed = False
        self.dropped = 0
        self.sender = asyncio.get_running_loop().create_task(self._send_loop())

    @property
    def authenticated(self) -> bool:
        return self.user_id is not None

    def touch(self) -> None:
        """Any incoming frame counts as activity (heartbeat)."""
        self.last_activity = time.monotonic()
        self.last_ping_us = now_us()

    def send_control(self, message: dict[str, Any] | bytes) -> None:
        """Queue a non-change message (ack, batch, error, auth reply); never dropped, keeps order."""
        if not self.closed:
            self.queue.append((message if isinstance(message, bytes) else dumps(message), None, 0))
            self.wake.set()

    def close_after(self, code: int, reason: str) -> None:
        """Close with ``code`` once every frame queued before has been sent."""
        if not self.closed:
            self.queue.append((reason.encode(), None, -code))
            self.wake.set()

    def close_soon(self, code: int, reason: str) -> None:
        """Close the socket with ``code`` from outside the connection's own tasks."""
        if self.closed:
            return
        self.closed = True
        self.room.set()
        asyncio.get_running_loop().create_task(self._close(code, reason))

    async def _close(self, code: int, reason: str) -> None:
        self.sender.cancel()
        try:
            await asyncio.wait_for(self.ws.close(code=code, message=reason.encode()), 5)
        except (TimeoutError, ConnectionError, RuntimeError):
            pass

    async def _send_loop(self) -> None:
        """Write queued frames in order; frames queued within ``COALESCE_S`` of the last write share one write."""
        ws = self.ws
        stage = self.manager.stage
        queue = self.queue
        loop = asyncio.get_running_loop()
        last_write = 0.0
        try:
            while True:
                if not queue:
                    self.wake.clear()
                    await self.wake.wait()
                    continue
                since = loop.time() - last_write
                if since < COALESCE_S:
                    await asyncio.sleep(COALESCE_S - since)
                frames: list[bytes] = []
                delivered: list[Subscription] = []
                size = 0
                while queue and size < BATCH_BYTES:
                    payload, sub, n = queue[0]
                    delay = stage.send_delay(n) if sub is not None else 0.0
                    if n < 0 or (delay and frames):
                        break  # a close or a delayed frame: send what is batched first
                    queue.popleft()
                    if delay:
                        await asyncio.sleep(delay)
                    frames.append(self._frame(payload))
                    size += len(frames[-1])
                    if sub is not None:
                        delivered.append(sub)
                if frames:
                    self._write(b"".join(frames) if len(frames) > 1 else frames[0])
                    last_write = loop.time()
                    stamp = now_us()
                    for sub in delivered:
                        sub.changes += 1
                        sub.last_update = stamp
                    self.room.set()
                    await self._drain()
                elif queue and queue[0][2] < 0:
                    payload, _, n = queue.popleft()
                    self.closed = True
                    await ws.close(code=-n, message=payload)
                    return
        except asyncio.CancelledError:
            raise
        except (ConnectionError, RuntimeError) as exc:
            log.debug("connection %s: send failed: %s", self.connection_id, exc)
            self.closed = True
            self.room.set()

    def _frame(self, payload: bytes) -> bytes:
        """A WebSocket frame (server frames are unmasked): gzip binary when that is smaller, else text."""
        opcode = 0x1
        if self.compress and len(payload) >= GZIP_MIN:
            packed = gzip.compress(payload, compresslevel=6, mtime=0)
            if len(packed) < len(payload):
                payload, opcode = packed, 0x2
        n = len(payload)
        if n < 126:
            head = bytes((0x80 | opcode, n))
        elif n < 65536:
            head = struct.pack("!BBH", 0x80 | opcode, 126, n)
        else:
            head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
        return head + payload

    def _write(self, data: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            raise ConnectionResetError("connection closed")
        transport.write(data)

    async def _drain(self) -> None:
        """Back-pressure: wait while the kernel does not take our bytes (the queue fills meanwhile)."""
        transport = self.transport
        while transport is not None and transport.get_write_buffer_size() > HIGH_WATER:
            if transport.is_closing():
                raise ConnectionResetError("connection closed")
            await asyncio.sleep(0.002)


class LiveManager:
    """All connections and subscriptions, the ordered change pipeline and its dispatcher."""

    def __init__(
        self,
        store: Store,
        ids: IdSource,
        stage: DeliveryStage,
        node_id: int,
        queue_size: int,
        overflow: str,
        block_timeout: float,
        generation: Generation = GENERATIONS["0.4"],
    ) -> None:
        self.store = store
        self.ids = ids  # row versions: subscriptions start after the newest one
        self.generation = generation
        self.replay = ReplayLog() if generation.replay_log else None
        self.incarnation = uuid.uuid4().hex[:16]  # a restart starts a new version history
        self.stage = stage  # the delivery stage every notification passes through (faults, or none)
        self.node_id = node_id
        self.queue_size = queue_size
        self.overflow = overflow
        self.block_timeout = block_timeout
        self.connections: set[Connection] = set()
        self.groups: dict[tuple[str, str], dict[tuple[Any, ...], Group]] = {}
        self.zombies: list[Subscription] = []  # the keep-closed fault's closed-but-listed subscriptions
        self.pending: collections.deque[CommittedChange] = collections.deque()
        self.kick = asyncio.Event()
        self.dropped_total = 0
        self.blocked_disconnects = 0
        self.dispatcher: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.dispatcher = asyncio.get_running_loop().create_task(self._dispatch_loop())

    # ------------------------------------------------------------ registry

    def add_connection(self, conn: Connection) -> None:
        self.connections.add(conn)

    def remove_connection(self, conn: Connection) -> None:
        """Forget a closed connection and its subscriptions (kept listed under the keep-closed fault)."""
        for sub in list(conn.subs.values()):
            self.unsubscribe(conn, sub.sub_id)
        self.connections.discard(conn)
        conn.closed = True
        conn.room.set()
        conn.sender.cancel()

    def subscribe(
        self, conn: Connection, sub_id: str, sql: str, query: LiveQuery, options: dict[str, Any] | None
    ) -> Subscription:
        """Register a subscription (replacing one with the same id on this connection)."""
        if sub_id in conn.subs:
            self.unsubscribe(conn, sub_id, keep=False)
        sub = Subscription(conn, sub_id, sql, query, options, start_seq=self.ids.next())
        user = conn.user_id or ""
        table = query.table
        owner = user if table.per_user else ""
        group_key = (
            tuple(k for k, _ in query.output_columns),
            query.filter_sql,
            user if query.uses_user else None,
        )
        groups = self.groups.setdefault((table.key, owner), {})
        group = groups.get(group_key)
        if group is None:
            group = groups[group_key] = Group(group_key, query, user, self.ids)
        group.subs.append(sub)
        sub.group = group
        conn.subs[sub_id] = sub
        return sub

    def unsubscribe(self, conn: Connection, sub_id: str, keep: bool = True) -> bool:
        """Remove a subscription; under the keep-closed fault it stays listed in ``system.live``."""
        sub = conn.subs.pop(sub_id, None)
        if sub is None:
            return False
        group = sub.group
        if group is not None:
            group.subs.remove(sub)
            if not group.subs:
                key = (sub.query.table.key, self._owner_of(sub))
                groups = self.groups.get(key)
                if groups is not None:
                    groups.pop(group.key, None)
                    if not groups:
                        del self.groups[key]
        if keep and self.stage.keep_closed:
            self.zombies.append(sub)
        return True

    def _owner_of(self, sub: Subscription) -> str:
        return (sub.conn.user_id or "") if sub.query.table.per_user else ""

    def kill(self, live_id: str) -> bool:
        """KILL LIVE QUERY: the subscription vanishes silently; the socket stays open."""
        for conn in list(self.connections):
            for sub in list(conn.subs.values()):
                if sub.live_id == live_id:
                    return self.unsubscribe(conn, sub.sub_id, keep=False)
        return False

    def drop_user(self, user_id: str) -> None:
        """Close sockets of a dropped user (their tokens no longer verify)."""
        for conn in list(self.connections):
            if conn.user_id == user_id:
                conn.close_soon(1008, "User removed")

    def table_dropped(self, key: str) -> None:
        """A dropped table ends its subscriptions."""
        for (table_key, _owner), groups in list(self.groups.items()):
            if table_key == key:
                for group in list(groups.values()):
                    for sub in list(group.subs):
                        self.unsubscribe(sub.conn, sub.sub_id, keep=False)

    # ------------------------------------------------------------ snapshots

    def begin_snapshot(self, sub: Subscription) -> None:
        """Fix the snapshot boundary and start buffering the subscription's changes."""
        query = sub.query
        opts = sub.options or {}
        lower = int(opts.get("from", opts.get("from_seq_id")) or 0)
        binds = self._binds(sub, lower)
        sub.boundary = self.store.db.execute(query.boundary_sql, binds).fetchone()[0] or 0
        sub.loading = True

    def snapshot_batch(self, sub: Subscription, after: int | None) -> dict[str, Any]:
        """The next ``initial_data_batch`` (rows with ``_seq`` in (after, boundary]), ascending by ``_seq``."""
        opts = sub.options or {}
        batch_size = self.batch_size(opts)
        query = sub.query
        start = opts.get("from", opts.get("from_seq_id"))
        lower = int(after if after is not None else (start or 0))
        binds = self._binds(sub, lower)
        binds["__hi"] = sub.boundary
        if opts.get("last_rows") is not None and start is None:
            binds["__n"] = int(opts["last_rows"])
            rows = self.store.db.execute(query.last_rows_sql, binds).fetchall()[::-1]
            has_more = False
        else:
            binds["__n"] = batch_size + 1
            rows = self.store.db.execute(query.snapshot_sql, binds).fetchall()
            has_more = len(rows) > batch_size
            rows = rows[:batch_size]
        seq_index = [k for k, _ in query.output_columns].index(query.version_key)
        last_seq = rows[-1][seq_index] if rows else None
        control = self.batch_control(sub.batch_num, has_more, last_seq)
        sub.batch_num += 1
        return {
            "type": "initial_data_batch",
            "subscription_id": sub.sub_id,
            "rows": [query.snapshot_row(r) for r in rows],
            "batch_control": control,
        }

    def batch_size(self, options: Mapping[str, Any]) -> int:
        """Rows per snapshot batch: ``batch_size`` (default 1000), clamped to 1..1000 under 0.7."""
        given = options.get("batch_size")
        size = MAX_BATCH_SIZE if given is None else int(given)
        return max(1, min(MAX_BATCH_SIZE, size)) if self.generation.clamp_batch_size else size

    def batch_control(self, batch_num: int, has_more: bool, last_seq: int | None) -> dict[str, Any]:
        """KalamDB's batch_control: status ``ready`` when done, else ``loading`` (batch 0) / ``loading_batch``.

        The cursor is a JSON number (0.4) or a decimal string, left out when there is none (0.7).
        """
        status = "ready" if not has_more else ("loading" if batch_num == 0 else "loading_batch")
        control: dict[str, Any] = {"batch_num": batch_num, "has_more": has_more, "status": status}
        if not self.generation.string_cursors:
            control["last_seq_id"] = last_seq
        elif last_seq is not None:
            control["last_seq_id"] = str(last_seq)
        return control

    def scope_of(self, sub: Subscription) -> Scope:
        """The replay-log scope of a subscription: its table and, for per-user tables, its user."""
        return (sub.query.table.key, self._owner_of(sub))

    def track(self, sub: Subscription) -> None:
        """0.7: the replay log keeps the subscription's scope from now on (floor: its snapshot boundary)."""
        if self.replay is not None:
            self.replay.track(self.scope_of(sub), sub.boundary or None)

    def missed(self, sub: Subscription, cursor: int) -> list[CommittedChange] | None:
        """0.7: the changes of the subscription's scope after ``cursor``; None when the replay log does not cover it."""
        return self.replay.changes_after(self.scope_of(sub), cursor) if self.replay is not None else None

    def version_domain(self, sub: Subscription) -> dict[str, Any]:
        """0.7: the version domain of a SHARED-table subscription, which a resume must echo."""
        table = sub.query.table
        return {"history_incarnation": self.incarnation, "table_id": table.key, "scope_id": "shared", "partition_id": 0}

    def replay_to(self, sub: Subscription, changes: list[CommittedChange]) -> None:
        """0.7: queue replayed changes as ``change`` messages, after the frames already queued.

        They pass through the group's filter and the delivery stage like live ones; they are
        queued at once (at most a scope's log), ahead of every change committed after the subscription.
        """
        group = sub.group
        assert group is not None
        conn = sub.conn
        transitions = self.generation.filter_transitions
        for change in self.stage.replay(changes):
            shown = group.visible(change, transitions)
            if shown is None:
                continue
            sub.notified += 1
            for payload, n, control in self.stage.deliver(shown, group, sub, sub.notified, group.body(shown)):
                if control:
                    conn.send_control(payload)
                elif not conn.closed:
                    conn.queue.append((payload, sub, n))
        conn.wake.set()

    def _binds(self, sub: Subscription, lower: int) -> dict[str, Any]:
        binds: dict[str, Any] = {"__lo": lower}
        if sub.query.table.per_user:
            binds["__owner"] = sub.conn.user_id
        if "__user" in sub.query.names:
            binds["__user"] = sub.conn.user_id
        return binds

    def finish_snapshot(self, sub: Subscription) -> None:
        """Snapshot delivered: release buffered changes in order, then go live."""
        sub.loading = False
        conn = sub.conn
        while sub.buffer:
            payload, n = sub.buffer.popleft()
            conn.queue.append((payload, sub, n))
        conn.wake.set()
        conn.room.set()

    # ------------------------------------------------------------ pipeline

    def publish(self, changes: list[CommittedChange]) -> None:
        """Hand committed changes to the dispatcher (called right after commit, in commit order).

        The replay log records them here, synchronously: a resume then sees every committed change.
        """
        if self.replay:
            for change in changes:
                self.replay.record(change)
        if self.groups or self.stage.sees_every_change:
            self.pending.extend(changes)
            self.kick.set()

    async def _dispatch_loop(self) -> None:
        while True:
            await self.kick.wait()
            self.kick.clear()
            while self.pending:
                change = self.pending.popleft()
                blocked = self._fan_out(change)
                for sub, payload, n in blocked:
                    await self._wait_and_put(sub, payload, n)

    def _fan_out(self, change: CommittedChange) -> list[tuple[Subscription, bytes, int]]:
        """Match the change against each group, render its body once, pass it through the stage, offer the frames."""
        stage = self.stage
        stage.observe(change)
        groups = self.groups.get((change.table.key, change.owner))
        if not groups:
            return []
        blocked: list[tuple[Subscription, bytes, int]] = []
        transitions = self.generation.filter_transitions
        for group in list(groups.values()):
            shown = group.visible(change, transitions)
            if change.kind == "update" and (shown is None or shown.kind == "delete") and stage.leaks_filter(change):
                shown = change
            if shown is None:
                continue
            body = group.body(shown)
            for sub in group.subs:
                if change.seq <= sub.start_seq:
                    continue
                sub.notified += 1
                for payload, n, control in stage.deliver(shown, group, sub, sub.notified, body):
                    if control:
                        sub.conn.send_control(payload)
                    else:
                        self._offer(sub, payload, n, blocked)
        return blocked

    def _full(self, sub: Subscription) -> bool:
        if sub.loading:
            return len(sub.buffer) >= self.queue_size
        return len(sub.conn.queue) >= self.queue_size

    def _put(self, sub: Subscription, payload: bytes, n: int) -> None:
        if sub.loading:
            sub.buffer.append((payload, n))
        else:
            conn = sub.conn
            conn.queue.append((payload, sub, n))
            conn.wake.set()

    def _offer(self, sub: Subscription, payload: bytes, n: int, blocked: list[tuple[Subscription, bytes, int]]) -> None:
        conn = sub.conn
        if conn.closed:
            return
        if blocked and any(b[0].conn is conn for b in blocked):
            blocked.append((sub, payload, n))
            return
        if not self._full(sub):
            self._put(sub, payload, n)
            return
        if self.overflow == "drop":
            if sub.loading:
                sub.buffer.popleft()
                sub.buffer.append((payload, n))
            conn.dropped += 1
            self.dropped_total += 1
            if conn.dropped == 1 or conn.dropped % 1000 == 0:
                log.warning("connection %s: queue full, dropped %d notification(s)", conn.connection_id, conn.dropped)
            return
        blocked.append((sub, payload, n))

    async def _wait_and_put(self, sub: Subscription, payload: bytes, n: int) -> None:
        conn = sub.conn
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.block_timeout
        while not conn.closed and self._full(sub):
            remaining = deadline - loop.time()
            if remaining <= 0:
                self.blocked_disconnects += 1
                log.warning(
                    "connection %s (user %s): notification queue full for %.1f s, disconnecting (close %d)",
                    conn.connection_id,
                    conn.user_id,
                    self.block_timeout,
                    BLOCK_CLOSE_CODE,
                )
                conn.close_soon(BLOCK_CLOSE_CODE, BLOCK_CLOSE_REASON)
                return
            conn.room.clear()
            try:
                await asyncio.wait_for(conn.room.wait(), remaining)
            except TimeoutError:
                continue
        if not conn.closed:
            self._put(sub, payload, n)

    # ------------------------------------------------------------ introspection

    def subscriptions(self) -> list[Subscription]:
        return [s for c in self.connections for s in c.subs.values()]

    def live_rows(self) -> list[tuple[Any, ...]]:
        """Rows of ``system.live`` in its column order."""
        skew = self.stage.live_changes_skew
        rows = []
        for sub in self.subscriptions() + self.zombies:
            table = sub.query.table
            rows.append(
                (
                    sub.live_id,
                    sub.conn.connection_id,
                    sub.sub_id,
                    table.namespace,
                    table.name,
                    sub.conn.user_id,
                    sub.sql,
                    options_json(sub.options),
                    "active",
                    sub.created_at,
                    sub.last_update,
                    sub.changes + skew,
                    self.node_id,
                    sub.conn.last_ping_us,
                )
            )
        return rows
