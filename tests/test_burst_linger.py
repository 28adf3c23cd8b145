"""When the edge holds a burst of events for more (services/tcp_edge/delivery.py,
BurstLinger): only while events stream in, to many connections here; never after a
pause, never for an event to a few (a private message), never when turned off.
Its effect on the edge's CPU is measured by `python -m loadtest openloop`
(docs/benchmarks.md, "Session 19"), not here."""

from __future__ import annotations

from services.tcp_edge.delivery import BurstLinger

ROOM = BurstLinger.FAN_OUT  # an event many connections here hear


def test_the_first_burst_and_one_after_a_pause_go_at_once():
    linger = BurstLinger(0.003)
    assert linger.wait_s(100.0, ROOM) == 0.0  # nothing came before it
    linger.taken(100.0)
    pause = 0.003 * BurstLinger.STREAMING
    assert linger.wait_s(100.0 + pause + 0.001, ROOM) == 0.0


def test_a_burst_in_a_stream_waits_for_company():
    linger = BurstLinger(0.003)
    linger.taken(100.0)
    assert linger.wait_s(100.001, ROOM) == 0.003
    linger.taken(100.004)  # after its wait
    assert linger.wait_s(100.010, ROOM) == 0.003  # still within four lingers of the last


def test_no_linger_never_waits():
    linger = BurstLinger(0.0)
    linger.taken(100.0)
    assert linger.wait_s(100.0001, ROOM) == 0.0


def test_an_event_for_a_few_connections_never_waits():
    linger = BurstLinger(0.003)
    linger.taken(100.0)
    assert linger.wait_s(100.001, BurstLinger.FAN_OUT - 1) == 0.0
