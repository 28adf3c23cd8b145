"""Mentions and notification levels in-process (social's handlers on a temp SQLite file,
no ZeroMQ): which @names count (members only, by name key, the cap, never yourself),
the counts beside unread and what clears them, edits and deletes, room.notify's levels
and refusals. End to end on SQLite and MariaDB: test_mentions.py."""

from __future__ import annotations

import sys
import unicodedata
from types import SimpleNamespace

import pytest
from sqlalchemy import func, insert, select

from chatroom.bus_contract import Control, room_topic, user_topic
from chatroom.errors import ServiceError
from chatroom.names import AT_SIGNS
from chatroom.protocol import MAX_MENTIONS
from chatroom.storage.schema import LOBBY, mentions, room_notify, users
from services.social.handlers import SocialHandlers
from services.social.store import SocialStore

from inproc import add_users, as_user, call, events_to, mark_erased, sqlite_engine, sqlite_settings


@pytest.fixture
def w(tmp_path):
    """alice, bob and carol with a session each (so lobby markers), and bob's second
    device."""
    settings = sqlite_settings(tmp_path)
    engine = sqlite_engine(settings)
    alice, bob, carol = add_users(engine, "alice", "bob", "carol")
    store = SocialStore(engine)
    store.ensure_lobby()
    ops = SocialHandlers(store, settings).ops()
    for ctx in (alice, bob, carol):
        call(ops["session.open"], ctx, {})
    bob2 = as_user(2, "bob", conn="conn-2b")
    yield SimpleNamespace(ops=ops, engine=engine, alice=alice, bob=bob, bob2=bob2, carol=carol)
    engine.dispose()


def _send(w, ctx, text: str, room: str = LOBBY) -> dict:
    return call(w.ops["room.send"], ctx, {"room": room, "text": text})["message"]


def _refused(w, op: str, ctx, args) -> ServiceError:
    with pytest.raises(ServiceError) as refused:
        call(w.ops[op], ctx, args)
    return refused.value


def _state(reply: dict, room_id: int) -> dict:
    """A room's entry of a login snapshot (`rooms`) or a sync (`read`)."""
    entries = reply["read"] if "read" in reply else reply["rooms"] + reply["direct"]
    (entry,) = [e for e in entries if e["id"] == room_id]
    return entry


def _stored_mentions(w) -> list[tuple[int, int, int]]:
    with w.engine.connect() as conn:
        rows = conn.execute(select(mentions.c.user_id, mentions.c.room_id, mentions.c.seq))
        return sorted(tuple(r) for r in rows)


def test_a_mention_is_in_the_message_its_push_and_the_counts(w):
    sent = _send(w, w.alice, "hi @bob, see this")
    assert sent["mentions"] == [2]
    (pushed,) = events_to(w.alice, room_topic(1))
    assert pushed["mentions"] == [2] and pushed[Control.ORIGIN] == "conn-1"
    _send(w, w.alice, "and no one here")
    # Both of bob's devices: two unread, one of them a mention; at login and in sync.
    for ctx in (w.bob, w.bob2):
        for reply in (call(w.ops["session.open"], ctx, {}), call(w.ops["sync"], ctx, {})):
            entry = _state(reply, 1)
            assert (entry["unread"], entry["mentions"], entry["notify"]) == (2, 1, "all")
    # Carol was not mentioned; alice's own message is not unread for her.
    assert _state(call(w.ops["sync"], w.carol, {}), 1)["mentions"] == 0
    assert _state(call(w.ops["sync"], w.alice, {}), 1)["mentions"] == 0
    # Reading past the mention clears it, and bob's other device hears so.
    marked = call(w.ops["read.mark"], w.bob, {"room": LOBBY, "seq": 1})
    assert (marked["unread"], marked["mentions"]) == (1, 0)
    (read,) = events_to(w.bob, user_topic(2))
    assert read["mentions"] == 0 and read[Control.ORIGIN] == "conn-2"
    assert _state(call(w.ops["sync"], w.bob2, {}), 1)["mentions"] == 0


@pytest.mark.parametrize(
    "text",
    ["@BOB", "@ｂｏｂ", "＠bob", "(@Bob)", "@bob.", "@bob, @bob and @BOB again", "@carol @bob"],
)
def test_a_name_is_found_by_its_key(w, text):
    assert 2 in _send(w, w.alice, text)["mentions"]
    assert _state(call(w.ops["sync"], w.bob, {}), 1)["mentions"] == 1


@pytest.mark.parametrize(
    "text",
    ["me@bob.example", "@bobby", "@bo", "@nobody", "@", "@@", "bob@", "@alice (myself)"],
)
def test_what_mentions_nobody(w, text):
    sent = _send(w, w.alice, text)
    assert "mentions" not in sent
    assert _stored_mentions(w) == []


def test_every_at_sign_is_known():
    # The handler skips the parse for a text with none of these (most messages).
    signs = [
        chr(c) for c in range(sys.maxunicode + 1) if "@" in unicodedata.normalize("NFKC", chr(c))
    ]
    assert sorted(signs) == sorted(AT_SIGNS)


def test_an_erased_account_is_not_mentioned(w):
    mark_erased(w.engine, 3)
    assert "mentions" not in _send(w, w.alice, "@carol")


def test_a_user_who_blocks_the_sender_is_not_mentioned(w):
    call(w.ops["block.add"], w.bob, {"username": "alice"})
    sent = _send(w, w.alice, "@bob @carol look")
    assert sent["mentions"] == [3]  # bob blocks alice: no mention, no alert, no count
    assert _state(call(w.ops["sync"], w.bob, {}), 1)["mentions"] == 0
    call(w.ops["block.remove"], w.bob, {"username": "alice"})
    assert _send(w, w.alice, "@bob again")["mentions"] == [2]


def test_only_members_of_a_group_room_are_mentioned(w):
    den = call(w.ops["room.create"], w.alice, {"room": "den"})["room"]["id"]
    call(w.ops["room.join"], w.bob, {"room": "den"})
    sent = _send(w, w.alice, "@bob @carol", room="den")
    assert sent["mentions"] == [2]  # carol is not in den
    assert _stored_mentions(w) == [(2, den, 1)]
    # Once she joins, what was said before is neither unread nor a mention.
    call(w.ops["room.join"], w.carol, {"room": "den"})
    assert _state(call(w.ops["sync"], w.carol, {}), den)["mentions"] == 0
    assert _send(w, w.alice, "@carol now", room="den")["mentions"] == [3]


def test_only_the_first_names_of_a_message_count(w):
    names = [f"user{i}" for i in range(MAX_MENTIONS + 10)]
    add_users_after(w, names)
    text = " ".join(f"@{n}" for n in ["bob", "bob", *names])  # bob twice: one name
    sent = _send(w, w.alice, text)
    assert len(sent["mentions"]) == MAX_MENTIONS
    assert 2 in sent["mentions"]
    assert len(_stored_mentions(w)) == MAX_MENTIONS


def add_users_after(w, names: list[str]) -> None:
    with w.engine.begin() as conn:
        for i, name in enumerate(names, start=100):
            row = {"id": i, "username": name, "username_key": name, "created_at": 0}
            conn.execute(insert(users).values(**row, password_hash="-", disabled=False))


def test_edits_do_not_mention_and_deletes_take_mentions_back(w):
    plain = _send(w, w.alice, "hello")
    call(w.ops["message.edit"], w.alice, {"message": plain["id"], "text": "hello @bob"})
    assert _state(call(w.ops["sync"], w.bob, {}), 1)["mentions"] == 0
    mentioning = _send(w, w.alice, "@bob look")
    assert _state(call(w.ops["sync"], w.bob, {}), 1)["mentions"] == 1
    call(w.ops["message.edit"], w.alice, {"message": mentioning["id"], "text": "look"})
    assert _state(call(w.ops["sync"], w.bob, {}), 1)["mentions"] == 1  # as sent
    call(w.ops["message.delete"], w.alice, {"message": mentioning["id"]})
    assert _state(call(w.ops["sync"], w.bob, {}), 1)["mentions"] == 0
    assert _stored_mentions(w) == []


def test_direct_messages_carry_no_mentions(w):
    call(w.ops["friend.request"], w.alice, {"username": "bob"})
    call(w.ops["friend.accept"], w.bob, {"username": "alice"})
    sent = call(w.ops["dm.send"], w.alice, {"to": "bob", "text": "@bob hi"})["message"]
    assert "mentions" not in sent
    entry = _state(call(w.ops["session.open"], w.bob, {}), sent["room_id"])
    assert (entry["unread"], entry["mentions"]) == (1, 0) and "notify" not in entry


def test_room_notify_levels(w):
    reply = call(w.ops["room.notify"], w.bob, {"room": "LOBBY", "level": "mentions"})
    assert reply == {"room": LOBBY, "room_id": 1, "level": "mentions"}
    (pushed,) = events_to(w.bob, user_topic(2))
    assert pushed == {"event": "room.notify", **reply, Control.ORIGIN: "conn-2"}
    # Both devices see it; nobody else's level changes.
    for ctx in (w.bob, w.bob2):
        assert _state(call(w.ops["session.open"], ctx, {}), 1)["notify"] == "mentions"
        assert _state(call(w.ops["sync"], ctx, {}), 1)["notify"] == "mentions"
    assert _state(call(w.ops["sync"], w.alice, {}), 1)["notify"] == "all"
    # The same level again: nothing pushed. Back to all: no row kept.
    call(w.ops["room.notify"], w.bob2, {"room": LOBBY, "level": "mentions"})
    assert events_to(w.bob2, user_topic(2)) == []
    call(w.ops["room.notify"], w.bob2, {"room": LOBBY, "level": "none"})
    assert _state(call(w.ops["sync"], w.bob, {}), 1)["notify"] == "none"
    call(w.ops["room.notify"], w.bob2, {"room": LOBBY, "level": "all"})
    with w.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(room_notify)).scalar() == 0


@pytest.mark.parametrize("level", ["", "ALL", "mention", "some", "none ", "all\x00"])
def test_room_notify_bad_levels(w, level):
    err = _refused(w, "room.notify", w.bob, {"room": LOBBY, "level": level})
    assert (err.code, err.extra.get("field")) == ("bad_request", "level")
    assert "all, mentions, none" in err.message


def test_room_notify_refusals(w):
    call(w.ops["room.create"], w.alice, {"room": "den"})
    call(w.ops["friend.request"], w.alice, {"username": "bob"})
    call(w.ops["friend.accept"], w.bob, {"username": "alice"})
    dm = call(w.ops["dm.send"], w.alice, {"to": "bob", "text": "hi"})["message"]["room"]
    assert _refused(w, "room.notify", w.carol, {"room": "den", "level": "none"}).code == (
        "forbidden"
    )
    assert _refused(w, "room.notify", w.carol, {"room": "nowhere", "level": "none"}).code == (
        "not_found"
    )
    for ctx in (w.bob, w.carol):  # a direct chat is not a room, for its people too
        assert _refused(w, "room.notify", ctx, {"room": dm, "level": "none"}).code == "not_found"
    # Left the room: refused again, and nothing was stored for the refused.
    call(w.ops["room.join"], w.carol, {"room": "den"})
    call(w.ops["room.notify"], w.carol, {"room": "den", "level": "none"})
    call(w.ops["room.leave"], w.carol, {"room": "den"})
    assert _refused(w, "room.notify", w.carol, {"room": "den", "level": "all"}).code == (
        "forbidden"
    )
    with w.engine.connect() as conn:
        rows = conn.execute(select(room_notify.c.user_id, room_notify.c.level)).all()
    assert [tuple(r) for r in rows] == [(3, "none")]


def test_erasing_an_account_erases_its_mentions_and_levels(w):
    _send(w, w.alice, "@bob hello")
    call(w.ops["room.notify"], w.bob, {"room": LOBBY, "level": "none"})
    mark_erased(w.engine, 2)  # auth's first step
    call(w.ops["admin.erase"], as_user(None), {"user_id": 2})
    assert _stored_mentions(w) == []
    with w.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(room_notify)).scalar() == 0
