"""Deterministic misbehaviour for ``lqharness serve --fault SPEC``: each fault proves a check of the judge.

A spec is ``name[:key=value[,key=value]]``. Counting faults act on a subscription's Nth, 2Nth, ...
change notification (counted per subscription from 1), so their effect is predictable on the wire.

The ``op=`` filter of drop, duplicate, reorder and mutate counts only changes of that type: the
fault acts on the subscription's Nth, 2Nth, ... insert, update or delete.

The faults reach the server through one object, the delivery stage (``Faults.stage()``): the
fan-out passes each notification through ``deliver`` and enqueues what comes back (a 0.7 resume
first passes its replayed changes through ``replay``, the filter asks ``leaks_filter`` about each
update it hides), the sender asks
``send_delay`` before each frame, ``system.live`` adds ``live_changes_skew``. Without faults the
stage is a ``PassThrough``, so the real delivery path carries no fault checks at all.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, Protocol

import orjson

from refserver.engine import CommittedChange

log = logging.getLogger("lqrefserver.faults")


class Fault(StrEnum):
    """The fault names ``--fault`` accepts; code names a fault only through this enum."""

    DROP = "drop"
    DUPLICATE = "duplicate"
    REORDER = "reorder"
    DELAY = "delay"
    STALE_OLD = "stale-old"
    STALE_DELETE = "stale-delete"
    CORRUPT_NEW = "corrupt-new"
    SUB_ERROR = "sub-error"
    NO_DELETED = "no-deleted"
    SKEW_CHANGES = "skew-changes"
    LEAK = "leak"
    KEEP_CLOSED = "keep-closed"
    STALL = "stall"
    CRASH = "crash"
    MALFORMED_ROW = "malformed-row"
    MUTATE = "mutate"
    REPLAY_DROP = "replay-drop"
    FILTER_LEAK = "filter-leak"


Value = int | float | str | None  # a parsed parameter


def _count(positive: bool) -> Callable[[str], Value]:
    """A parser of a whole number (0 allowed unless ``positive``)."""

    def parse(text: str) -> Value:
        try:
            number = int(text)
        except ValueError:
            raise ValueError("must be an integer") from None
        if number < 0 or (positive and number == 0):
            raise ValueError("is out of range")
        return number

    return parse


def _choice(*options: str) -> Callable[[str], Value]:
    def parse(text: str) -> Value:
        if text not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return text

    return parse


def _column(text: str) -> Value:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text):
        raise ValueError("must be a column name")
    return text.lower()


def _literal(text: str) -> Value:
    """A JSON value from its text: an integer (of any size) or a decimal stays a number, the rest is a string."""
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    if re.fullmatch(r"[+-]?\d+\.\d+", text):
        return float(text)
    return text


@dataclass(frozen=True, slots=True)
class _Param:
    """One parameter of a fault: how its text parses, how ``--help`` shows it, and its default if optional."""

    parse: Callable[[str], Value] = _count(False)
    metavar: str = "N"
    required: bool = True
    default: Value = None


_EVERY = _Param(_count(True))
_EVERY_1 = _Param(_count(True), required=False, default=1)
_OPS = ("insert", "update", "delete")
_OP = _Param(_choice(*_OPS), "|".join(_OPS), required=False)


@dataclass(frozen=True, slots=True)
class _Spec:
    """A fault's parameters (in usage order), what it does (for ``--help``), and a check across parameters."""

    params: dict[str, _Param]
    effect: str
    check: Callable[[dict[str, Value]], str | None] = lambda params: None


def _check_mutate(params: dict[str, Value]) -> str | None:
    if (params["action"] == "set") != (params["value"] is not None):
        return "takes value= with action=set, and only then"
    return None


_SPECS: dict[Fault, _Spec] = {
    Fault.DROP: _Spec({"every": _EVERY, "op": _OP}, "lose every Nth notification"),
    Fault.DUPLICATE: _Spec({"every": _EVERY, "op": _OP}, "send every Nth notification twice"),
    Fault.REORDER: _Spec({"every": _EVERY, "op": _OP}, "send every Nth notification after the next one"),
    Fault.DELAY: _Spec({"ms": _Param(_count(True)), "every": _EVERY_1}, "send every Nth notification ms late"),
    Fault.STALE_OLD: _Spec({"every": _EVERY_1}, "old values of an update one version too old"),
    Fault.STALE_DELETE: _Spec(
        {"every": _EVERY_1},
        "the tombstone of every Nth delete, when its row was updated, is the row's version before its last update",
    ),
    Fault.CORRUPT_NEW: _Spec({"every": _EVERY_1}, "text values of an insert or update altered"),
    Fault.SUB_ERROR: _Spec({"every": _EVERY}, "a subscription error in place of every Nth notification"),
    Fault.NO_DELETED: _Spec({}, "delete tombstones without _deleted"),
    Fault.SKEW_CHANGES: _Spec({"by": _Param()}, "system.live.changes off by N"),
    Fault.LEAK: _Spec({"bytes": _Param(_count(True))}, "keep N bytes per notification forever"),
    Fault.KEEP_CLOSED: _Spec({}, "never answer a client's close; keep its subscriptions listed"),
    Fault.STALL: _Spec(
        {"after": _Param(metavar="S"), "for": _Param(_count(True), "T")}, "block everything for T s, S s after start"
    ),
    Fault.CRASH: _Spec({"after": _Param(metavar="S")}, "exit hard S s after start"),
    Fault.MALFORMED_ROW: _Spec(
        {"every": _EVERY_1}, "every Nth notification's row as a positional JSON array instead of an object"
    ),
    Fault.MUTATE: _Spec(
        {
            "column": _Param(_column, "C"),
            "action": _Param(_choice("drop", "null", "set"), "drop|null|set"),
            "value": _Param(_literal, "V", required=False),
            "op": _OP,
            "every": _EVERY_1,
        },
        "drop column C from every Nth notification's row (the rows of an insert or update, the old_values "
        "of a delete), make it null, or set it to V: an integer of any size or a decimal goes as a JSON "
        "number, anything else as a string",
        _check_mutate,
    ),
    Fault.REPLAY_DROP: _Spec(
        {"nth": _EVERY_1}, "0.7: leave the Nth change out of every resume from the replay log (default the first)"
    ),
    Fault.FILTER_LEAK: _Spec({}, "ignore the subscription filter on one update: the first one it hides is sent"),
}


def _usage(name: Fault) -> str:
    """``name:key=N[,key=N]``, optional parameters in brackets."""
    params = _SPECS[name].params
    required = [f"{k}={p.metavar}" for k, p in params.items() if p.required]
    optional = [f"{k}={p.metavar}" for k, p in params.items() if not p.required]
    text = name + (":" + ",".join(required) if required else "")
    for i, item in enumerate(optional):
        text += f"[{',' if required or i else ':'}{item}]"
    return text


FAULT_HELP = (
    "misbehave on purpose (repeatable): "
    + "; ".join(f"{_usage(name)} ({spec.effect})" for name, spec in _SPECS.items())
    + ". With op=, a fault counts only the changes of that type (every=1: each of them)."
)


class FaultSpecError(ValueError):
    """A ``--fault`` value that does not parse; the message is one line for the user."""


@dataclass(slots=True)
class Faults:
    """The configured faults and their parameters, plus the memory ``leak`` holds on to."""

    params: dict[Fault, dict[str, Value]] = field(default_factory=dict)
    leaked: list[bytearray] = field(default_factory=list)

    @property
    def enabled(self) -> bool:
        """Whether any fault is configured."""
        return bool(self.params)

    def on(self, name: Fault) -> bool:
        return name in self.params

    def hits(self, name: Fault, n: int, kind: str = "", nth_of_kind: int = 0) -> bool:
        """Whether a counting fault fires on the ``n``-th notification of a subscription.

        A fault with ``op=`` counts only changes of that type: it fires on the Nth, 2Nth, ... of them
        (``kind`` is the change's type, ``nth_of_kind`` its count among the subscription's changes of that type).
        """
        params = self.params.get(name)
        if params is None:
            return False
        op = params.get("op")
        if op is None:
            return n % self.param(name, "every") == 0
        return kind == op and nth_of_kind % self.param(name, "every") == 0

    def param(self, name: Fault, key: str) -> int:
        """An integer parameter."""
        value = self.params[name][key]
        assert isinstance(value, int)
        return value

    def option(self, name: Fault, key: str) -> Value:
        """A parameter as parsed (None: an optional one not given)."""
        return self.params[name][key]

    def describe(self) -> str:
        def items(params: dict[str, Value]) -> str:
            return ",".join(f"{k}={v}" for k, v in params.items() if v is not None)

        return ", ".join(name + (":" + items(p) if items(p) else "") for name, p in self.params.items())

    def stage(self) -> DeliveryStage:
        """The delivery stage for these faults: a ``FaultStage``, or a ``PassThrough`` when there are none."""
        return FaultStage(self) if self.enabled else PassThrough()


def parse_faults(specs: list[str]) -> Faults:
    """Parse ``--fault`` values; raises ``FaultSpecError`` with a one-line message."""
    faults = Faults()
    for spec in specs:
        raw, _, rest = spec.strip().partition(":")
        try:
            name = Fault(raw)
        except ValueError:
            raise FaultSpecError(f"unknown fault '{raw}' in '{spec}' (known: {', '.join(Fault)})") from None
        allowed = _SPECS[name].params
        params: dict[str, Value] = {}
        for item in filter(None, rest.split(",")):
            key, eq, value = item.partition("=")
            if not eq or key not in allowed:
                raise FaultSpecError(f"bad parameter '{item}' in fault '{spec}' (expects {_usage(name)})")
            try:
                params[key] = allowed[key].parse(value)
            except ValueError as exc:
                raise FaultSpecError(f"parameter {key} of fault '{spec}' {exc}") from None
        for key, param in allowed.items():
            if key not in params:
                if param.required:
                    raise FaultSpecError(f"fault '{spec}' needs {key}= (expects {_usage(name)})")
                params[key] = param.default
        problem = _SPECS[name].check(params)
        if problem:
            raise FaultSpecError(f"fault '{spec}' {problem} (expects {_usage(name)})")
        if name in faults.params:
            raise FaultSpecError(f"fault '{name}' given twice")
        faults.params[name] = params
    return faults


# ---------------------------------------------------------------- the delivery stage


Frame = tuple[bytes, int, bool]
"""One frame for a subscription's connection: (payload, n, control).

``n`` is the notification's count on its subscription (what the sender's delay counts); a control
frame is never dropped and is not a change. A plain tuple: the fan-out makes one per subscriber.
"""


class Subscriber(Protocol):
    """What the stage sees of a subscription."""

    sub_id: str
    prefix: bytes  # the change message up to and including its subscription_id
    loading: bool  # still receiving its snapshot
    held: Frame | None  # the reorder fault's withheld notification
    kind_counts: dict[str, int]  # notifications per change type so far (what faults with op= count)


class Renderer(Protocol):
    """What the stage sees of a subscription group: the change body it shares."""

    def body(
        self, change: CommittedChange, no_deleted: bool = False, stale: Mapping[str, Any] | None = None
    ) -> bytes: ...


class DeliveryStage(Protocol):
    """What the live fan-out and the sender ask of the faults (see the module docstring)."""

    @property
    def keep_closed(self) -> bool:
        """The keep-closed fault: never answer a client's close, keep its subscriptions listed."""
        ...

    @property
    def sees_every_change(self) -> bool:
        """Whether ``observe`` must see changes that no subscription matches."""
        ...

    @property
    def live_changes_skew(self) -> int:
        """Added to ``system.live.changes``."""
        ...

    def observe(self, change: CommittedChange) -> None:
        """Called once per committed change, before its fan-out."""

    def deliver(
        self, change: CommittedChange, group: Renderer, sub: Subscriber, n: int, body: bytes
    ) -> tuple[Frame, ...]:
        """The frames to enqueue for the ``n``-th notification of ``sub``, whose group rendered ``body``."""
        ...

    def replay(self, changes: list[CommittedChange]) -> list[CommittedChange]:
        """The changes a 0.7 resume replays, out of those the replay log holds after the cursor."""
        ...

    def leaks_filter(self, change: CommittedChange) -> bool:
        """Whether an update the subscription filter hides (or turns into a leave) is sent as it is."""
        ...

    def send_delay(self, n: int) -> float:
        """Seconds to wait before sending the frame of notification ``n`` (it goes in a write of its own)."""
        ...

    def arm(self, loop: asyncio.AbstractEventLoop) -> None:
        """Schedule the faults that act on the whole process once the server listens."""


class PassThrough:
    """The delivery stage without faults: every notification goes out once, as it is."""

    keep_closed = False
    sees_every_change = False
    live_changes_skew = 0

    def observe(self, change: CommittedChange) -> None:
        pass

    def deliver(
        self, change: CommittedChange, group: Renderer, sub: Subscriber, n: int, body: bytes
    ) -> tuple[Frame, ...]:
        return ((sub.prefix + body, n, False),)

    def replay(self, changes: list[CommittedChange]) -> list[CommittedChange]:
        return changes

    def leaks_filter(self, change: CommittedChange) -> bool:
        return False

    def send_delay(self, n: int) -> float:
        return 0.0

    def arm(self, loop: asyncio.AbstractEventLoop) -> None:
        pass


class FaultStage:
    """The configured faults as one delivery stage, in the order they apply to a notification."""

    def __init__(self, faults: Faults) -> None:
        self.faults = faults
        self.keep_closed = faults.on(Fault.KEEP_CLOSED)
        self.sees_every_change = faults.on(Fault.STALE_OLD) or faults.on(Fault.STALE_DELETE)
        self.live_changes_skew = faults.param(Fault.SKEW_CHANGES, "by") if faults.on(Fault.SKEW_CHANGES) else 0
        self._no_deleted = faults.on(Fault.NO_DELETED)
        self._leak = faults.param(Fault.LEAK, "bytes") if faults.on(Fault.LEAK) else 0
        self._stale_memory: dict[tuple[str, str, Any], dict[str, Any]] = {}
        self._stale: dict[str, Any] | None = None  # stale-old: the old values the current update pretends
        self._stale_tombstone: dict[str, Any] | None = None  # stale-delete: the row the current delete pretends
        self._leak_pending = faults.on(Fault.FILTER_LEAK)  # filter-leak acts once

    def observe(self, change: CommittedChange) -> None:
        """stale-old and stale-delete: remember each row's old values, so an update can show the version
        before them, and a delete the version before the row's last."""
        self._stale = self._stale_tombstone = None
        if not self.sees_every_change or change.kind == "insert":
            return
        assert change.new is not None and change.old is not None
        key = (change.table.key, change.owner, change.new[change.table.pk.name])
        if change.kind == "update":
            self._stale = self._stale_memory.get(key) or change.new
            self._stale_memory[key] = dict(change.old)
        elif (before := self._stale_memory.pop(key, None)) is not None:
            # the older version, under the delete's own _seq and flag: a tombstone consistent with itself
            system: dict[str, Any] = {k: change.new[k] for k in ("_seq", "_deleted") if k in change.new}
            self._stale_tombstone = {**before, **system}

    def deliver(
        self, change: CommittedChange, group: Renderer, sub: Subscriber, n: int, body: bytes
    ) -> tuple[Frame, ...]:
        """leak, then drop or sub-error, the value faults, reorder or duplicate, and a held frame's release."""
        faults = self.faults
        kind = change.kind
        nth = sub.kind_counts[kind] = sub.kind_counts.get(kind, 0) + 1
        if self._leak:
            faults.leaked.append(bytearray(self._leak))
        if faults.hits(Fault.DROP, n, kind, nth):
            return ()
        if faults.hits(Fault.SUB_ERROR, n) and not sub.loading:
            error = {"type": "error", "subscription_id": sub.sub_id, "code": "SUBSCRIPTION_FAILED"}
            return ((orjson.dumps({**error, "message": "Injected fault"}), n, True),)
        payload = sub.prefix + self._body(change, group, n, nth, body)
        if faults.hits(Fault.REORDER, n, kind, nth):
            # a frame still held (two holds in a row) goes out now: the later one is held instead
            released, sub.held = sub.held, (payload, n, False)
            return () if released is None else (released,)
        frames: list[Frame] = [(payload, n, False)]
        if faults.hits(Fault.DUPLICATE, n, kind, nth):
            frames.append(frames[0])
        if sub.held is not None:
            frames.append(sub.held)
            sub.held = None
        return tuple(frames)

    def _body(self, change: CommittedChange, group: Renderer, n: int, nth: int, body: bytes) -> bytes:
        """The body after the faults that alter values: re-rendered, or edited as a message."""
        faults = self.faults
        if self._no_deleted and change.kind == "delete":
            body = group.body(change, no_deleted=True)
        if self._stale is not None and faults.hits(Fault.STALE_OLD, n):
            body = group.body(change, stale=self._stale)
        tombstone = self._stale_tombstone
        if change.kind == "delete" and tombstone is not None and faults.hits(Fault.STALE_DELETE, nth):
            log.warning("fault stale-delete: an older version of the row as tombstone of delete %d", change.seq)
            body = group.body(replace(change, new=tombstone))
        if change.kind != "delete" and faults.hits(Fault.CORRUPT_NEW, n):
            body = group.body(_corrupted(change))
        mutate = faults.hits(Fault.MUTATE, n, change.kind, nth)
        malformed = faults.hits(Fault.MALFORMED_ROW, n)
        if mutate or malformed:
            message = orjson.loads(b"{" + body[1:])
            rows = message["old_values" if change.kind == "delete" else "rows"]
            if mutate:
                self._mutate(rows[0])
            if malformed:
                rows[0] = list(rows[0].values())
            # the standard library's encoder: a mutated value may be an integer beyond 64 bits
            body = b"," + json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()[1:]
        return body

    def _mutate(self, row: dict[str, Any]) -> None:
        """The mutate fault on one row: drop its column, make it null, or set it to the literal."""
        faults = self.faults
        column = str(faults.option(Fault.MUTATE, "column"))
        action = faults.option(Fault.MUTATE, "action")
        if action == "drop":
            row.pop(column, None)
        else:
            row[column] = faults.option(Fault.MUTATE, "value") if action == "set" else None

    def replay(self, changes: list[CommittedChange]) -> list[CommittedChange]:
        """replay-drop: the Nth replayed change is left out of every replay that has one."""
        if not self.faults.on(Fault.REPLAY_DROP):
            return changes
        nth = self.faults.param(Fault.REPLAY_DROP, "nth")
        if len(changes) < nth:
            return changes
        log.warning("fault replay-drop: leaving version %d out of a replay", changes[nth - 1].seq)
        return changes[: nth - 1] + changes[nth:]

    def leaks_filter(self, change: CommittedChange) -> bool:
        """filter-leak: the first update a filter hides goes out anyway (once per server)."""
        if not self._leak_pending:
            return False
        self._leak_pending = False
        log.warning("fault filter-leak: sending version %d past a subscription filter", change.seq)
        return True

    def send_delay(self, n: int) -> float:
        faults = self.faults
        return faults.param(Fault.DELAY, "ms") / 1000 if faults.hits(Fault.DELAY, n) else 0.0

    def arm(self, loop: asyncio.AbstractEventLoop) -> None:
        faults = self.faults
        if faults.on(Fault.STALL):
            loop.call_later(faults.param(Fault.STALL, "after"), _stall, faults.param(Fault.STALL, "for"))
        if faults.on(Fault.CRASH):
            loop.call_later(faults.param(Fault.CRASH, "after"), _crash)


def _corrupted(change: CommittedChange) -> CommittedChange:
    """The corrupt-new fault: ``change`` with every text value of its new row altered."""
    new = dict(change.new or {})
    for col in change.table.columns:
        if col.ktype.name == "Text" and isinstance(new.get(col.name), str):
            new[col.name] = new[col.name] + "~corrupt"
    return replace(change, new=new)


def _stall(seconds: float) -> None:
    """The stall fault: block the event loop, so nothing at all is processed for ``seconds``."""
    log.warning("fault stall: stopping all processing for %s s", seconds)
    time.sleep(seconds)


def _crash() -> None:
    """The crash fault: exit at once, without cleanup, as a crashing server would."""
    log.error("fault crash: exiting now")
    os._exit(70)
