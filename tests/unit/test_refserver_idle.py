"""The reference server's idle release runs once per quiet spell after writes, never while writes come."""

from __future__ import annotations

from pathlib import Path

from refserver.idle import IdleRelease
from refserver.storage import Store


def test_release_waits_for_a_quiet_spell_after_writes_and_runs_once(tmp_path: Path) -> None:
    writes = [0]
    idle = IdleRelease(Store(tmp_path / "db.sqlite3"), lambda: writes[0], idle_seconds=10)
    assert not any(idle.step(t) for t in range(0, 30))  # no write yet: nothing to give back
    for t in range(30, 60):  # a write every second: never quiet for 10 s
        writes[0] += 1
        assert not idle.step(t)
    released = [t for t in range(60, 100) if idle.step(t)]
    assert released == [69]  # 10 s after the last write (at 59), once
    writes[0] += 1
    assert not idle.step(100)
    assert [t for t in range(101, 130) if idle.step(t)] == [110]
    assert idle.releases == 2


def test_release_shrinks_sqlite_and_survives_a_c_library_without_malloc_trim(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite3")
    idle = IdleRelease(store, lambda: 0)
    idle._trim = None  # as on musl or macOS
    idle.release()
    assert idle.releases == 1
    assert store.db.execute("SELECT count(*) FROM __namespaces").fetchone()[0] >= 1  # the store still works
