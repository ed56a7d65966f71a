"""Paced writer streams of one rate that start together spread their operations over the period."""

from __future__ import annotations

from harness.plan import Step, WriterSpec
from locustfiles.writers import WriterStream


def test_streams_of_one_rate_start_at_phases_spread_over_the_period() -> None:
    program = (Step("insert", count=10, rate=10.0),)
    starts = []
    for writer_id in range(1, 11):
        spec = WriterSpec(writer_id=writer_id, conversation_id=1, program=program)
        stream = WriterStream(spec, 50, deadline=float("inf"))
        starts.append(stream.next_due() - stream._step_started)
    assert all(0.0 <= s < 0.1 for s in starts)  # within one period of the step's start
    gaps = [b - a for a, b in zip(sorted(starts), sorted(starts)[1:], strict=False)]
    assert min(gaps) > 0.1 / 10 / 3  # ten writers: no two within a third of an even share of the period
