"""The edge's delivery while a login is under way (services/tcp_edge/delivery.py,
EventDelivery.hold): the connection hears its user's topic from before the snapshot is
read, and what comes meanwhile is kept for after the reply. The race it closes is
tested end to end in tests/test_presence_versions.py; these are the cases that race
cannot reach on demand: an acknowledgement, a kick and a failed login meeting a
connection that is still logging in. The connections are stand-ins with what delivery
reads of one (as scripts/bench-block-filter.py's)."""

from __future__ import annotations

from typing import Any

import zmq

from chatroom.bus_contract import Control, event_frames, user_topic
from chatroom.framing import HEADER_SIZE, loads
from services.tcp_edge.delivery import EventDelivery

TOPIC = user_topic(5)


class StandIn:
    def __init__(self, name: str, session_id: int | None = None) -> None:
        self.conn_id = name
        self.is_open = True
        self.session = None if session_id is None else type("S", (), {"session_id": session_id})
        self.written: list[bytes] = []
        self.rooms: set[int] = set()

    def send_frame(self, frame: bytes) -> bool:
        self.written.append(frame)
        return True

    def close(self) -> None:
        self.is_open = False

    def join_room(self, room_id: int) -> None:
        self.rooms.add(room_id)

    def leave_room(self, room_id: int) -> None:
        self.rooms.discard(room_id)

    def events(self) -> list[dict[str, Any]]:
        out = []
        for chunk in self.written:
            while chunk:
                size = int.from_bytes(chunk[:HEADER_SIZE], "big")
                out.append(loads(chunk[HEADER_SIZE : HEADER_SIZE + size]))
                chunk = chunk[HEADER_SIZE + size :]
        return out


def delivery() -> tuple[EventDelivery, list[tuple[dict, str]]]:
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    acks: list[tuple[dict, str]] = []
    found = EventDelivery(sub, None, lambda conn: {})  # type: ignore[arg-type]
    found.acknowledge_soon = lambda ack, conn: acks.append((ack, conn.conn_id))  # type: ignore[method-assign]
    return found, acks


def publish(found: EventDelivery, event: dict[str, Any], stamp: bytes) -> None:
    outbox: dict = {}
    found.handle(event_frames(TOPIC, event, stamp), outbox)
    found._write(outbox)


def test_what_comes_during_a_login_follows_it_and_its_controls_apply():
    found, _ = delivery()
    phone = StandIn("phone")
    found.hold(phone, TOPIC, session_id=7)  # type: ignore[arg-type]
    publish(found, {"event": "presence", "online": True, "presence_version": 3}, b"1")
    publish(found, {"event": "room.joined", Control.JOIN: 12}, b"2")
    assert phone.written == []  # nothing before the reply
    hold = found.release(phone, logged_in=True)  # type: ignore[arg-type]
    assert hold is not None
    assert [e["event"] for e in hold.events()] == ["presence", "room.joined"]
    assert hold.controls == [{Control.JOIN: 12}]
    assert found.subs.targets(TOPIC) == {phone}  # still heard: log_in's own subscription
    # After the login, events go straight out.
    publish(found, {"event": "presence", "online": False, "presence_version": 4}, b"3")
    assert [e["presence_version"] for e in phone.events()] == [4]


def test_a_failed_login_stops_hearing_the_topic_and_keeps_no_acknowledgement():
    found, acks = delivery()
    phone = StandIn("phone")
    found.hold(phone, TOPIC, session_id=7)  # type: ignore[arg-type]
    publish(found, {"event": "friend.rejected", Control.ACK: {"op": "x"}}, b"1")
    assert acks == []  # not yet: the login may fail
    hold = found.release(phone, logged_in=False)  # type: ignore[arg-type]
    assert hold is not None and hold.acks == [{"op": "x"}]  # the caller drops them
    assert found.subs.targets(TOPIC) == set()


def test_a_must_deliver_push_is_acknowledged_through_a_logged_in_device():
    found, acks = delivery()
    laptop, phone = StandIn("laptop", session_id=6), StandIn("phone")
    found.subs.add(TOPIC, laptop)  # type: ignore[arg-type]
    found.hold(phone, TOPIC, session_id=7)  # type: ignore[arg-type]
    for n in range(20):  # whichever of the two the set yields last
        publish(found, {"event": "friend.rejected", Control.ACK: {"op": n}}, b"%d" % n)
    assert [conn for _, conn in acks] == ["laptop"] * 20
    hold = found.release(phone, logged_in=True)  # type: ignore[arg-type]
    assert hold is not None and hold.acks == []


def test_a_kick_of_the_session_being_opened_closes_its_connection():
    found, _ = delivery()
    laptop, phone = StandIn("laptop", session_id=6), StandIn("phone")
    found.subs.add(TOPIC, laptop)  # type: ignore[arg-type]
    found.hold(phone, TOPIC, session_id=7)  # type: ignore[arg-type]
    publish(found, {"event": "closing", Control.KICK: True, Control.SESSION: 7}, b"1")
    assert not phone.is_open and laptop.is_open
    # "Sign out my other devices" from the new session: the old one goes, it stays.
    found2, _ = delivery()
    laptop2, phone2 = StandIn("laptop", session_id=6), StandIn("phone")
    found2.subs.add(TOPIC, laptop2)  # type: ignore[arg-type]
    found2.hold(phone2, TOPIC, session_id=7)  # type: ignore[arg-type]
    publish(found2, {"event": "closing", Control.KICK: True, Control.KEEP: 7}, b"1")
    assert phone2.is_open and not laptop2.is_open


def test_a_closed_connection_gets_no_blocks_back():
    found, _ = delivery()
    phone = StandIn("phone")
    found.hold(phone, TOPIC, session_id=7)  # type: ignore[arg-type]
    phone.is_open = False  # closed during the login: the edge forgot its blocks
    publish(found, {"event": "block.added", Control.BLOCK: 9}, b"1")
    assert found.blocks.hidden_from == {}
