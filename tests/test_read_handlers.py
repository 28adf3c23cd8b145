"""Read markers and read receipts in-process (social's handlers on a temp SQLite file, no
ZeroMQ): markers only move forward, the user's other sessions are told, unread counts
leave out the user's own messages and stop at the cap, who may mark what, receipts only
between two people who both share them. End to end: test_read_markers.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import insert, update

from chatroom.bus_contract import Control, user_topic
from chatroom.errors import ServiceError
from chatroom.protocol import UNREAD_CAP
from chatroom.storage.schema import LOBBY, messages, rooms
from services.social.handlers import SocialHandlers
from services.social.store import SocialStore

from inproc import add_users, as_user, call, events_to, sqlite_engine, sqlite_settings


@pytest.fixture
def w(tmp_path):
    """alice, bob and carol, each with a session open (so a profile, and a lobby marker
    at the lobby's end, which is empty), and alice's second device."""
    settings = sqlite_settings(tmp_path)
    engine = sqlite_engine(settings)
    alice, bob, carol = add_users(engine, "alice", "bob", "carol")
    store = SocialStore(engine)
    store.ensure_lobby()
    ops = SocialHandlers(store, settings).ops()
    for ctx in (alice, bob, carol):
        call(ops["session.open"], ctx, {})
    alice2 = as_user(1, "alice", conn="conn-1b")
    call(ops["session.open"], alice2, {})  # counted: a mark is pushed to her other device
    yield SimpleNamespace(ops=ops, engine=engine, alice=alice, alice2=alice2, bob=bob, carol=carol)
    engine.dispose()


def _refused(w, op: str, ctx, args) -> ServiceError:
    with pytest.raises(ServiceError) as refused:
        call(w.ops[op], ctx, args)
    return refused.value


def _befriend(w, a, b) -> None:
    call(w.ops["friend.request"], a, {"username": b.username})
    call(w.ops["friend.accept"], b, {"username": a.username})


def _say(w, ctx, n: int, room: str = LOBBY) -> int:
    for i in range(n):
        seq = call(w.ops["room.send"], ctx, {"room": room, "text": f"m{i}"})["message"]["seq"]
    return seq


def _unread(snapshot_or_sync: dict, room_id: int) -> tuple[int, int, bool]:
    if "read" in snapshot_or_sync:  # a sync reply
        entries = snapshot_or_sync["read"]
    else:  # a login snapshot
        entries = snapshot_or_sync["rooms"] + snapshot_or_sync["direct"]
    (entry,) = [e for e in entries if e["id"] == room_id]
    return entry["read_seq"], entry["unread"], entry["unread_capped"]


def test_marker_moves_forward_only_and_other_sessions_are_told(w):
    _say(w, w.bob, 3)
    reply = call(w.ops["read.mark"], w.alice, {"room": "LOBBY", "seq": 2})
    assert reply == {
        "room": LOBBY,
        "room_id": 1,
        "seq": 2,
        "unread": 1,
        "unread_capped": False,
        "mentions": 0,
    }
    (pushed,) = events_to(w.alice, user_topic(1))
    # Every session of alice's but the one that marked (the edge skips _origin).
    assert pushed == {"event": "read", **reply, Control.ORIGIN: "conn-1"}
    assert len(w.alice.events) == 1  # nobody else hears of it
    # Lower or equal: the current marker, no error, nothing pushed.
    for seq in (1, 2, 0):
        again = call(w.ops["read.mark"], w.alice2, {"room": LOBBY, "seq": seq})
        assert (again["seq"], again["unread"]) == (2, 1) and not w.alice2.events
    # Beyond the last message: a typed error naming the field.
    beyond = _refused(w, "read.mark", w.alice, {"room": LOBBY, "seq": 4})
    assert (beyond.code, beyond.extra.get("field")) == ("bad_request", "seq")
    # Both devices see the same counts at login and in sync.
    for ctx in (w.alice, w.alice2):
        assert _unread(call(w.ops["session.open"], ctx, {}), 1) == (2, 1, False)
        assert _unread(call(w.ops["sync"], ctx, {}), 1) == (2, 1, False)


def test_unread_leaves_out_your_own_messages(w):
    _say(w, w.bob, 2)
    _say(w, w.alice, 3)
    _say(w, w.bob, 1)
    assert _unread(call(w.ops["session.open"], w.alice, {}), 1) == (0, 3, False)
    assert _unread(call(w.ops["sync"], w.bob, {}), 1) == (0, 3, False)
    assert call(w.ops["read.mark"], w.alice, {"room": LOBBY, "seq": 5})["unread"] == 1
    assert call(w.ops["read.mark"], w.alice, {"room": LOBBY, "seq": 6})["unread"] == 0


def test_counts_stop_at_the_cap(w):
    many = UNREAD_CAP + 5
    with w.engine.begin() as conn:
        conn.execute(
            insert(messages),
            [
                {"room_id": 1, "seq": s, "sender_id": 2, "text": "x", "created_at": s}
                for s in range(1, many + 1)
            ],
        )
        conn.execute(update(rooms).where(rooms.c.id == 1).values(last_seq=many))
    assert _unread(call(w.ops["session.open"], w.alice, {}), 1) == (0, UNREAD_CAP, True)
    assert _unread(call(w.ops["sync"], w.alice, {}), 1) == (0, UNREAD_CAP, True)
    # Exactly the cap is still exact.
    marked = call(w.ops["read.mark"], w.alice, {"room": LOBBY, "seq": 5})
    assert (marked["unread"], marked["unread_capped"]) == (UNREAD_CAP, False)
    marked = call(w.ops["read.mark"], w.alice, {"room": LOBBY, "seq": many - 1})
    assert (marked["unread"], marked["unread_capped"]) == (1, False)


def test_who_may_mark_a_room(w):
    room_id = call(w.ops["room.create"], w.alice, {"room": "Den"})["room"]["id"]
    _say(w, w.alice, 4, "Den")
    # A non-member is refused the same way whatever seq: nothing to learn of the room.
    for seq in (0, 1, 4, 5, 2**63 - 1):
        err = _refused(w, "read.mark", w.carol, {"room": "den", "seq": seq})
        assert err.code == "forbidden" and "4" not in err.message
    assert _refused(w, "read.mark", w.carol, {"room": "nowhere", "seq": 0}).code == "not_found"
    # Joining starts the marker at the end: what was said before is not unread.
    call(w.ops["room.join"], w.carol, {"room": "den"})
    snapshot = call(w.ops["session.open"], w.carol, {})
    assert _unread(snapshot, room_id) == (4, 0, False)
    _say(w, w.alice, 1, "Den")
    assert call(w.ops["read.mark"], w.carol, {"room": "Den", "seq": 5})["unread"] == 0
    call(w.ops["room.leave"], w.carol, {"room": "den"})
    assert _refused(w, "read.mark", w.carol, {"room": "den", "seq": 5}).code == "forbidden"


def test_who_may_mark_a_direct_chat(w):
    _befriend(w, w.alice, w.bob)
    sent = call(w.ops["dm.send"], w.alice, {"to": "bob", "text": "hi"})["message"]
    marked = call(w.ops["read.mark"], w.bob, {"with": "ALICE", "seq": 1})
    assert marked["room_id"] == sent["room_id"] and marked["with"] == {"id": 1, "username": "alice"}
    assert (marked["seq"], marked["unread"]) == (1, 0)
    # Not through room.*'s door: the chat's name answers like a room that is not there.
    for name in (sent["room"], sent["room"].upper()):
        assert _refused(w, "read.mark", w.carol, {"room": name, "seq": 0}).code == "not_found"
        assert _refused(w, "read.mark", w.bob, {"room": name, "seq": 0}).code == "not_found"
    # A stranger, yourself, nobody: no such conversation.
    assert _refused(w, "read.mark", w.carol, {"with": "alice", "seq": 0}).code == "not_found"
    assert _refused(w, "read.mark", w.alice, {"with": "alice", "seq": 0}).code == "not_found"
    assert _refused(w, "read.mark", w.alice, {"with": "nobody", "seq": 0}).code == "not_found"
    # An ex-friend still reads what was said, so may mark it.
    call(w.ops["friend.remove"], w.alice, {"username": "bob"})
    assert call(w.ops["read.mark"], w.alice, {"with": "bob", "seq": 1})["seq"] == 1


@pytest.mark.parametrize(
    "args",
    [
        {"seq": 0},  # no conversation
        {"room": LOBBY, "with": "bob", "seq": 0},  # two
    ],
    ids=["neither", "both"],
)
def test_one_conversation_must_be_named(w, args):
    err = _refused(w, "read.mark", w.alice, args)
    assert (err.code, err.extra.get("field")) == ("bad_request", "room")


def test_receipts_only_when_both_share_them(w):
    _befriend(w, w.alice, w.bob)
    dm = call(w.ops["dm.send"], w.alice, {"to": "bob", "text": "one"})["message"]["room_id"]
    call(w.ops["dm.send"], w.alice, {"to": "bob", "text": "two"})
    # Off by default.
    snapshot = call(w.ops["session.open"], w.alice, {})
    assert snapshot["read_receipts"] is False
    assert "peer_read_seq" not in [d for d in snapshot["direct"] if d["id"] == dm][0]
    # Alice shares, bob does not: bob's marker stays his.
    on = call(w.ops["read.receipts"], w.alice, {"enabled": True})
    assert on == {"enabled": True, "receipts": []}
    assert events_to(w.alice, user_topic(1)) == [
        {"event": "read.receipts", "enabled": True, Control.ORIGIN: "conn-1"}
    ]
    call(w.ops["read.mark"], w.bob, {"with": "alice", "seq": 1})
    assert events_to(w.bob, user_topic(1)) == []
    # Both share: each sees the other's marker, now and as it moves.
    on = call(w.ops["read.receipts"], w.bob, {"enabled": True})
    assert on["receipts"] == [{"room_id": dm, "with": {"id": 1, "username": "alice"}, "seq": 0}]
    call(w.ops["read.mark"], w.bob, {"with": "alice", "seq": 2})
    (receipt,) = events_to(w.bob, user_topic(1))
    assert receipt == {
        "event": "read.receipt",
        "room": "dm:1:2",
        "room_id": dm,
        "user": {"id": 2, "username": "bob"},
        "seq": 2,
    }
    snapshot = call(w.ops["session.open"], w.alice, {})
    assert snapshot["read_receipts"] is True
    assert [d["peer_read_seq"] for d in snapshot["direct"] if d["id"] == dm] == [2]
    synced = call(w.ops["sync"], w.alice, {})
    assert [e["peer_read_seq"] for e in synced["read"] if e["id"] == dm] == [2]
    assert synced["read_receipts"] is True
    # Rooms never carry anyone else's marker.
    assert all("peer_read_seq" not in e for e in synced["read"] if e["id"] != dm)
    # Bob stops sharing: neither sees the other's any more; nothing pushed to alice.
    call(w.ops["read.receipts"], w.bob, {"enabled": False})
    call(w.ops["read.mark"], w.alice, {"with": "bob", "seq": 2})
    assert events_to(w.alice, user_topic(2)) == []
    assert all("peer_read_seq" not in e for e in call(w.ops["sync"], w.alice, {})["read"])
    # Turning it off twice changes nothing and tells nobody.
    call(w.ops["read.receipts"], w.bob, {"enabled": False})
    assert w.bob.events == []


def test_marks_sent_together_are_committed_together_and_keep_the_largest(w):
    """Many read.marks at once (store/marks.py commits what is queued as one batch):
    each is authorised on its own (carol is not in the den), a seq past the end is
    refused on its own, and of alice's marks from two devices the largest wins, however
    they were grouped; every push that says the marker moved says a larger seq."""
    import asyncio

    call(w.ops["room.create"], w.bob, {"room": "den"})
    _say(w, w.bob, 5)
    den_seq = _say(w, w.bob, 2, room="den")
    marks = [
        (w.alice, {"room": LOBBY, "seq": 3}),
        (w.alice2, {"room": LOBBY, "seq": 5}),
        (w.alice, {"room": LOBBY, "seq": 4}),
        (w.carol, {"room": "den", "seq": 1}),
        (w.bob, {"room": "den", "seq": den_seq}),
        (w.carol, {"room": LOBBY, "seq": 99}),
        (w.carol, {"room": LOBBY, "seq": 2}),
    ]
    for ctx, _ in marks:
        ctx.events.clear()

    async def all_at_once() -> list:
        handler = w.ops["read.mark"]
        return await asyncio.gather(
            *(handler(ctx, args) for ctx, args in marks), return_exceptions=True
        )

    replies = asyncio.run(all_at_once())
    assert isinstance(replies[3], ServiceError) and replies[3].code == "forbidden"
    assert isinstance(replies[5], ServiceError) and replies[5].code == "bad_request"
    for i in (0, 1, 2):
        assert replies[i]["seq"] >= marks[i][1]["seq"]
    assert replies[4]["seq"] == den_seq and replies[4]["unread"] == 0
    assert replies[6]["seq"] == 2 and replies[6]["unread"] == 3
    pushed = [
        e["seq"] for e in events_to(w.alice, user_topic(1)) + events_to(w.alice2, user_topic(1))
    ]
    assert pushed and max(pushed) == 5 and len(set(pushed)) == len(pushed)
    # Where it ended: at 5, for both of alice's devices and the next login.
    again = call(w.ops["read.mark"], w.alice, {"room": LOBBY, "seq": 1})
    assert again["seq"] == 5 and again["unread"] == 0


def test_counts_from_a_rooms_tail_agree_with_the_count_per_person(w):
    """store/reads.py unread_near_end (a batch of marks: one read of the room's tail)
    gives what unread_counts (a count per person) gives, for every marker: messages
    from several people, edits and deletes in between, mentions of some."""
    import random

    rng = random.Random(9)
    people = [w.alice, w.bob, w.carol]
    for n in range(40):
        author = rng.choice(people)
        named = rng.sample(["alice", "bob", "carol"], rng.randint(0, 2))
        text = f"m{n} " + " ".join(f"@{name}" for name in named)
        sent = call(w.ops["room.send"], author, {"room": LOBBY, "text": text})["message"]
        if n % 7 == 3:
            call(w.ops["message.edit"], author, {"message": sent["id"], "text": f"edited {n}"})
        if n % 11 == 5:
            call(w.ops["message.delete"], author, {"message": sent["id"]})
    store = SocialStore(w.engine)
    with store.reading() as tx:
        last = tx.room_named(LOBBY).last_seq
        for _ in range(30):
            wanted = [(ctx.user_id, 1, rng.randint(0, last), last) for ctx in people]
            assert tx.unread_near_end(wanted) == tx.unread_counts(wanted), wanted


def test_counts_of_readers_far_behind_agree_with_the_count_per_person(w, monkeypatch):
    """With UNREAD_CAP small (5 here, 1,000 in the product), the readers of one batch
    lie both near the end and far behind it: store/reads.py splits them (the near ones
    from the room's tail, the others a count each) and caps every count the same way."""
    import random

    from services.social.store import counts, reads

    monkeypatch.setattr(reads, "UNREAD_CAP", 5)
    monkeypatch.setattr(counts, "UNREAD_CAP", 5)
    rng = random.Random(15)
    people = [w.alice, w.bob, w.carol]
    for n in range(30):
        author = rng.choice(people)
        named = rng.sample(["alice", "bob", "carol"], rng.randint(0, 2))
        call(w.ops["room.send"], author, {"room": LOBBY, "text": f"m{n} " + " @".join(named)})
    store = SocialStore(w.engine)
    with store.reading() as tx:
        last = tx.room_named(LOBBY).last_seq
        split = set()
        for _ in range(40):
            wanted = [(ctx.user_id, 1, rng.randint(0, last), last) for ctx in people]
            near, far = reads._near_the_end([(u, m, end) for u, _, m, end in wanted], last)
            split.add((len(near), len(far)))
            assert tx.unread_near_end(wanted) == tx.unread_counts(wanted), wanted
        assert {(0, 3), (2, 1), (3, 0)} <= split  # each way of splitting was tried


def test_a_user_on_one_device_has_nobody_to_tell(w):
    """bob has one live session, the one marking: no `read` push (social counts the
    sessions in the mark's transaction); alice, with two, gets one."""
    _say(w, w.carol, 2)
    call(w.ops["read.mark"], w.bob, {"room": LOBBY, "seq": 1})
    assert events_to(w.bob, user_topic(2)) == []
    call(w.ops["read.mark"], w.alice, {"room": LOBBY, "seq": 1})
    assert [e["event"] for e in events_to(w.alice, user_topic(1))] == ["read"]
