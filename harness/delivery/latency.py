"""Mergeable delivery-latency histogram (HdrHistogram over microseconds).

Listeners on many workers record into their own histograms; the master merges the
encoded forms, so percentiles are exact over all notifications rather than averaged.
HDR keeps values exact to 3 significant digits (a reported 12.3 ms is within 0.1 %).
Range: 1 µs to 1 hour; larger values are clamped to the top and counted in ``clamped``,
negative ones (a receive clock behind the sender's) recorded as 1 µs and counted in ``negative``.
"""

from __future__ import annotations

import numpy as np
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000
SIGNIFICANT_DIGITS = 3


# HDR's bucket layout for the range, used only to find a value's bucket; never recorded into.
_LAYOUT = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
_MASK = _LAYOUT.sub_bucket_mask
_UNIT = _LAYOUT.unit_magnitude
_SHIFT_BASE = _UNIT + _LAYOUT.sub_bucket_half_count_magnitude + 1


def _bucket(value: int) -> int:
    """HDR's lowest equivalent value of ``value`` (within the range), by its bucket arithmetic.

    HDR finds a value's bucket from the highest set bit of ``value | sub_bucket_mask``; the
    bucket's lowest value keeps the sub-bucket bits and clears the ones below. This is the same
    result as ``HdrHistogram.get_lowest_equivalent_value`` (unit-tested), without its Python calls
    on every notification.
    """
    shift = (value | _MASK).bit_length() - _SHIFT_BASE + _UNIT
    return value >> shift << shift


class LatencyHistogram:
    """Latencies in microseconds; merge, encode to a compact string, read percentiles in ms.

    Held sparse: a map from HDR bucket (its lowest equivalent value) to count, so a listener's
    histogram costs memory per distinct bucket it saw rather than HDR's whole counts array
    (about 190 KB at this range and precision, twice per listener). An HDR histogram is built
    only to encode or to read percentiles; it holds the same buckets, so every figure is the
    one HDR recording each value would give.
    """

    __slots__ = ("_buckets", "_count", "clamped", "negative")

    def __init__(self) -> None:
        self._buckets: dict[int, int] = {}
        self._count = 0
        self.clamped = 0
        self.negative = 0

    def record_us(self, value_us: int) -> None:
        """Record one latency; negative values (clock skew) count as the lowest bucket, and are counted."""
        if value_us > HIGHEST_US:
            self.clamped += 1
            value_us = HIGHEST_US
        elif value_us < LOWEST_US:
            if value_us < 0:
                self.negative += 1
            value_us = LOWEST_US
        key = _bucket(value_us)
        buckets = self._buckets
        buckets[key] = buckets.get(key, 0) + 1
        self._count += 1

    @property
    def count(self) -> int:
        return self._count

    def merge(self, other: LatencyHistogram) -> None:
        """Add every value of ``other`` into this histogram."""
        buckets = self._buckets
        for key, n in other._buckets.items():
            buckets[key] = buckets.get(key, 0) + n
        self._count += other._count
        self.clamped += other.clamped
        self.negative += other.negative

    def reset(self) -> None:
        self._buckets.clear()
        self._count = 0
        self.clamped = 0
        self.negative = 0

    def _hdr(self) -> HdrHistogram:
        h = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
        for key, n in self._buckets.items():
            h.record_value(key, n)
        return h

    def encode(self) -> str:
        """Compact transport form: ``clamped,negative:`` then HDR's compressed base64."""
        body = self._hdr().encode().decode("ascii") if self.count else ""
        return f"{self.clamped},{self.negative}:{body}"

    @classmethod
    def decode(cls, text: str) -> LatencyHistogram:
        counts, _, body = text.partition(":")
        clamped, _, negative = counts.partition(",")
        out = cls()
        out.clamped = int(clamped or 0)
        out.negative = int(negative or 0)
        if body:
            h = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
            h.decode_and_add(body.encode("ascii"))
            # the non-zero counts straight from HDR's array: its Python iterators cost ~1 s per
            # hundred decodes, which stalled the coordinator's live view
            array = np.ctypeslib.as_array(h.counts)
            for index in np.flatnonzero(array).tolist():
                n = int(array[index])
                key = _bucket(h.get_value_from_index(index))
                out._buckets[key] = out._buckets.get(key, 0) + n
                out._count += n
        return out

    def percentiles_ms(self) -> dict[str, float | int | None]:
        """``p50``, ``p95``, ``p99``, ``max`` in milliseconds (None when empty), ``count`` and ``negative``."""
        if not self.count:
            return {"p50": None, "p95": None, "p99": None, "max": None, "count": 0, "negative": 0}
        h = self._hdr()
        return {
            "p50": h.get_value_at_percentile(50) / 1000,
            "p95": h.get_value_at_percentile(95) / 1000,
            "p99": h.get_value_at_percentile(99) / 1000,
            "max": h.get_max_value() / 1000,
            "count": self.count,
            "negative": self.negative,
        }
