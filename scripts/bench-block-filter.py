"""What the edge's block filter costs on fan-out: EventDelivery.handle (the per-event
work of the edge's delivery loop, without the socket writes) for one room event to
1,000 local connections, timed with and without the `_sender` control field and with
blocks held by some connections (docs/benchmarks.md, "Blocking at the edge").

    .venv/bin/python scripts/bench-block-filter.py [connections] [events]
"""

from __future__ import annotations

import statistics
import sys
import time

import zmq
import zmq.asyncio

from chatroom.bus_contract import Control, event_frames, room_topic
from services.tcp_edge.delivery import EventDelivery


class FakeConn:
    """What delivery reads of a connection; the writes are counted, not made."""

    def __init__(self, n: int) -> None:
        self.conn_id = f"c{n}"
        self.is_open = True
        self.session = None


def run(delivery: EventDelivery, frames: list[bytes], events: int) -> float:
    """Microseconds per event (the median of 5 runs)."""
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(events):
            outbox: dict = {}
            delivery.handle(frames, outbox)
        runs.append((time.perf_counter() - start) / events * 1e6)
    return statistics.median(runs)


def main() -> None:
    conns = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    events = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
    sub = zmq.asyncio.Context.instance().socket(zmq.SUB)
    delivery = EventDelivery(sub, None, lambda conn: {})  # type: ignore[arg-type]
    topic = room_topic(1)
    people = [FakeConn(n) for n in range(conns)]
    for conn in people:
        delivery.subs.add(topic, conn)  # type: ignore[arg-type]
    message = {"event": "message", "seq": 1, "text": "x" * 32, Control.ORIGIN: "elsewhere"}
    before = event_frames(topic, message)  # as main publishes it
    after = event_frames(topic, {**message, Control.SENDER: 7})  # with the author
    rows = [("main's event (no _sender), nobody blocks", before)]
    rows.append(("with _sender, nobody blocks", after))
    measured = [(what, run(delivery, frames, events)) for what, frames in rows]
    for conn in people[:10]:  # ten users here block someone else
        delivery.blocks.add(conn, 99)  # type: ignore[arg-type]
    measured.append(("with _sender, 10 block another user", run(delivery, after, events)))
    for conn in people[:10]:  # ...and this sender
        delivery.blocks.add(conn, 7)  # type: ignore[arg-type]
    measured.append(("with _sender, 10 block this sender", run(delivery, after, events)))
    base = measured[0][1]
    print(f"{conns} connections, {events} events, median of 5 runs")
    for what, us in measured:
        print(f"  {what:42s} {us:8.1f} µs/event  ({(us / base - 1) * 100:+.1f} %)")


if __name__ == "__main__":
    main()
