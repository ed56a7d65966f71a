"""The chain check of ``live.contention``: shared rows bumped by several writers at once (docs/contention.md).

Each bump sets ``version = version + 1`` on the server and a content naming its maker
(``writer_id``, ``wseq``; see ``identity.bump_content``). The committed bumps of a row form
one chain ``1 -> 2 -> ... -> N``; every update event a listener receives is one link, with the
new version and maker and the old version and maker it reports. A ``LinkLog`` keeps a
listener's links as compact integer lists (shared rows are few, so links are bounded by the
bumps). The checker compares them with the ground truth, built by :func:`truth`: the
database's commit log when the target exposes one, else the server-assigned versions (as
writers' acks and events' new rows report them). One function per anomaly class, each
returning its witnesses.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial

from harness.delivery.anomalies import Anomaly, Witness
from harness.delivery.identity import INSERTED, ROW_MASK, Seen, bump_maker

Maker = tuple[int, int]
"""(writer_id, wseq) of the write that made a version; ``identity.INSERTED`` for a row's insert."""

UNKNOWN = -1  # a link field the event did not carry, in the integer-list form
MAX_LINKS = 200_000  # per listener: links beyond it are not kept (the scenario makes far fewer)


@dataclass(frozen=True, slots=True)
class Link:
    """One update event of a shared row, as a listener received it (old fields None when not reported)."""

    rid: int
    version: int
    maker: Maker
    old_version: int | None
    old_maker: Maker | None
    received_us: int

    def to_list(self) -> list[int]:
        old_w, old_s = self.old_maker if self.old_maker is not None else (UNKNOWN, UNKNOWN)
        old_v = self.old_version if self.old_version is not None else UNKNOWN
        return [self.rid, self.version, *self.maker, old_v, old_w, old_s, self.received_us]

    @classmethod
    def from_list(cls, data: list[int]) -> Link:
        rid, version, w, s, old_v, old_w, old_s, received_us = (int(x) for x in data)
        return cls(
            rid,
            version,
            (w, s),
            None if old_v == UNKNOWN else old_v,
            None if old_w == UNKNOWN else (old_w, old_s),
            received_us,
        )


class LinkLog:
    """A listener's links in arrival order (the tracker feeds it every readable update of a shared row)."""

    def __init__(self, payload_bytes: int) -> None:
        self.payload_bytes = payload_bytes
        self.links: list[Link] = []
        self.dropped = 0

    def record(self, seen: Seen, received_ns: int) -> None:
        """Keep the link an update event shows (its old maker read back from the old content)."""
        if len(self.links) >= MAX_LINKS:
            self.dropped += 1
            return
        old_maker = bump_maker(seen.old_content, seen.rid, self.payload_bytes)
        self.links.append(
            Link(seen.rid, seen.version, (seen.writer_id, seen.wseq), seen.old_version, old_maker, received_ns // 1000)
        )

    def to_list(self) -> list[list[int]]:
        return [link.to_list() for link in self.links]


@dataclass(frozen=True, slots=True)
class Commit:
    """One committed version of a shared row: who made it and, from a commit log, its commit position."""

    rid: int
    version: int
    maker: Maker
    position: int | None = None


@dataclass
class Truth:
    """Per shared row, version -> the commit that made it, and where the order came from.

    ``source`` is ``commit_log`` (the database's log: versions and positions authoritative) or
    ``server_version`` (the versions the server assigned, as acks and events report them).
    ``conflicts`` are versions claimed by two different makers.
    """

    source: str
    rows: dict[int, dict[int, Commit]] = field(default_factory=dict)
    conflicts: list[tuple[Commit, Commit, str]] = field(default_factory=list)

    def top(self, rid: int) -> int:
        """The row's highest committed version known (1 when no bump is known)."""
        return max(self.rows.get(rid, {}), default=1)


def truth(
    log: Iterable[Commit] | None,
    acks: Iterable[Commit],
    links: Mapping[str, Iterable[Link]],
    rows: Iterable[int] = (),
) -> Truth:
    """The ground truth: ``log`` when given (the commit log), else the versions acks and events claim.

    Every claim (log, writers' acks, events' new rows) is checked against the first one for its
    version: a different maker is a conflict, attributed to the claim's source. ``rows`` are the
    shared rows known to exist (version 1 made by their insert) even if no bump reached them.
    """
    out = Truth("commit_log" if log is not None else "server_version")
    for rid in rows:
        out.rows.setdefault(rid, {})[1] = Commit(rid, 1, INSERTED)

    def claim(commit: Commit, source: str) -> None:
        known = out.rows.setdefault(commit.rid, {})
        first = known.get(commit.version)
        if first is None:
            known[commit.version] = commit
        elif first.maker != commit.maker:
            out.conflicts.append((first, commit, source))

    for commit in log or ():
        claim(commit, "commit log")
    for commit in acks:
        claim(commit, "writer ack")
    for listener, got in sorted(links.items()):
        for link in got:
            claim(Commit(link.rid, link.version, link.maker), f"listener {listener}")
    return out


def _maker(maker: Maker | None) -> str:
    if maker is None:
        return "an unreadable write"
    return "the row's insert" if maker == INSERTED else f"writer {maker[0]} wseq {maker[1]}"


def _witness(kind: Anomaly, listener: str, link: Link, expected: str, observed: str) -> Witness:
    return Witness(
        kind,
        listener,
        expected,
        observed,
        wseq=link.maker[1],
        row=link.rid & ROW_MASK,
        op="update",
        received_at=link.received_us / 1e6,
    )


def chain_breaks(listener: str, links: Iterable[Link], known: Truth) -> list[Witness]:
    """Links whose old value is not the previous committed state: old version not v - 1, or not its maker."""
    found = []
    for link in links:
        previous = known.rows.get(link.rid, {}).get(link.version - 1)
        expected = f"old version {link.version - 1}" + (f" by {_maker(previous.maker)}" if previous else "")
        observed = f"version {link.version} by {_maker(link.maker)} with old version {link.old_version}"
        if link.old_version != link.version - 1:
            found.append(_witness(Anomaly.CHAIN_BREAK, listener, link, expected, observed))
        elif link.old_maker is None or (previous is not None and link.old_maker != previous.maker):
            found.append(
                _witness(Anomaly.CHAIN_BREAK, listener, link, expected, f"{observed} by {_maker(link.old_maker)}")
            )
    return found


def commit_order_violations(listener: str, links: Iterable[Link], known: Truth) -> list[Witness]:
    """Links received after a link of a later commit of the same row (commit position, else version)."""
    found = []
    latest: dict[int, tuple[tuple[int, int], Link]] = {}
    for link in links:
        commit = known.rows.get(link.rid, {}).get(link.version)
        order = (commit.position if commit is not None and commit.position is not None else link.version, link.version)
        before = latest.get(link.rid)
        if before is not None and order < before[0]:
            found.append(
                _witness(
                    Anomaly.COMMIT_ORDER,
                    listener,
                    link,
                    f"version {link.version} before version {before[1].version}",
                    f"after it ({(link.received_us - before[1].received_us) / 1000:.1f} ms later)",
                )
            )
        else:
            latest[link.rid] = (order, link)
    return found


def missing_links(
    listener: str, links: Iterable[Link], known: Truth, owed: Callable[[int], bool] = lambda rid: True
) -> list[Witness]:
    """Versions 2..N of each shared row the listener is ``owed`` (N its highest committed version) it never received."""
    got: dict[int, set[int]] = {}
    for link in links:
        got.setdefault(link.rid, set()).add(link.version)
    found = []
    for rid in sorted(r for r in known.rows if owed(r)):
        seen = got.get(rid, set())
        for version in range(2, known.top(rid) + 1):
            if version not in seen:
                commit = known.rows[rid].get(version)
                made = _maker(commit.maker) if commit is not None else "maker unknown"
                found.append(
                    Witness(
                        Anomaly.MISSING_LINK,
                        listener,
                        f"version {version} of {known.top(rid)} ({made})",
                        "never received",
                        wseq=commit.maker[1] if commit is not None else None,
                        row=rid & ROW_MASK,
                        op="update",
                    )
                )
    return found


def version_conflicts(known: Truth) -> list[Witness]:
    """Versions of a row claimed by two different makers: the server's increment was not atomic, or a report lies."""
    return [
        Witness(
            Anomaly.VERSION_CONFLICT,
            source,
            f"version {first.version} made once, by {_maker(first.maker)}",
            f"also by {_maker(other.maker)}",
            wseq=other.maker[1],
            row=other.rid & ROW_MASK,
            op="update",
        )
        for first, other, source in known.conflicts
    ]


CHAIN_KINDS = (Anomaly.CHAIN_BREAK, Anomaly.COMMIT_ORDER, Anomaly.MISSING_LINK, Anomaly.VERSION_CONFLICT)
"""The anomaly kinds of the chain check."""


def check_chains(
    links: Mapping[str, list[Link]], known: Truth, owed: Callable[[str, int], bool] = lambda listener, rid: True
) -> dict[str, list[Witness]]:
    """Per listener id (and ``all`` for conflicts), every chain witness of every kind, in arrival order.

    ``owed(listener, rid)`` says whether the listener may see the row at all (its filter and user).
    """
    out: dict[str, list[Witness]] = {}
    for listener, got in sorted(links.items()):
        out[listener] = (
            chain_breaks(listener, got, known)
            + commit_order_violations(listener, got, known)
            + missing_links(listener, got, known, partial(owed, listener))
        )
    out["all"] = version_conflicts(known)
    return out
