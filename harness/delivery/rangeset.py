"""A set of integers stored as sorted disjoint inclusive ranges.

Written here rather than taken from ``pyroaring`` or ``portion``: roaring bitmaps keep
dense runs as arrays until an explicit ``run_optimize`` and serialize to binary, and
``portion`` models continuous intervals (integer adjacency needs extra handling); what
the tracker needs is one range for a complete in-order stream, an O(1) append at the
end, and a plain JSON form (``[[lo, hi], ...]``) — about a hundred lines.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator


class RangeSet:
    """Integers as sorted disjoint ``[lo, hi]`` ranges (inclusive), merged when adjacent."""

    __slots__ = ("_lo", "_hi", "_count")

    def __init__(self, ranges: Iterable[Iterable[int]] = ()) -> None:
        self._lo: list[int] = []
        self._hi: list[int] = []
        self._count = 0
        for lo, hi in ranges:
            self.add_range(lo, hi)

    def add(self, x: int) -> bool:
        """Add ``x``; return False if it was already present."""
        lo, hi = self._lo, self._hi
        if hi and x == hi[-1] + 1:
            hi[-1] = x
            self._count += 1
            return True
        i = bisect_right(lo, x) - 1
        if i >= 0 and hi[i] >= x:
            return False
        joins_left = i >= 0 and hi[i] == x - 1
        joins_right = i + 1 < len(lo) and lo[i + 1] == x + 1
        if joins_left and joins_right:
            hi[i] = hi[i + 1]
            del lo[i + 1], hi[i + 1]
        elif joins_left:
            hi[i] = x
        elif joins_right:
            lo[i + 1] = x
        else:
            lo.insert(i + 1, x)
            hi.insert(i + 1, x)
        self._count += 1
        return True

    def discard(self, x: int) -> bool:
        """Remove ``x``; return False if it was not present. Splits its range in two when ``x`` is inside."""
        i = bisect_right(self._lo, x) - 1
        if i < 0 or self._hi[i] < x:
            return False
        lo, hi = self._lo[i], self._hi[i]
        if lo == hi:
            del self._lo[i], self._hi[i]
        elif x == lo:
            self._lo[i] = x + 1
        elif x == hi:
            self._hi[i] = x - 1
        else:
            self._hi[i] = x - 1
            self._lo.insert(i + 1, x + 1)
            self._hi.insert(i + 1, hi)
        self._count -= 1
        return True

    def add_range(self, a: int, b: int) -> None:
        """Add every integer of ``[a, b]`` (inclusive)."""
        if a > b:
            return
        if not self._hi or a > self._hi[-1] + 1:
            self._lo.append(a)
            self._hi.append(b)
            self._count += b - a + 1
            return
        merged = _merge(self.ranges(), [(a, b)])
        self._set(merged)

    def __contains__(self, x: object) -> bool:
        if not isinstance(x, int):
            return False
        i = bisect_right(self._lo, x) - 1
        return i >= 0 and self._hi[i] >= x

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RangeSet) and self._lo == other._lo and self._hi == other._hi

    def __repr__(self) -> str:
        return f"RangeSet({self.ranges()})"

    def __iter__(self) -> Iterator[int]:
        for lo, hi in zip(self._lo, self._hi, strict=True):
            yield from range(lo, hi + 1)

    def ranges(self) -> list[tuple[int, int]]:
        return list(zip(self._lo, self._hi, strict=True))

    def first(self, k: int) -> list[int]:
        """The ``k`` smallest members (for witnesses)."""
        out: list[int] = []
        for lo, hi in zip(self._lo, self._hi, strict=True):
            out.extend(range(lo, min(hi, lo + k - len(out) - 1) + 1))
            if len(out) >= k:
                break
        return out

    def max(self) -> int | None:
        return self._hi[-1] if self._hi else None

    def union(self, other: RangeSet) -> RangeSet:
        return RangeSet._of(_merge(self.ranges(), other.ranges()))

    def intersection(self, other: RangeSet) -> RangeSet:
        out: list[tuple[int, int]] = []
        a, b = self.ranges(), other.ranges()
        i = j = 0
        while i < len(a) and j < len(b):
            lo, hi = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
            if lo <= hi:
                out.append((lo, hi))
            if a[i][1] < b[j][1]:
                i += 1
            else:
                j += 1
        return RangeSet._of(out)

    def difference(self, other: RangeSet) -> RangeSet:
        out: list[tuple[int, int]] = []
        b = other.ranges()
        j = 0
        for lo, hi in self.ranges():
            while j < len(b) and b[j][1] < lo:
                j += 1
            k = j
            cur = lo
            while k < len(b) and b[k][0] <= hi:
                if b[k][0] > cur:
                    out.append((cur, b[k][0] - 1))
                cur = max(cur, b[k][1] + 1)
                k += 1
            if cur <= hi:
                out.append((cur, hi))
        return RangeSet._of(out)

    def to_list(self) -> list[list[int]]:
        """Plain JSON form: ``[[lo, hi], ...]``."""
        return [[lo, hi] for lo, hi in zip(self._lo, self._hi, strict=True)]

    @classmethod
    def from_list(cls, data: Iterable[Iterable[int]]) -> RangeSet:
        return cls(data)

    @classmethod
    def _of(cls, sorted_disjoint: list[tuple[int, int]]) -> RangeSet:
        out = cls()
        out._set(sorted_disjoint)
        return out

    def _set(self, ranges: list[tuple[int, int]]) -> None:
        self._lo = [lo for lo, _ in ranges]
        self._hi = [hi for _, hi in ranges]
        self._count = sum(hi - lo + 1 for lo, hi in ranges)


def _merge(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Union of two sorted range lists, adjacent ranges joined."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(a + b):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return out


class RunMap:
    """Integer keys mapped to integer values, stored as runs of consecutive keys that share a value.

    The tracker maps a writer's row numbers to the highest version it received of each: updates
    cycle over a writer's rows oldest first and deletes take the oldest, so the versions of its
    live rows form a few steps, a few runs, however many rows there are.
    """

    __slots__ = ("_lo", "_hi", "_value")

    def __init__(self) -> None:
        self._lo: list[int] = []
        self._hi: list[int] = []
        self._value: list[int] = []

    def get(self, key: int) -> int | None:
        """The value of ``key``, None when it has none."""
        i = bisect_right(self._lo, key) - 1
        return self._value[i] if i >= 0 and key <= self._hi[i] else None

    def set(self, key: int, value: int) -> None:
        """Give ``key`` the value ``value`` (merging it into the runs next to it that have that value)."""
        if self.get(key) == value:
            return
        i = self._cut(key)
        self._lo.insert(i, key)
        self._hi.insert(i, key)
        self._value.insert(i, value)
        if i + 1 < len(self._lo) and self._lo[i + 1] == key + 1 and self._value[i + 1] == value:
            self._hi[i] = self._hi[i + 1]
            self._drop(i + 1)
        if i > 0 and self._hi[i - 1] == key - 1 and self._value[i - 1] == value:
            self._hi[i - 1] = self._hi[i]
            self._drop(i)

    def discard(self, key: int) -> None:
        """Remove ``key`` (nothing when it has no value)."""
        if self.get(key) is not None:
            self._cut(key)

    def runs(self) -> int:
        """How many runs are stored (what the map's memory grows with)."""
        return len(self._lo)

    def _cut(self, key: int) -> int:
        """Take ``key`` out of the run holding it (if any); return where a run starting at ``key`` belongs."""
        i = bisect_right(self._lo, key) - 1
        if i < 0 or key > self._hi[i]:
            return i + 1
        lo, hi, value = self._lo[i], self._hi[i], self._value[i]
        self._drop(i)
        at = i
        if lo < key:
            self._lo.insert(at, lo)
            self._hi.insert(at, key - 1)
            self._value.insert(at, value)
            at += 1
        if key < hi:
            self._lo.insert(at, key + 1)
            self._hi.insert(at, hi)
            self._value.insert(at, value)
        return at

    def _drop(self, i: int) -> None:
        del self._lo[i], self._hi[i], self._value[i]
