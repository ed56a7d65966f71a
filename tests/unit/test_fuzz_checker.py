"""Property-based tests of the checker's inputs: whatever a target delivers, the verdict data is computed.

A correct run's notifications are dropped, repeated, shuffled, corrupted column by column and mixed
with frames of any shape decoded by the wire layer; the tracker and the checker must count what they
see (a malformed row is a ``malformed`` anomaly) and never raise.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.delivery.tracker import ListenerSummary
from harness.targets.base import Change, Op
from harness.targets.kalamdb import wire
from tests.support.delivery_world import World

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
COLUMNS = ("id", "writer_id", "wseq", "version", "content", "conversation_id", "sent_at", "_seq", "_deleted")
ODD_VALUES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(1 << 70), max_value=1 << 70)
    | st.floats(allow_nan=True)
    | st.text(max_size=12)
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)


def _world() -> World:
    world = World()
    world.standard()
    return world


def _corrupt(change: Change, column: str, value: Any, on_old: bool) -> Change:
    row = change.old_row if on_old else change.row
    if row is None:
        return change
    changed = {**row, column: value}
    return dataclasses.replace(change, **({"old_row": changed} if on_old else {"row": changed}))


@st.composite
def deliveries(draw: st.DrawFn, changes: list[Change]) -> list[Change]:
    """``changes`` dropped, repeated, reordered and corrupted, plus changes of any op and any rows."""
    picked = draw(st.lists(st.sampled_from(changes), max_size=len(changes) * 2))
    out = list(picked)
    for i in draw(st.lists(st.integers(min_value=0, max_value=max(0, len(out) - 1)), max_size=4)):
        if out:
            column = draw(st.sampled_from(COLUMNS))
            out[i] = _corrupt(out[i], column, draw(ODD_VALUES), draw(st.booleans()))
    rows = st.none() | st.dictionaries(st.sampled_from(COLUMNS), ODD_VALUES, max_size=len(COLUMNS))
    extra = st.builds(
        Change,
        op=st.sampled_from(list(Op)),
        row=rows,
        old_row=rows,
        server_seq=st.none() | st.integers(min_value=-5, max_value=1 << 64),
        received_ns=st.integers(min_value=0, max_value=1 << 63),
        wire_bytes=st.integers(min_value=0, max_value=1 << 20),
        deleted=st.none() | st.booleans(),
    )
    out += draw(st.lists(extra, max_size=5))
    return out


WORLD = _world()


def _assert_sane(result: dict[str, Any]) -> None:
    totals = result["totals"]
    assert all(isinstance(v, int) and v >= 0 for v in totals.values() if isinstance(v, int))
    orjson.dumps(result, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY)  # delivery.json is writable


@FUZZ
@given(deliveries(WORLD.changes), st.sampled_from([None, 10, 20]))
def test_any_delivery_is_checked_without_an_exception(changes: list[Change], conversation: int | None) -> None:
    tracker = WORLD.listen(changes, conversation)
    assert tracker.received == len(changes)
    _assert_sane(WORLD.check(tracker))


@FUZZ
@given(
    st.lists(
        st.fixed_dictionaries(
            {"change_type": st.sampled_from(["insert", "update", "delete"])},
            optional={
                "rows": st.lists(st.dictionaries(st.sampled_from(COLUMNS), ODD_VALUES), max_size=3),
                "old_values": st.lists(st.dictionaries(st.sampled_from(COLUMNS), ODD_VALUES), max_size=3),
            },
        ),
        max_size=6,
    )
)
def test_decoded_frames_of_any_content_are_checked(messages: list[dict[str, Any]]) -> None:
    """The listener's path: a frame's message through ``change_events`` into the tracker and the checker."""
    changes = [c for m in messages for c in wire.change_events(m, WORLD.t, 100, frozenset(COLUMNS[:4]))]
    _assert_sane(WORLD.check(WORLD.listen(changes)))


@FUZZ
@given(deliveries(WORLD.changes))
def test_summaries_survive_their_wire_form(changes: list[Change]) -> None:
    """A worker's summary crosses to the master as JSON: what arrives is what was sent."""
    summary = WORLD.listen(changes).summary()
    sent = orjson.loads(orjson.dumps(summary.to_dict(), option=orjson.OPT_NON_STR_KEYS))
    assert ListenerSummary.from_dict(sent).to_dict() == summary.to_dict()
