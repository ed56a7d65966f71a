"""Issue 8, case 8: a stale tombstone (the values of a version the row had already left, self-consistent)
is a delete value error; a tombstone of the row's last version, a key-only filter leave and a
listener that never saw the later version are not."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

import pytest

from harness.delivery.anomalies import Anomaly
from harness.delivery.rangeset import RunMap
from harness.targets.base import Change, Op
from tests.support.delivery_world import World


def _counts(report: dict[str, Any]) -> dict[str, int]:
    return {str(k): report["totals"][k] for k in Anomaly if k is not Anomaly.LATE and report["totals"][k]}


def _world() -> tuple[World, dict[str, Any]]:
    """Writer 1: 3 inserts, row 1 updated twice (version 3), then deleted; the version-2 row as it was."""
    world = World()
    world.writer(1, 10)
    for _ in range(3):
        world.insert(1)
    world.update(1, 1)
    second = dict(world.writers[1].versions[1])
    world.update(1, 1)
    world.delete(1, 1)
    return world, second


def _stale(world: World, version: dict[str, Any]) -> list[Change]:
    """The stream with row 1's tombstone replaced by ``version`` (consistent with itself, but old)."""
    return [replace(c, old_row={**version, "_deleted": True}) if c.op is Op.DELETE else c for c in world.changes]


def test_a_tombstone_of_a_version_the_row_had_left_is_a_delete_value_error() -> None:
    world, second = _world()
    assert _counts(world.check(world.listen(world.changes))) == {}
    report = world.check(world.listen(_stale(world, second)))
    assert _counts(report) == {Anomaly.DELETE_VALUE: 1}
    (witness,) = [w for w in report["witnesses"] if w["kind"] == Anomaly.DELETE_VALUE]
    assert (witness["writer"], witness["row"], witness["op"]) == (1, 1, "delete")
    assert "version 3" in witness["expected"] and "version 2" in witness["observed"]


def test_the_inserts_version_as_tombstone_after_updates_is_stale_too() -> None:
    world, _ = _world()
    first = world.changes[0].row
    assert first is not None
    assert _counts(world.check(world.listen(_stale(world, first)))) == {Anomaly.DELETE_VALUE: 1}


def test_a_garbled_stale_tombstone_counts_once() -> None:
    world, second = _world()
    report = world.check(world.listen(_stale(world, {**second, "content": "garbled"})))
    assert _counts(report) == {Anomaly.DELETE_VALUE: 1}


def test_a_key_only_filter_leave_carries_no_version_and_is_not_called_stale() -> None:
    world, _ = _world()
    leave = [
        replace(c, old_row={"id": c.old_row["id"]}, deleted=False) if c.op is Op.DELETE and c.old_row else c
        for c in world.changes
    ]
    assert Anomaly.DELETE_VALUE not in _counts(world.check(world.listen(leave)))


def test_a_listener_that_missed_the_later_version_cannot_tell_and_reports_the_loss() -> None:
    world, second = _world()
    stream = [c for c in _stale(world, second) if not (c.op is Op.UPDATE and c.row and c.row["version"] == 3)]
    assert _counts(world.check(world.listen(stream))) == {Anomaly.LOST: 1}


def test_run_map_keeps_a_staircase_of_versions_in_few_runs() -> None:
    versions = RunMap()
    for n in range(1, 1001):  # every row updated once, oldest first, then half of them again
        versions.set(n, 2)
    for n in range(1, 501):
        versions.set(n, 3)
    assert versions.runs() == 2
    for n in range(1, 301):  # deletes take the oldest rows
        versions.discard(n)
    assert versions.runs() == 2 and versions.get(300) is None and versions.get(301) == 3
    assert versions.get(501) == 2 and versions.get(1001) is None


def test_run_map_matches_a_dict_under_random_edits() -> None:
    rng = random.Random(7)
    versions, plain = RunMap(), dict[int, int]()
    for _ in range(5000):
        key = rng.randint(1, 60)
        if rng.random() < 0.3:
            versions.discard(key)
            plain.pop(key, None)
        else:
            value = rng.randint(2, 4)
            versions.set(key, value)
            plain[key] = value
        assert all(versions.get(k) == plain.get(k) for k in range(0, 62))
    runs = sorted(plain)
    breaks = sum(1 for a, b in zip(runs, runs[1:], strict=False) if b != a + 1 or plain[a] != plain[b])
    assert versions.runs() == (breaks + 1 if plain else 0)


def _mixed_world(ops: int, weights: tuple[float, float, float]) -> World:
    """One writer's mixed stream as its program runs it: updates cycle over live rows oldest first,
    deletes take the oldest live row."""
    world = World()
    world.writer(1, 10)
    rng = random.Random(3)
    live: list[int] = []
    cursor = 0
    for _ in range(ops):
        op = rng.choices(("insert", "update", "delete"), weights=weights)[0]
        if op == "insert" or not live:
            live.append(world.insert(1))
        elif op == "update":
            cursor = cursor if cursor < len(live) else 0
            world.update(1, live[cursor])
            cursor += 1
        else:
            world.delete(1, live.pop(0))
            cursor = max(0, cursor - 1)
    return world


@pytest.mark.parametrize("weights", [(0.4, 0.2, 0.4), (0.6, 0.3, 0.1), (0.2, 0.6, 0.2)])
def test_the_versions_a_tracker_keeps_stay_a_few_runs_however_long_the_stream(weights) -> None:
    world = _mixed_world(4000, weights)
    tracker = world.listen(world.changes)
    assert _counts(world.check(tracker)) == {}
    runs = tracker._writers[1].versions.runs()
    assert runs <= 4, (weights, runs)
