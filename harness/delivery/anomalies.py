"""The delivery anomaly vocabulary: every name the tracker, checker, judge and report use, each defined once.

Each ``Anomaly`` member's value is its key in ``delivery.json`` (``totals``, ``listeners[]``,
``witnesses[].kind``, ``timeline[].kind``) and carries a one-line definition, in the way Elle
defines its anomaly classes: the definition is the data, and ``docs/run-folder.md`` lists it
(a unit test keeps the two equal). A ``Witness`` is one concrete instance of an anomaly.

Older run folders have one ``phantom`` count for what is now the phantom family
(``PHANTOM``); ``kinds_of`` maps that key to the family so such folders still judge.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass
from typing import Any


class Anomaly(enum.StrEnum):
    """One kind of delivery anomaly; ``definition`` says exactly what is counted under it."""

    definition: str

    def __new__(cls, value: str, definition: str) -> Anomaly:
        member = str.__new__(cls, value)
        member._value_ = value
        member.definition = definition
        return member

    LOST = "lost", "a write acknowledged ok that the listener was owed and never received"
    DUPLICATE = "duplicates", "a write (insert, update or delete) the listener received more than once"
    OUT_OF_ORDER = (
        "out_of_order",
        "a write (insert, update or delete) received after one its writer made later, or a row's change after "
        "that row's delete",
    )
    UNEXPECTED = "unexpected", "a received write that its writer never attempted"
    ABORTED = "aborted", "a received write that the server refused (its writer's ledger has it as failed)"
    OUTSIDE_FILTER = "outside_filter", "a received row whose conversation is outside the listener's filter"
    OTHER_USER = "other_user", "a received row of a writer whose user the listener's user may not see"
    STALE = (
        "stale",
        "a live change, on a subscription without resume, of a write acknowledged before that subscription was "
        "requested",
    )
    MALFORMED = (
        "malformed",
        "a notification that cannot be read as a harness row: a frame or row of the wrong shape, a missing "
        "identity column, a value of the wrong type or out of range",
    )
    OLD_VALUE = "old_value_errors", "an update whose reported old row is not the version it replaced"
    NEW_VALUE = (
        "new_value_errors",
        "a received row whose columns differ from what its writer wrote for that version",
    )
    DELETE_FLAG = "delete_flag_errors", "a delete notification without the delete flag (_deleted) set"
    DELETE_VALUE = (
        "delete_value_errors",
        "a delete whose tombstone row is not the deleted row's last version as its writer wrote it",
    )
    CHAIN_BREAK = (
        "chain_breaks",
        "an update of a shared row whose old value is not the row's previous committed state (old version not "
        "v - 1, or not the write that made v - 1)",
    )
    COMMIT_ORDER = (
        "commit_order_violations",
        "an update of a shared row received after an update of a later commit of that row",
    )
    MISSING_LINK = (
        "missing_links",
        "a committed version of a shared row (between its insert and its last committed version) the listener "
        "never received",
    )
    VERSION_CONFLICT = (
        "version_conflicts",
        "a version of a shared row claimed by two different writes (commit log, writer acks or events disagree)",
    )
    ENDED_EARLY = "ended_early", "a listener that stopped receiving before the run told it to stop"
    LATE = "late", "a notification received in the listener's last drain window (it still counts as delivered)"


PHANTOM = frozenset(
    {Anomaly.UNEXPECTED, Anomaly.ABORTED, Anomaly.OUTSIDE_FILTER, Anomaly.OTHER_USER, Anomaly.STALE, Anomaly.MALFORMED}
)
"""The phantom family: deliveries that should not exist at all. SC-051 sums them; old run folders count them as one."""

LEGACY_PHANTOM = "phantom"
"""The key older run folders used for the whole phantom family (and delivery.json totals still carry their sum)."""

ON_ARRIVAL = (
    Anomaly.DUPLICATE,
    Anomaly.OUT_OF_ORDER,
    Anomaly.OUTSIDE_FILTER,
    Anomaly.OTHER_USER,
    Anomaly.MALFORMED,
    Anomaly.OLD_VALUE,
    Anomaly.NEW_VALUE,
    Anomaly.DELETE_FLAG,
    Anomaly.DELETE_VALUE,
)
"""The kinds a listener's tracker finds on arrival of a notification; the checker finds the rest at the end."""


_BY_KEY: dict[str, Anomaly] = {a.value: a for a in Anomaly}


def parse(key: object) -> Anomaly | None:
    """The member whose ``delivery.json`` key is ``key``, None when there is none."""
    return _BY_KEY.get(str(key))


def kinds_of(key: object) -> frozenset[Anomaly]:
    """The anomaly kinds a ``delivery.json`` key or witness kind stands for (empty when it names none)."""
    if key == LEGACY_PHANTOM:
        return PHANTOM
    found = parse(key)
    return frozenset() if found is None else frozenset({found})


def phantom_total(counts: dict[str, Any]) -> int:
    """The phantom family's total in ``counts``: the sum of its members, or an old run folder's ``phantom``."""
    members = [counts.get(str(k)) for k in PHANTOM]
    present = [int(v) for v in members if isinstance(v, int) and not isinstance(v, bool)]
    if present:
        return sum(present)
    legacy = counts.get(LEGACY_PHANTOM)
    return int(legacy) if isinstance(legacy, int) and not isinstance(legacy, bool) else 0


@dataclass(frozen=True, slots=True)
class Witness:
    """One concrete anomaly: what was expected against what was observed, and where.

    ``row`` is the writer's row number (the low half of the row id); ``received_at`` and
    ``acked_at`` are seconds since the epoch, None when not applicable (nothing arrived, or
    the write's ack time is unknown). ``wseq`` is None for deletes, which carry no sequence.
    """

    kind: Anomaly
    listener: str
    expected: str
    observed: str
    writer: int | None = None
    wseq: int | None = None
    row: int | None = None
    op: str | None = None
    received_at: float | None = None
    acked_at: float | None = None

    @property
    def row_id(self) -> int | None:
        """The row's primary key (writer and row number packed as the identity scheme does)."""
        if self.writer is None or self.row is None:
            return None
        return self.writer << 32 | self.row

    @property
    def detail(self) -> str:
        """One readable line: where, then expected against observed."""
        where = (
            self.op or "",
            "" if self.row is None else f"row {self.row}",
            "" if self.wseq is None else f"wseq {self.wseq}",
        )
        head = " ".join(part for part in where if part)
        return f"{head + ': ' if head else ''}expected {self.expected}, observed {self.observed}"

    def to_dict(self) -> dict[str, Any]:
        """The ``delivery.json`` form: the fields, plus ``row_id`` and a readable ``detail``."""
        out = asdict(self)
        out["kind"] = str(self.kind)
        out["row_id"] = self.row_id
        out["detail"] = self.detail
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Witness:
        """Inverse of ``to_dict`` (derived keys ignored)."""
        kind = parse(data["kind"])
        if kind is None:
            raise ValueError(f"unknown anomaly kind {data['kind']!r}")
        return cls(
            kind=kind,
            listener=str(data["listener"]),
            expected=str(data["expected"]),
            observed=str(data["observed"]),
            writer=data.get("writer"),
            wseq=data.get("wseq"),
            row=data.get("row"),
            op=data.get("op"),
            received_at=data.get("received_at"),
            acked_at=data.get("acked_at"),
        )


def definitions_markdown() -> str:
    """The anomaly table of ``docs/run-folder.md``, generated from the enum so the two cannot drift."""
    lines = ["| anomaly (delivery.json key) | definition |", "|---|---|"]
    lines += [f"| `{a.value}` | {a.definition} |" for a in Anomaly]
    family = ", ".join(f"`{a.value}`" for a in Anomaly if a in PHANTOM)
    lines.append(f"| `{LEGACY_PHANTOM}` | the sum of the phantom family: {family} |")
    return "\n".join(lines)
