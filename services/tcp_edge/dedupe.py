"""Which events an edge has had already, when several buses each bring a copy or a
service sends one again.

Every service publishes each event through every bus (CHAT_BUS_HOSTS), so that losing a
bus loses no event; an edge subscribed through all of them hears each event once per
live bus. And a service sends its recent presence pushes again through a bus whose link
was just made (chatroom/event_replay.py), one bus or several. The event's stamp
(chatroom.bus_contract.EventStamps: the publishing process and its count) tells the
copies apart from new events: the first copy is delivered, the others dropped. Copies
through several buses arrive close together (each bus forwards in order, within
milliseconds of the others), so a window of the most recent counts of each publisher is
enough; a copy so late that its count has left the window is taken as seen (a missing
event is what `sync` closes, a duplicate is what a client must never see). A presence
push sent again seconds later is still in the window unless its publisher sent more
than WINDOW/2 events meanwhile; past that it is dropped, the state it carries being
the older for it.
"""

from __future__ import annotations

from collections import OrderedDict

from chatroom.bus_contract import EventStamps

# Counts remembered per publisher: at 100,000 events/s from one publisher, 0.6 s of
# them; copies come within milliseconds of each other.
WINDOW = 65_536
# Publishers remembered (a restarted service is a new one): the least recently heard is
# forgotten first. Far more than the service replicas of any deployment.
PUBLISHERS = 1_024


class _Publisher:
    __slots__ = ("floor", "counts")

    def __init__(self) -> None:
        self.floor = 0  # every count up to here is taken as seen
        self.counts: set[int] = set()  # counts above the floor that were seen


class FirstCopies:
    def __init__(self, window: int = WINDOW, publishers: int = PUBLISHERS) -> None:
        self.window = window
        self.max_publishers = publishers
        self._publishers: OrderedDict[bytes, _Publisher] = OrderedDict()
        self.duplicates = 0  # copies dropped (for tests and metrics)

    def seen(self, stamp: bytes) -> bool:
        """True if an event with this stamp came before (drop it); else remember it.
        An event without a stamp (not one an edge delivers twice) is never seen."""
        if len(stamp) != EventStamps.SIZE:
            return False
        key, count = stamp[:8], int.from_bytes(stamp[8:], "big")
        publisher = self._publishers.get(key)
        if publisher is None:
            publisher = self._publishers[key] = _Publisher()
            if len(self._publishers) > self.max_publishers:
                self._publishers.popitem(last=False)
        elif len(self._publishers) > 1:
            self._publishers.move_to_end(key)
        if count <= publisher.floor or count in publisher.counts:
            self.duplicates += 1
            return True
        publisher.counts.add(count)
        if len(publisher.counts) > self.window:
            # Forget the older half: one pass every window/2 events.
            publisher.floor = max(publisher.counts) - self.window // 2
            publisher.counts = {c for c in publisher.counts if c > publisher.floor}
        return False
