"""Writer users: each drives one group of writer streams through their programs.

A stream writes rows carrying its identity (see ``harness.delivery.identity``), one operation in
flight at a time, and records every outcome in its ledger. Streams of one user take
turns. Writers start only when the coordinator says every listener is ready, and their
programs' clocks start then (a leading ``pause`` staggers a writer's start, as ramps do).
"""

from __future__ import annotations

import random
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import gevent

from harness.delivery.identity import bump_changes, insert_row, row_id, update_changes
from harness.delivery.ledger import WriterLedger
from harness.plan import Step, WriterSpec
from harness.targets.base import Outcome, TargetError, WriteResult, WriterSession
from locustfiles import joiners
from locustfiles.context import RunContext
from locustfiles.link import UserLink
from locustfiles.messages import WriterFinal
from locustfiles.users import OneShotUser

MIX_OPS = ("insert", "update", "delete")
SLEEP_SLICE_SECONDS = 0.5  # longest sleep of the stream loop, so a stop is seen promptly
PHASE_STEP = 0.6180339887498949  # the golden ratio's fraction: writer ids 1, 2, 3, ... spread evenly over a period
SHARED_OWNER = 1  # the writer whose first rows ``bump`` steps contend on


class LiveRows:
    """The writer's live rows, oldest first, with their versions and the update cursor.

    Deletes take the oldest row, updates cycle over live rows oldest first; a row whose
    state became unknown (an indeterminate or failed update/delete) is retired.
    """

    def __init__(self) -> None:
        self._rows: list[int] = []
        self._head = 0
        self._cursor = 0
        self.versions: dict[int, int] = {}
        self.wseqs: dict[int, int] = {}  # row -> wseq of its current version
        self.moved: dict[int, int] = {}  # row -> its conversation, for rows moved out of the writer's own
        self.left: dict[int, set[int]] = {}  # row -> the conversations it has left

    def __len__(self) -> int:
        return len(self._rows) - self._head

    def add(self, n: int, wseq: int) -> None:
        self._rows.append(n)
        self.versions[n] = 1
        self.wseqs[n] = wseq

    def oldest(self) -> int | None:
        return self._rows[self._head] if len(self) else None

    def next_to_update(self) -> int | None:
        if not len(self):
            return None
        if self._cursor < self._head or self._cursor >= len(self._rows):
            self._cursor = self._head
        n = self._rows[self._cursor]
        self._cursor += 1
        return n

    def next_to_move(self, home: int, to: int) -> int | None:
        """The next row, cycling as updates do, that is not in ``to`` and has never left the conversation it is in.

        A row then leaves each conversation at most once, so the checker can pair every filter-leave a
        listener receives with the move that made it (``WriterLedger.left``).
        """
        for _ in range(len(self)):
            n = self.next_to_update()
            if n is None:
                return None
            where = self.moved.get(n, home)
            if where != to and where not in self.left.get(n, ()):
                return n
        return None

    def remove(self, n: int) -> None:
        """Forget row ``n`` (deleted or retired)."""
        self.versions.pop(n, None)
        self.wseqs.pop(n, None)
        self.moved.pop(n, None)
        self.left.pop(n, None)
        if len(self) and self._rows[self._head] == n:
            self._head += 1
        else:
            i = bisect_left(self._rows, n, self._head)
            if i < len(self._rows) and self._rows[i] == n:
                del self._rows[i]
                if i < self._cursor:
                    self._cursor -= 1
        if self._head > 1024 and self._head * 2 > len(self._rows):
            del self._rows[: self._head]
            self._cursor = max(0, self._cursor - self._head)
            self._head = 0


class WriterStream:
    """One writer stream: its program cursor, live rows, sequence numbers and ledger."""

    def __init__(self, spec: WriterSpec, payload_bytes: int, deadline: float) -> None:
        self.spec = spec
        self.payload_bytes = payload_bytes
        self.deadline = deadline  # time.monotonic() bound of the whole program
        self.ledger = WriterLedger(spec.writer_id, spec.conversation_id)
        self.rows = LiveRows()
        self.wseq = 0
        self.n = 0
        self.skipped = 0  # update/delete steps with no live row to act on
        self.stopped = False  # Locust stopped the user during a write
        self.last_delete = 0  # row number of the last delete attempted: every later write carries it
        self._rng = random.Random(spec.writer_id)
        self._step = -1
        self._step_ops = 0
        self._step_started = 0.0
        self._next_at = 0.0
        # where in its period this stream's paced operations fall: spread over the writers, so streams of
        # one rate that start together do not send their requests in one burst each period
        self._phase = (spec.writer_id * PHASE_STEP) % 1.0
        self._advance(time.monotonic())

    def start(self) -> None:
        """(Re)start the program now: time-bound steps and leading pauses count from this moment."""
        self._step = -1
        self._advance(time.monotonic())

    @property
    def done(self) -> bool:
        return self._step >= len(self.spec.program) or time.monotonic() >= self.deadline

    def _advance(self, now: float) -> None:
        self._step += 1
        self._step_ops = 0
        self._step_started = now
        program = self.spec.program
        step = program[self._step] if self._step < len(program) else None
        rate = step.rate if step is not None and step.op != "pause" else None
        self._next_at = now + (self._phase / rate if rate else 0.0)

    def _current(self, now: float) -> Step | None:
        """The step in force at ``now``, moving past finished ones."""
        while self._step < len(self.spec.program):
            step = self.spec.program[self._step]
            elapsed = now - self._step_started
            if step.op == "pause":
                if elapsed < (step.seconds or 0.0):
                    return step
            elif not (step.count is not None and self._step_ops >= step.count) and not (
                step.seconds is not None and elapsed >= step.seconds
            ):
                return step
            self._advance(now)
        return None

    def next_due(self) -> float:
        """Monotonic time at which this stream wants to act next (inf when done)."""
        now = time.monotonic()
        step = self._current(now)
        if step is None or now >= self.deadline:
            return float("inf")
        if step.op == "pause":
            return self._step_started + (step.seconds or 0.0)
        return self._next_at

    def act(self, session: WriterSession) -> tuple[str, WriteResult] | None:
        """Do the current step's next operation if it is due; return (op, result), None if nothing done.

        Locust stopping the user mid-write (``GreenletExit``) leaves that write indeterminate in the
        ledger, since it may have committed, and then stops the user.
        """
        acted = self._act(session)
        if self.stopped:
            raise gevent.GreenletExit
        return acted

    def _call(self, write: Callable[[], WriteResult]) -> WriteResult:
        """``write()``, or an indeterminate result when Locust stops the user while it waits for the answer."""
        invoked = time.time_ns()
        try:
            return write()
        except gevent.GreenletExit:
            self.stopped = True
            return WriteResult(Outcome.INDETERMINATE, invoked, time.time_ns(), "writer stopped by Locust mid-write")

    def _act(self, session: WriterSession) -> tuple[str, WriteResult] | None:
        now = time.monotonic()
        step = self._current(now)
        if step is None or step.op == "pause" or now < self._next_at or now >= self.deadline:
            return None
        self._step_ops += 1
        interval = 1.0 / step.rate if step.rate else 0.0
        # Due one interval after this operation was due, not after it ran: the loop's wake-up overshoot
        # would otherwise slow every writer below its rate (a ramp reads a shortfall as the server's).
        # A writer more than an interval behind restarts its schedule rather than bursting to catch up.
        self._next_at = max(self._next_at, now - interval) + interval
        op = step.op if step.op != "mix" else self._pick(step.weights or {})
        if op == "insert":
            return op, self._insert(session)
        if op == "bump":
            return "update", self._bump(session, self._rng.randint(1, step.rows or 1))
        if op == "move":
            to = int(step.to or 0)
            moving = self.rows.next_to_move(self.spec.conversation_id, to)
            if moving is None:
                self.skipped += 1
                return None
            return "update", self._update(session, moving, to)
        target = self.rows.oldest() if op == "delete" else self.rows.next_to_update()
        if target is None:
            self.skipped += 1
            return None
        return op, (self._delete(session, target) if op == "delete" else self._update(session, target))

    def _pick(self, weights: dict[str, float]) -> str:
        ops = [op for op in MIX_OPS if weights.get(op, 0) > 0]
        if not ops:
            return "insert"
        return self._rng.choices(ops, weights=[weights[op] for op in ops])[0]

    def _insert(self, session: WriterSession) -> WriteResult:
        self.wseq += 1
        self.n += 1
        spec = self.spec
        row = insert_row(
            spec.writer_id, spec.conversation_id, self.n, self.wseq, _now_us(), self.payload_bytes, self.last_delete
        )
        result = self._call(lambda: session.insert(row))
        self.ledger.record("insert", self.wseq, result)
        if result.outcome is Outcome.OK:
            self.rows.add(self.n, self.wseq)
        return result

    def _update(self, session: WriterSession, n: int, to: int | None = None) -> WriteResult:
        """Update row ``n`` to its next version; with ``to``, also move it to conversation ``to``."""
        self.wseq += 1
        rid = row_id(self.spec.writer_id, n)
        version = self.rows.versions[n] + 1
        home = self.spec.conversation_id
        where = self.rows.moved.get(n, home)
        changes = update_changes(rid, version, self.wseq, _now_us(), self.payload_bytes, self.last_delete)
        if to is not None:
            changes["conversation_id"] = to
        result = self._call(lambda: session.update(rid, changes))
        after = where if to is None else to
        self.ledger.record("update", self.wseq, result, supersedes=self.rows.wseqs[n], conversation=after)
        if to is not None:
            self.ledger.record_move(self.wseq, n, where, to, result)
            if result.outcome is not Outcome.FAILED:
                self.rows.left.setdefault(n, set()).add(where)
        if result.outcome is Outcome.OK:
            self.rows.versions[n] = version
            self.rows.wseqs[n] = self.wseq
            if after == home:
                self.rows.moved.pop(n, None)
            else:
                self.rows.moved[n] = after
        elif result.outcome is Outcome.INDETERMINATE:
            self.rows.remove(n)  # its version is unknown now: never touch it again
        return result

    def _bump(self, session: WriterSession, n: int) -> WriteResult:
        """Update shared row ``n`` with the server incrementing its version; other writers may bump it too.

        An acknowledged bump that changed no row (the row is not there yet) did not happen: it is failed.
        """
        self.wseq += 1
        rid = row_id(SHARED_OWNER, n)
        changes = bump_changes(self.spec.writer_id, self.wseq, _now_us(), self.payload_bytes)
        result = self._call(lambda: session.bump(rid, changes))
        if result.outcome is Outcome.OK and result.rows_affected == 0:
            result = replace(result, outcome=Outcome.FAILED, error=f"bump of row {n}: no such row")
        self.ledger.record_bump(self.wseq, rid, result)
        return result

    def _delete(self, session: WriterSession, n: int) -> WriteResult:
        self.last_delete = n
        where = self.rows.moved.get(n)
        result = self._call(lambda: session.delete(row_id(self.spec.writer_id, n)))
        self.ledger.record("delete", n, result, supersedes=self.rows.wseqs[n], conversation=where)
        self.rows.remove(n)  # deleted, or unknown: either way deletes stay in increasing row order
        return result


def _now_us() -> int:
    return time.time_ns() // 1000


def run_streams(
    streams: list[WriterStream], sessions: dict[str | None, WriterSession], on_result: Any, stop: Any
) -> None:
    """Drive ``streams`` in turns until all are done or ``stop()`` is true; ``on_result(op, result)`` per write."""
    while not stop():
        active = [s for s in streams if not s.done]
        if not active:
            return
        due = min(active, key=lambda s: s.next_due())
        wait = due.next_due() - time.monotonic()
        if wait == float("inf"):
            return
        if wait > 0:
            gevent.sleep(min(wait, SLEEP_SLICE_SECONDS))
            continue
        acted = due.act(sessions[due.spec.user])
        if acted is not None:
            on_result(*acted)
        else:
            gevent.sleep(0)


class WriterUser(OneShotUser):
    """Drives ``plan.writer_groups[i]`` (i claimed from the coordinator) once, then idles until the end.

    A user beyond the plan's groups drives a joining copy of one (``locustfiles.joiners``), its program
    starting when it joins. Locust may stop the user before that (the user count lowered): the write in flight
    is recorded as indeterminate and the ledger so far is sent, with no error: the writer left on purpose.
    """

    def run_once(self, ctx: RunContext, link: UserLink) -> None:
        plan = ctx.plan
        index = link.claim("writer", timeout=plan.ready_timeout)
        if index is None:
            return
        deadline = time.monotonic() + ctx.max_seconds
        streams = [WriterStream(spec, plan.payload_bytes, deadline) for spec in joiners.writer_specs(plan, index)]
        error: str | None = "writer stopped before its program ended"
        try:
            go = link.wait_go(ctx.go_timeout)
            if go is None:
                error = f"writer group {index}: no go from the coordinator in {ctx.go_timeout:g} s"
            elif not go:
                error = None  # listeners never became ready: the coordinator records why; nothing is written
            else:
                error = self._drive(ctx, streams, link.winding_down)
        except gevent.GreenletExit:
            error = None  # Locust stopped this user before the load ended: the user count went down
            raise
        finally:  # also when Locust stops this user early: the ledger is what the checker needs
            link.send(WriterFinal(index, [s.ledger.to_dict() for s in streams], error))

    def _drive(self, ctx: RunContext, streams: list[WriterStream], stop: Any) -> str | None:
        sessions: dict[str | None, WriterSession] = {}
        try:
            for spec in {s.spec.user: s.spec for s in streams}.values():
                sessions[spec.user] = ctx.target.writer(ctx.schema, spec.user or ctx.plan.app_user)
            for stream in streams:
                stream.start()
            run_streams(streams, sessions, self._fire, stop)
        except TargetError as exc:
            return f"writer {streams[0].spec.writer_id}: {exc}"
        finally:
            for session in sessions.values():
                session.close()
        return None

    def _fire(self, op: str, result: WriteResult) -> None:
        failed = result.outcome is not Outcome.OK
        exception = WriteFailed(f"{result.outcome}: {result.error}") if failed else None
        self.fire("SQL", op, (result.ack_ns - result.invoke_ns) / 1e6, exception)


class WriteFailed(Exception):
    """A write that failed or got no answer (reported to Locust as a request failure)."""
