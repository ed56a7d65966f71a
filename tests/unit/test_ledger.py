"""Writers' ledger: outcomes as range sets, coarse time index, plain-dict round trip."""

import orjson

from harness.delivery.ledger import INF, TimeIndex, WriterLedger, writes_summary
from harness.targets.base import Outcome, WriteResult

MS = 1_000_000


def _res(outcome: Outcome, t: int) -> WriteResult:
    return WriteResult(outcome, t, t + MS)


def test_outcomes_counts_and_round_trip() -> None:
    led = WriterLedger(1, 10)
    t = 0
    for w in range(1, 101):
        outcome = Outcome.FAILED if w == 50 else Outcome.INDETERMINATE if w == 60 else Outcome.OK
        led.record("insert" if w <= 80 else "update", w, _res(outcome, t))
        t += 2 * MS
    for n in range(1, 11):
        led.record("delete", n, _res(Outcome.OK, t))
        t += 2 * MS
    assert led.written("ok").ranges() == [(1, 49), (51, 59), (61, 100)]
    assert led.written("ok", "indeterminate").ranges() == [(1, 49), (51, 100)]
    assert led.deleted("ok").ranges() == [(1, 10)]
    counts = led.outcome_counts()
    assert counts["ok"] == {"insert": 78, "update": 20, "delete": 10}
    assert counts["failed"]["insert"] == 1 and counts["indeterminate"]["insert"] == 1
    back = WriterLedger.from_dict(orjson.loads(orjson.dumps(led.to_dict())))
    assert back.to_dict() == led.to_dict()
    summary = writes_summary([back])
    assert summary["writers"]["1"]["ok"]["insert"] == 78 and summary["totals"]["failed"]["insert"] == 1
    assert len(summary["writers"]["1"]["errors"]) == 2


def test_time_index_is_coarse_and_bounds_are_safe() -> None:
    idx = TimeIndex(interval_ns=50 * MS)
    times = {}
    for k in range(1, 10_001):  # one op per ms: 10 s of ops
        inv = k * MS
        idx.add(k, inv, inv + MS // 2)
        times[k] = (inv, inv + MS // 2)
    assert len(idx.points()) <= 10_000 // 50 + 2
    for t in (0, 1234 * MS, 5000 * MS + 3, 10_001 * MS):
        lo = idx.first_invoked_at_or_after(t)
        assert all(times[k][0] >= t for k in range(lo, 10_001))
        assert lo == INF or lo - min([k for k in times if times[k][0] >= t], default=lo) <= 50
        hi = idx.last_acked_at_or_before(t)
        assert all(times[k][1] <= t for k in range(1, hi + 1))
        plo = idx.first_possibly_acked_at_or_after(t)
        assert all(times[k][1] < t for k in range(1, min(plo, 10_001)))
        phi = idx.last_possibly_invoked_at_or_before(t)
        assert all(times[k][0] > t for k in range(max(phi + 1, 1), 10_001))
