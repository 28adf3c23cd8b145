"""FirstCopies: an edge hearing every event through several buses delivers each once
(services/tcp_edge/dedupe.py), without sockets."""

from __future__ import annotations

from chatroom.bus_contract import EventStamps
from services.tcp_edge.dedupe import FirstCopies


def test_the_first_copy_passes_and_later_copies_do_not():
    stamps = EventStamps()
    copies = FirstCopies()
    events = [stamps.next() for _ in range(5)]
    # Two buses: each brings all five, in order, interleaved with the other.
    arrivals = [events[0], events[1], events[0], events[2], events[1], events[2]]
    arrivals += [events[3], events[4], events[4], events[3]]
    passed = [stamp for stamp in arrivals if not copies.seen(stamp)]
    assert passed == events
    assert copies.duplicates == 5


def test_publishers_are_told_apart_and_a_restarted_one_is_new():
    social, media = EventStamps(), EventStamps()
    copies = FirstCopies()
    assert not copies.seen(social.next())
    assert not copies.seen(media.next())  # count 1 of another publisher
    restarted = EventStamps()  # the same service started again counts from 1
    assert not copies.seen(restarted.next())


def test_an_event_without_a_stamp_is_always_delivered():
    copies = FirstCopies()
    assert not copies.seen(b"")
    assert not copies.seen(b"")
    assert not copies.seen(b"short")


def test_memory_is_bounded_by_the_window_and_the_publisher_count():
    stamps = EventStamps()
    copies = FirstCopies(window=100, publishers=3)
    sent = [stamps.next() for _ in range(1_000)]
    for stamp in sent:
        assert not copies.seen(stamp)
    kept = copies._publishers[stamps.publisher]
    assert len(kept.counts) <= 100
    # Copies of recent events are still known; one older than the window is taken as
    # seen (a late copy is dropped; an event that never came is what sync closes).
    assert copies.seen(sent[-1])
    assert copies.seen(sent[0])
    for _ in range(5):
        copies.seen(EventStamps().next())
    assert len(copies._publishers) == 3
    # The oldest publisher was forgotten: its next event passes (as a new publisher's).
    assert not copies.seen(stamps.next())
