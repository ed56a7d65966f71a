"""Latency histogram: merge, transport encoding and percentiles."""

from harness.delivery.latency import LatencyHistogram


def test_percentiles_within_three_significant_digits() -> None:
    h = LatencyHistogram()
    for ms in range(1, 1001):
        h.record_us(ms * 1000)
    p = h.percentiles_ms()
    assert p["count"] == 1000
    assert abs(p["p50"] - 500) <= 0.5 * 1.001 + 1
    assert abs(p["p99"] - 990) <= 1
    assert abs(p["max"] - 1000) <= 1


def test_merge_of_decoded_parts_equals_whole() -> None:
    whole, a, b = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    for v in range(100, 50_000, 37):
        whole.record_us(v)
        (a if v % 2 else b).record_us(v)
    merged = LatencyHistogram.decode(a.encode())
    merged.merge(LatencyHistogram.decode(b.encode()))
    assert merged.percentiles_ms() == whole.percentiles_ms()


def test_empty_and_out_of_range_values() -> None:
    h = LatencyHistogram.decode(LatencyHistogram().encode())
    assert h.percentiles_ms() == {
        "p50": None,
        "p95": None,
        "p99": None,
        "max": None,
        "count": 0,
        "negative": 0,
    }
    h.record_us(-5)
    h.record_us(10**13)
    assert h.count == 2 and h.clamped == 1 and h.negative == 1
    again = LatencyHistogram.decode(h.encode())
    assert (again.clamped, again.negative, again.percentiles_ms()["negative"]) == (1, 1, 1)


def test_sparse_buckets_give_the_figures_hdr_recording_each_value_gives() -> None:
    """The histogram holds bucket counts, not HDR's whole array; its percentiles are HDR's own."""
    import random

    from hdrh.histogram import HdrHistogram

    from harness.delivery.latency import HIGHEST_US, LOWEST_US, SIGNIFICANT_DIGITS

    rng = random.Random(7)
    values = [int(rng.lognormvariate(8, 1.5)) + 1 for _ in range(5000)]
    ours, hdr = LatencyHistogram(), HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)
    for v in values:
        ours.record_us(v)
        hdr.record_value(min(v, HIGHEST_US))
    got = LatencyHistogram.decode(ours.encode()).percentiles_ms()
    for q in (50, 95, 99):
        assert got[f"p{q}"] == hdr.get_value_at_percentile(q) / 1000
    assert got["max"] == hdr.get_max_value() / 1000 and got["count"] == len(values)


def test_the_bucket_arithmetic_is_hdrs_lowest_equivalent_value() -> None:
    from harness.delivery.latency import _LAYOUT, HIGHEST_US, LOWEST_US, _bucket

    edges = [2**k + d for k in range(0, 32) for d in (-1, 0, 1)]
    values = [
        v for v in [*range(1, 5000), *edges, *range(10**6, 10**6 + 3000), HIGHEST_US] if LOWEST_US <= v <= HIGHEST_US
    ]
    assert [_bucket(v) for v in values] == [_LAYOUT.get_lowest_equivalent_value(v) for v in values]
