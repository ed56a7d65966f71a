"""Each worker's clock offset to the master, estimated from a ping exchange over Locust's messages.

Delivery latency is a receive time on a listener's machine minus a commit time stamped on a
writer's machine, so a worker whose clock is off shifts every latency it measures. A worker pings
the master a few times when it gets the plan; the ping with the shortest round trip bounds the
offset best (Cristian's method): ``offset = master_time - (sent + received) / 2``, known to within
half that round trip. The master records each worker's estimate in ``run.json`` ``clocks``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import gevent
from gevent.queue import Empty, Queue

from locustfiles import messages
from locustfiles.messages import ClockOffset, ClockPing, ClockPong, Runner

PINGS = 5
PING_TIMEOUT_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Sample:
    """One answered ping: the worker's send and receive times and the master's time in between."""

    sent: float
    master: float
    received: float

    @property
    def rtt(self) -> float:
        return self.received - self.sent

    @property
    def offset(self) -> float:
        return self.master - (self.sent + self.received) / 2


def estimate(samples: list[Sample]) -> ClockOffset | None:
    """The offset of the sample with the shortest round trip, or None without samples."""
    if not samples:
        return None
    best = min(samples, key=lambda s: s.rtt)
    return ClockOffset(offset_s=best.offset, rtt_s=best.rtt, samples=len(samples))


def answer_pings(runner: Runner) -> None:
    """On the master: answer every worker's ping with the master's time."""
    messages.on(
        runner,
        ClockPing,
        lambda msg, node_id: messages.send(runner, ClockPong(msg.sent, time.time()), client_id=node_id),
    )


def measure(runner: Runner, pings: int = PINGS) -> ClockOffset | None:
    """On a worker: ping the master ``pings`` times, one at a time, and return the estimate (None if unanswered)."""
    answers: Queue[ClockPong] = Queue()
    messages.on(runner, ClockPong, lambda msg, _node: answers.put(msg))
    samples: list[Sample] = []
    for _ in range(pings):
        messages.send(runner, ClockPing(time.time()))
        try:
            pong = answers.get(timeout=PING_TIMEOUT_SECONDS)
        except Empty:
            continue
        samples.append(Sample(pong.sent, pong.master, time.time()))
        gevent.sleep(0.05)
    return estimate(samples)
