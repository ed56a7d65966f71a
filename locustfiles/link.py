"""The users' side of coordination in one process: claims, the writers' gate, the stop signal, live deltas.

One ``UserLink`` per process with users (a worker, or the in-process runner) receives the
coordinator's broadcasts once and lets every user of the process wait on them.
"""

from __future__ import annotations

import itertools
from typing import Any

import gevent
from gevent.event import AsyncResult, Event

from harness.delivery.tracker import ListenerTracker
from locustfiles import messages
from locustfiles.messages import Claim, Claimed, Go, LoadDone, Message, Runner, Stop


class UserLink:
    """Claims for the users of this process, and the coordinator's signals as events they wait on."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.go = Event()
        self.go_ok = False
        self.load_done = Event()
        self.stop = Event()
        self.trackers: list[ListenerTracker] = []
        self._pending: dict[str, AsyncResult] = {}
        self._tokens = itertools.count(1)

    def register(self) -> None:
        """Listen for the coordinator's messages to this process."""
        messages.on(self.runner, Claimed, self._on_claimed)
        messages.on(self.runner, Go, self._on_go)
        messages.on(self.runner, LoadDone, self._on_load_done)
        messages.on(self.runner, Stop, self._on_stop)

    def claim(self, kind: str, timeout: float) -> int | None:
        """A spec index of ``kind`` (listener, writer, churn, flush) no other user has, or None if none is left."""
        token = f"{getattr(self.runner, 'client_id', 'local')}:{next(self._tokens)}"
        result: AsyncResult = AsyncResult()
        self._pending[token] = result
        try:
            self.send(Claim(kind, token))
            return result.get(timeout=timeout)
        except gevent.Timeout:
            return None
        finally:
            self._pending.pop(token, None)

    def send(self, msg: Message) -> None:
        """Send ``msg`` to the coordinator."""
        messages.send(self.runner, msg)

    def wait_go(self, timeout: float) -> bool | None:
        """Wait for the writers' gate: True if writers may start, False if they must not, None without a go."""
        if not self.go.wait(timeout=timeout):
            return None
        return self.go_ok

    def delta(self, encode: bool = True) -> dict[str, dict[str, Any]]:
        """Each of this process's listeners' tracker delta since the last call, by listener id
        (``encode`` False: latency histograms as objects, for a live view in this process)."""
        return {t.listener_id: t.delta(encode) for t in self.trackers}

    def winding_down(self) -> bool:
        """True once the load is over (or the run stops): extra users end their loops."""
        return self.load_done.is_set()

    def _on_claimed(self, msg: Claimed, node_id: str) -> None:
        pending = self._pending.get(msg.token)
        if pending is not None:
            pending.set(msg.index)

    def _on_go(self, msg: Go, node_id: str) -> None:
        self.go_ok = bool(msg.ok)
        self.go.set()

    def _on_load_done(self, msg: LoadDone, node_id: str) -> None:
        self.load_done.set()

    def _on_stop(self, msg: Stop, node_id: str) -> None:
        self.load_done.set()
        self.stop.set()
