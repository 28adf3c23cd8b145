"""When the edge holds a burst of events for more (services/tcp_edge/delivery.py,
BurstLinger): only while events stream in, to many connections here, at least one a
linger; never after a pause, never for an event to a few (a private message), never
while they come slower than one a linger, never when turned off. Its effect on the
edge's CPU and on latency is measured by `python -m loadtest openloop`
(docs/benchmarks.md, "Session 19" and "Session 21"), not here."""

from __future__ import annotations

import pytest

from services.tcp_edge.delivery import BurstLinger

ROOM = BurstLinger.FAN_OUT  # an event many connections here hear
LINGER = 0.003


def stream(linger: BurstLinger, start: float, per_s: float, seconds: float = 0.2) -> float:
    """Single events every 1/per_s seconds, each taken at once; the time of the last."""
    now = start
    for _ in range(int(per_s * seconds)):
        now += 1 / per_s
        linger.came(now, 1)
        linger.taken(now)
    return now


def test_the_first_burst_and_one_after_a_pause_go_at_once():
    linger = BurstLinger(LINGER)
    linger.came(100.0, 1)
    assert linger.wait_s(100.0, ROOM) == 0.0  # nothing came before it
    last = stream(linger, 100.0, 1000)
    pause = LINGER * BurstLinger.STREAMING
    linger.came(last + pause + 0.001, 1)
    assert linger.wait_s(last + pause + 0.001, ROOM) == 0.0


def test_a_burst_in_a_fast_stream_waits_for_company():
    linger = BurstLinger(LINGER)
    last = stream(linger, 100.0, 1000)  # three events a linger
    linger.came(last + 0.001, 1)
    assert linger.wait_s(last + 0.001, ROOM) == LINGER
    linger.came(last + 0.004, 2)  # what came while it waited
    linger.taken(last + 0.004)
    linger.came(last + 0.006, 1)
    assert linger.wait_s(last + 0.006, ROOM) == LINGER


@pytest.mark.parametrize("per_s", [50, 200, 300])
def test_a_stream_slower_than_one_event_a_linger_never_waits(per_s: float) -> None:
    """At 200 events/s (5 ms apart) a 3 ms wait rarely catches another, and cost every
    message the linger."""
    linger = BurstLinger(LINGER)
    now = 100.0
    for _ in range(int(per_s)):  # a second of them
        now += 1 / per_s
        linger.came(now, 1)
        assert linger.wait_s(now, ROOM) == 0.0
        linger.taken(now)


def test_the_rate_follows_the_stream_up_and_down():
    linger = BurstLinger(LINGER)
    last = stream(linger, 100.0, 200)
    assert linger.rate(last) == pytest.approx(200, rel=0.1)
    last = stream(linger, last, 1000)
    assert linger.rate(last) == pytest.approx(1000, rel=0.1)
    assert linger.wait_s(last + 0.001, ROOM) == LINGER
    assert linger.rate(last + 1.0) < 1  # a second later, a quiet room


def test_no_linger_never_waits():
    linger = BurstLinger(0.0)
    last = stream(linger, 100.0, 1000)
    assert linger.wait_s(last + 0.0001, ROOM) == 0.0


def test_an_event_for_a_few_connections_never_waits():
    linger = BurstLinger(LINGER)
    last = stream(linger, 100.0, 1000)
    assert linger.wait_s(last + 0.001, BurstLinger.FAN_OUT - 1) == 0.0
