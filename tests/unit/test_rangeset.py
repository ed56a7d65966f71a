"""RangeSet: integer sets as ranges, checked against Python sets."""

import random

from harness.delivery.rangeset import RangeSet


def test_in_order_adds_stay_one_range() -> None:
    rs = RangeSet()
    for x in range(1, 10_001):
        assert rs.add(x)
    assert len(rs.ranges()) == 1 and len(rs) == 10_000
    assert not rs.add(5)


def test_matches_python_set_under_random_ops() -> None:
    rng = random.Random(7)
    for _ in range(50):
        a, b = RangeSet(), RangeSet()
        sa, sb = set(), set()
        for _ in range(200):
            x = rng.randint(0, 120)
            assert a.add(x) == (x not in sa)
            sa.add(x)
            lo = rng.randint(0, 120)
            hi = lo + rng.randint(0, 6)
            b.add_range(lo, hi)
            sb.update(range(lo, hi + 1))
        assert set(a) == sa and len(a) == len(sa)
        assert set(a.union(b)) == sa | sb
        assert set(a.intersection(b)) == sa & sb
        assert set(a.difference(b)) == sa - sb
        assert all((x in a) == (x in sa) for x in range(-2, 130))
        assert a.first(3) == sorted(sa)[:3]
        assert RangeSet.from_list(a.to_list()) == a
