"""The coordination vocabulary: every message between the users and the run's coordinator.

Users run on workers (or in-process) and the coordinator on the master (or in-process);
they talk only through Locust's custom messages, whose ``data`` must be plain (msgpack)
values. Each message here is a frozen dataclass with its Locust message type in ``TYPE``;
:func:`send` turns one into ``data`` and :func:`decode` back, so neither side reads
``msg.data["..."]``. In the order a run sends them:

``RunPlan`` (plain ``locust -f`` runs: the plan travels from the master), ``ClockPing`` → ``ClockPong``,
``ClockOffset``, then ``Claim`` → ``Claimed``, ``Ready``, ``Go``, ``LoadDone``, ``Stop``, then the finals:
``WriterFinal``, ``ListenerFinal``, ``ChurnFinal``, ``FlushFinal``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Protocol, TypeVar


@dataclass(frozen=True, slots=True)
class RunPlan:
    """Sent by the master to a worker of a plain ``locust -f`` run: the plan its users run.

    The passwords travel beside the plan over Locust's own master-worker channel (never to a file),
    so a worker needs only the project and the master's address; a worker whose environment sets
    them (``Plan.secret_env``'s names) uses its own.

    :param plan: the plan as ``Plan.to_json`` data, without passwords
    :param secrets: the passwords, keyed as ``Plan.secret_env`` keys them
    """

    TYPE: ClassVar[str] = "lqh_plan"
    plan: dict[str, Any]
    secrets: dict[str, str]


@dataclass(frozen=True, slots=True)
class PlanWanted:
    """Sent by a worker of a plain ``locust -f`` run once it can take the plan; the master answers with
    ``RunPlan``. Locust connects a worker before its init handlers run, so a plan sent on connect alone
    can arrive before the worker listens for it, and Locust drops it."""

    TYPE: ClassVar[str] = "lqh_plan_wanted"


@dataclass(frozen=True, slots=True)
class ClockPing:
    """Sent by a worker to the master to estimate its clock offset (``locustfiles.clock``).

    :param sent: the worker's unix time when it sent the ping
    """

    TYPE: ClassVar[str] = "lqh_clock_ping"
    sent: float


@dataclass(frozen=True, slots=True)
class ClockPong:
    """Sent by the master to the pinging worker.

    :param sent: the ping's ``sent``, echoed
    :param master: the master's unix time when it answered
    """

    TYPE: ClassVar[str] = "lqh_clock_pong"
    sent: float
    master: float


@dataclass(frozen=True, slots=True)
class ClockOffset:
    """Sent by a worker to the master once its pings are done.

    :param offset_s: master clock minus worker clock, in seconds (from the ping with the shortest round trip)
    :param rtt_s: that ping's round trip, in seconds: the offset is known to within half of it
    :param samples: pings answered
    """

    TYPE: ClassVar[str] = "lqh_clock_offset"
    offset_s: float
    rtt_s: float
    samples: int


@dataclass(frozen=True, slots=True)
class Claim:
    """Sent by a user to the coordinator when it starts, to get the spec it will run.

    :param kind: what the user runs: ``listener``, ``writer``, ``churn`` or ``flush``
    :param token: names the claim, so the answer finds its way back to the asking user
    """

    TYPE: ClassVar[str] = "lqh_claim"
    kind: str
    token: str


@dataclass(frozen=True, slots=True)
class Claimed:
    """Sent by the coordinator to the claiming user's process in answer to a :class:`Claim`.

    :param token: the claim's token
    :param index: the spec index no other user has (``plan.listeners[i]``, ``plan.writer_groups[i]``,
        0 for the one churn or flush), or None when every spec of that kind is taken
    """

    TYPE: ClassVar[str] = "lqh_claimed"
    token: str
    index: int | None


@dataclass(frozen=True, slots=True)
class Ready:
    """Sent by a listener user to the coordinator once its subscription is open, or once it gave up.

    :param listener_id: the listener's spec id
    :param error: why it could not subscribe, or None when it is ready
    """

    TYPE: ClassVar[str] = "lqh_ready"
    listener_id: str
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Go:
    """Sent by the coordinator to every user when the listeners' ready wait (and the preload) ends.

    :param ok: True if every listener is ready and writers may start; False if they must not
        (a listener failed or the ready wait timed out: the coordinator records why)
    """

    TYPE: ClassVar[str] = "lqh_go"
    ok: bool


@dataclass(frozen=True, slots=True)
class LoadDone:
    """Sent by the coordinator to every user once every writer group (and the churn) reported:
    queriers and the flusher wind down, listeners keep receiving through the drain.

    :param at: unix time the load ended
    """

    TYPE: ClassVar[str] = "lqh_load_done"
    at: float


@dataclass(frozen=True, slots=True)
class Stop:
    """Sent by the coordinator to every user after the drain: listeners stop receiving and report.

    Also winds down the extra users, as :class:`LoadDone` does.

    :param writers_done_at: unix time the load ended
    """

    TYPE: ClassVar[str] = "lqh_stop"
    writers_done_at: float


@dataclass(frozen=True, slots=True)
class WriterFinal:
    """Sent by a writer user to the coordinator when its group's programs end (or the user stops).

    :param group: the writer group index it claimed
    :param ledgers: one ``WriterLedger.to_dict()`` per writer stream of the group
    :param error: why the group did not run its programs to the end, or None
    """

    TYPE: ClassVar[str] = "lqh_writer_final"
    group: int
    ledgers: list[dict[str, Any]]
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ListenerFinal:
    """Sent by a listener user to the coordinator once it stopped (after :class:`Stop`, or on failure).

    :param listener_id: the listener's spec id
    :param summary: its ``ListenerTracker.summary()``, what the checker reads
    :param subscription_id: the id of its last subscription, if it had one open
    :param subscriptions: change notifications received on each subscription id it held
    :param error: why it could not subscribe, or None
    """

    TYPE: ClassVar[str] = "lqh_listener_final"
    listener_id: str
    summary: dict[str, Any]
    subscription_id: str | None = None
    subscriptions: dict[str, int] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class ChurnFinal:
    """Sent by the churn user to the coordinator after its cycle (part of the load).

    :param released: the counts and marks for ``target.json["released"]``, or None when no churn ran
    :param error: why no churn ran, or None
    """

    TYPE: ClassVar[str] = "lqh_churn_final"
    released: dict[str, Any] | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class FlushFinal:
    """Sent by the flush user to the coordinator once the load is over and its jobs ended or timed out.

    :param jobs: every job it started, by id, with the last status seen (``target.json["jobs"]``)
    :param skipped: flushes the target answered with no job (nothing to flush)
    :param error: the first distinct errors, joined, or None
    """

    TYPE: ClassVar[str] = "lqh_flush_final"
    jobs: dict[str, str] = field(default_factory=dict)
    skipped: int = 0
    error: str | None = None


Message = (
    RunPlan
    | PlanWanted
    | ClockPing
    | ClockPong
    | ClockOffset
    | Claim
    | Claimed
    | Ready
    | Go
    | LoadDone
    | Stop
    | WriterFinal
    | ListenerFinal
    | ChurnFinal
    | FlushFinal
)
M = TypeVar("M", bound=Message)


class Runner(Protocol):
    """The part of a Locust runner messages need (local, master and worker runners all have it)."""

    def send_message(self, msg_type: str, data: Any = None, client_id: str | None = None) -> None: ...

    def register_message(self, msg_type: str, listener: Callable[..., None], concurrent: bool = False) -> None: ...


class LocustMessage(Protocol):
    """A received Locust message: its type, data and the node it came from (or goes to)."""

    type: str
    data: Any
    node_id: str


def send(runner: Runner, msg: Message, client_id: str | None = None) -> None:
    """Send ``msg`` through ``runner``: from a worker to the master, or from the master to ``client_id``
    (every worker when None); in-process, straight to the registered handler."""
    runner.send_message(msg.TYPE, asdict(msg), client_id=client_id)


def decode(kind: type[M], msg: LocustMessage) -> M:
    """The ``kind`` message that ``msg`` carries (msgpack brings lists back for tuples; fields take them)."""
    return kind(**msg.data)


def on(runner: Runner, kind: type[M], handler: Callable[[M, str], None]) -> None:
    """Register ``handler(message, node_id)`` for ``kind`` on ``runner`` (once per kind and runner)."""

    def receive(environment: Any, msg: LocustMessage, **_: Any) -> None:
        handler(decode(kind, msg), msg.node_id)

    runner.register_message(kind.TYPE, receive)
