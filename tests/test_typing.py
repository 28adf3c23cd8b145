"""Typing indicators through the real system (edge, bus, social; SQLite and MariaDB):
who is told, what the edge keeps to itself, and the bad requests."""

from __future__ import annotations

import time

from chatroom.framing import encode_frame
from services.tcp_edge.typing_hints import REMEMBERED_PER_CONNECTION, TypingCoalescer

from wire import WireClient, befriend, users


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_edge_forwards_only_what_changes_what_others_see():
    clock, conn = Clock(), object()
    hints = TypingCoalescer(clock)

    def send(on: bool, room: str = "lobby", user: int = 1) -> bool:
        args = {"room": room, "on": on}
        forward = hints.should_forward(conn, user, args)
        if forward:
            hints.forwarded(conn, user, args)
        return forward

    assert send(False) is False  # never shown: nothing to stop
    assert send(True) is True
    clock.now += 2.9
    assert send(True) is False  # renewal too soon
    clock.now += 0.2
    assert send(True) is True  # renewal due (3 s)
    assert send(False) is True and send(False) is False
    assert send(True, user=2) is True  # another user on the connection starts afresh
    for index in range(REMEMBERED_PER_CONNECTION + 5):  # memory per connection is bounded
        send(True, room=f"room{index}", user=2)
    assert len(hints._sent[conn][1]) == REMEMBERED_PER_CONNECTION
    hints.forget(conn)
    assert conn not in hints._sent


def _typing_hints(client: WireClient, until_on: bool) -> list[dict]:
    """The typing hints `client` gets (each push lists some), each with its push's other
    fields, up to and including the first with on=until_on."""
    seen: list[dict] = []
    while not seen or seen[-1]["on"] is not until_on:
        push = client.event("typing", timeout=10)
        seen += [{**push, **hint} for hint in push.pop("hints")]
    return seen


def _hint(push: dict) -> dict:
    """The one hint of a push that has one, with the push's other fields."""
    (hint,) = push["hints"]
    return {**push, **hint}


def test_room_members_see_typing_start_and_stop_once(make_stack, db_url):
    stack = make_stack(db_url, edges=2)
    ann = WireClient(stack.edge_ports[0])
    bob = WireClient(stack.edge_ports[1])  # the hint crosses edges through the bus
    try:
        ann.register_and_login("ann")
        bob.register_and_login("bob")
        ann.call("room.create", room="Book Club")
        bob.call("room.join", room="book club")
        first = ann.call("typing", room="Book Club", on=True)
        assert first["forwarded"] is True
        # Keystrokes within the renewal interval change nothing for bob: not forwarded.
        for _ in range(5):
            assert ann.call("typing", room="Book Club", on=True)["forwarded"] is False
        assert ann.call("typing", room="Book Club", on=False)["forwarded"] is True
        # Stopping twice: bob already sees nobody typing.
        assert ann.call("typing", room="Book Club", on=False)["forwarded"] is False
        on, off = _typing_hints(bob, until_on=False)
        assert on["on"] is True and on["user"]["username"] == "ann"
        assert on["room"] == "Book Club" and on["room_id"] == off["room_id"]
        assert 0 < on["expires_ms"] <= 10_000  # the issue: expires within 10 s
        assert "_origin" not in on  # control fields never reach a client
    finally:
        ann.close()
        bob.close()


def test_friends_see_typing_in_their_conversation_and_strangers_cannot_send_it(make_stack, db_url):
    stack = make_stack(db_url)
    with users(stack, "ann", "bob", "eve") as (ann, bob, eve):
        befriend(ann, bob)
        assert ann.call("typing", to="bob", on=True)["forwarded"] is True
        hint = _hint(bob.event("typing", timeout=10))
        assert hint["direct"] is True and hint["user"]["username"] == "ann" and hint["on"] is True
        # Not friends: the same answer as for a message, and bob hears nothing of it.
        assert eve.error_of("typing", to="bob", on=True)["code"] == "forbidden"
        assert eve.error_of("typing", to="nobody-here", on=True)["code"] == "not_found"
        assert ann.call("typing", to="bob", on=False)["forwarded"] is True
        assert _hint(bob.event("typing", timeout=10))["user"]["username"] == "ann"


def test_typing_needs_membership_and_one_conversation(make_stack, db_url):
    stack = make_stack(db_url)
    with users(stack, "ann", "eve") as (ann, eve):
        ann.call("room.create", room="Private-ish")
        assert eve.error_of("typing", room="Private-ish", on=True)["code"] == "forbidden"
        assert eve.error_of("typing", room="no such room", on=True)["code"] == "not_found"
        both = ann.error_of("typing", room="Private-ish", to="eve", on=True)
        assert both["code"] == "bad_request"
        assert ann.error_of("typing", on=True)["code"] == "bad_request"
        assert ann.error_of("typing", room="Private-ish", on=1)["code"] == "bad_request"
        assert ann.error_of("typing", room="Private-ish")["code"] == "bad_request"


def test_forwarded_hints_are_rate_limited(make_stack, sqlite_url):
    stack = make_stack(sqlite_url, rate_typing="3/m")
    with users(stack, "ann") as (ann,):
        ann.call("room.create", room="Chatter")
        for on in (True, False, True):  # each changes what others see: forwarded
            assert ann.call("typing", room="Chatter", on=on)["forwarded"] is True
        limited = ann.error_of("typing", room="Chatter", on=False)
        assert limited["code"] == "rate_limited" and limited["retry_after_ms"] > 0
        # A renewal the edge keeps to itself costs nothing, even now.
        assert ann.call("typing", room="Chatter", on=True)["forwarded"] is False


def test_a_busy_rooms_hints_reach_each_member_merged_once_a_second(make_stack, db_url):
    """The first hint to a quiet room goes out at once; those within the next window
    (here 3 s, so a slow machine cannot split them) come as one push with each user's
    latest hint, without the receiver's own and without those of anyone it blocks, the
    same filters as for a hint pushed alone."""
    stack = make_stack(db_url, typing_merge_ms=3000)
    with users(stack, "ann", "bob", "cat", "dan", "eve") as (ann, bob, cat, dan, eve):
        ann.call("room.create", room="Busy")
        for member in (bob, cat, dan, eve):
            member.call("room.join", room="Busy")
        dan.call("block.add", username="cat")

        ann.call("typing", room="Busy", on=True)
        first = eve.event("typing", timeout=10)  # at once: the room was quiet
        assert [h["user"]["username"] for h in first["hints"]] == ["ann"]
        assert first["room"] == "Busy" and first["expires_ms"] > 0

        bob.call("typing", room="Busy", on=True)
        cat.call("typing", room="Busy", on=True)
        bob.call("typing", room="Busy", on=False)  # bob's latest: stopped
        merged = eve.event("typing", timeout=10)
        assert [(h["user"]["username"], h["on"]) for h in merged["hints"]] == [
            ("cat", True),
            ("bob", False),
        ]
        assert merged["room"] == "Busy" and "_hint" not in merged and "_origin" not in merged
        # bob's own connection: only cat's; dan blocks cat: only bob's; ann: both.
        assert [h["user"]["username"] for h in bob.event("typing", timeout=10)["hints"]] == [
            "ann",
        ]
        assert [h["user"]["username"] for h in bob.event("typing", timeout=10)["hints"]] == [
            "cat",
        ]
        dan.event("typing", timeout=10)  # ann's, alone
        assert [h["user"]["username"] for h in dan.event("typing", timeout=10)["hints"]] == [
            "bob",
        ]
        assert [h["user"]["username"] for h in ann.event("typing", timeout=10)["hints"]] == [
            "cat",
            "bob",
        ]
        cat.event("typing", timeout=10)  # ann's, alone
        assert [h["user"]["username"] for h in cat.event("typing", timeout=10)["hints"]] == [
            "bob",
        ]
        for member in (ann, bob, cat, dan, eve):
            member.no_event("typing", within=0.3)  # one push each per window, no more

        # A hint pushed alone (a quiet room) from someone dan blocks is not his either.
        ann.call("room.create", room="Quiet")
        for member in (cat, dan, eve):
            member.call("room.join", room="Quiet")
        assert cat.call("typing", room="Quiet", on=True)["forwarded"] is True
        alone = eve.event("typing", timeout=10, room="Quiet")
        assert [h["user"]["username"] for h in alone["hints"]] == ["cat"]
        dan.no_event("typing", within=0.5)


def test_a_removed_member_stops_typing_within_the_trust_window(make_stack, db_url):
    """Social trusts a member's typing to a room for `typing_member_trust_s` after
    checking it (no database read per hint); once that has passed, a member kicked
    meanwhile is refused like any non-member."""
    stack = make_stack(db_url, typing_member_trust_s=1.0)
    with users(stack, "ann", "bob") as (ann, bob):
        ann.call("room.create", room="Trusted")
        bob.call("room.join", room="Trusted")
        assert bob.call("typing", room="Trusted", on=True)["forwarded"] is True
        ann.call("room.kick", room="Trusted", username="bob")
        refused = None
        deadline = time.monotonic() + 10
        on = False
        while refused is None and time.monotonic() < deadline:
            reply = bob.request("typing", room="Trusted", on=on)  # alternating: forwarded
            if not reply["ok"]:
                refused = reply["error"]
            on = not on
            time.sleep(0.2)
        assert refused is not None, "still trusted 10 s after the kick"
        assert refused["code"] in ("forbidden", "not_found")


def _typists_after_the_message(
    client: WireClient, shown: set[str], sender: str, room: str, quiet_s: float
) -> set[str]:
    """Who `client`, showing `shown` typing in `room`, shows once `sender`'s message has
    arrived and no typing push has followed for `quiet_s`: its pushes folded in arrival
    order, a message clearing its sender, as the desktop client does."""
    typists = set(shown)
    message_seen = False
    while True:
        try:
            frame = client.next_matching(
                lambda f: f.get("event") in ("typing", "message") and f.get("room") == room,
                timeout=quiet_s if message_seen else 10,
            )
        except TimeoutError:
            assert message_seen, f"{sender}'s message did not reach {room}"
            return typists
        if frame["event"] == "message":
            message_seen = message_seen or frame["from"]["username"] == sender
            typists.discard(frame["from"]["username"])
        for hint in frame.get("hints", ()):
            (typists.add if hint["on"] else typists.discard)(hint["user"]["username"])


def test_typing_sent_with_the_message_leaves_nobody_shown_typing(make_stack, db_url):
    """A client sends "on" at the first keystroke and "off" with the message, often in one
    write. Each must reach the others in that order around the message: an "off" right
    behind its "on" is forwarded too, and a hint is never overtaken by the message after
    it, even while the receiving edge is holding the room's hints to merge them."""
    stack = make_stack(db_url, typing_merge_ms=1500)
    with users(stack, "ann", "bob", "cat") as (ann, bob, cat):
        orders = {"Plain": ("on", "off", "send"), "Late off": ("on", "send", "off")}
        for room, order in orders.items():
            ann.call("room.create", room=room)
            bob.call("room.join", room=room)
            cat.call("room.join", room=room)
            cat.call("typing", room=room, on=True)  # opens ann's merge window there
            assert ann.event("typing", timeout=10, room=room)["hints"][0]["on"] is True
            first = next(bob.ids) + 1000
            frames = {
                "on": {"op": "typing", "room": room, "on": True},
                "off": {"op": "typing", "room": room, "on": False},
                "send": {"op": "room.send", "room": room, "text": "hello", "client_id": room},
            }
            bob.send_raw(
                b"".join(
                    encode_frame({**frames[step], "id": first + n}) for n, step in enumerate(order)
                )
            )
            replies = {}
            for n, step in enumerate(order):
                replies[step] = bob.next_matching(lambda f, i=first + n: f.get("id") == i)
            assert all(reply["ok"] for reply in replies.values()), replies
            assert replies["off"]["forwarded"] is True, f"{order}: the off stayed at the edge"
            assert _typists_after_the_message(ann, {"cat"}, "bob", room, 2.5) == {"cat"}, order
