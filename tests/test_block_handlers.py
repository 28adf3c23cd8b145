"""Blocking in-process (social's and media's handlers on a temp SQLite file, no
ZeroMQ): block.add / block.remove / block.list and their bad input, the cap, a friend
ended, pending requests dropped, and every probe of the blocked user (friend request,
DM, room.members, history, sync, avatar) answered as for a stranger. End to end, with
the edge's live filtering and two sessions of the blocker: test_blocking.py."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest

from chatroom.bus_contract import Control, user_topic
from chatroom.errors import ServiceError
from chatroom.protocol import ErrorCode, Event
from chatroom.storage.schema import LOBBY
from services.media.handlers import MediaHandlers
from services.media.store import MediaStore
from services.social.handlers import SocialHandlers
from services.social.store import SocialStore

from images import png
from inproc import add_users, as_user, call, events_to, sqlite_engine, sqlite_settings


def _world(tmp_path, **env):
    settings = sqlite_settings(tmp_path, **env)
    engine = sqlite_engine(settings)
    # ann blocks bob; cat is a stranger to ann, to compare bob's answers with hers.
    ann, bob, cat = add_users(engine, "ann", "bob", "cat")
    store = SocialStore(engine)
    store.ensure_lobby()
    ops = SocialHandlers(store, settings).ops()
    for ctx in (ann, bob, cat):
        call(ops["session.open"], ctx, {})
    media = MediaHandlers(MediaStore(engine), settings).ops()
    return SimpleNamespace(ops=ops, media=media, engine=engine, ann=ann, bob=bob, cat=cat)


@pytest.fixture
def w(tmp_path):
    world = _world(tmp_path)
    yield world
    world.engine.dispose()


def _refused(ops, op: str, ctx, args) -> ServiceError:
    with pytest.raises(ServiceError) as refused:
        call(ops[op], ctx, args)
    return refused.value


def _befriend(w, a, b) -> None:
    call(w.ops["friend.request"], a, {"username": b.username})
    call(w.ops["friend.accept"], b, {"username": a.username})


def _block(w, who, whom: str) -> dict:
    return call(w.ops["block.add"], who, {"username": whom})


def _say(w, ctx, text: str, room: str = LOBBY) -> dict:
    return call(w.ops["room.send"], ctx, {"room": room, "text": text})["message"]


def test_block_list_unblock_and_the_pushes_that_move_the_edges_filter(w):
    reply = _block(w, w.ann, "BOB")  # names compare by their key
    assert reply["user"] == {"id": 2, "username": "bob"}
    (pushed,) = events_to(w.ann, user_topic(1))
    assert pushed["event"] == Event.BLOCK_ADDED
    assert pushed["user"] == {"id": 2, "username": "bob", "since": reply["since"]}
    # The control fields the edge reads (the asker's connection already knows).
    assert pushed[Control.BLOCK] == 2 and pushed[Control.ORIGIN] == "conn-1"
    assert events_to(w.ann, user_topic(2)) == []  # bob is told nothing
    listed = call(w.ops["block.list"], w.ann, {})["blocked"]
    assert listed == [{"id": 2, "username": "bob", "since": reply["since"]}]
    assert call(w.ops["block.list"], w.bob, {})["blocked"] == []
    # The login snapshot carries it too (the edge's filter starts from it).
    assert call(w.ops["session.open"], w.ann, {})["blocked"] == listed

    assert call(w.ops["block.remove"], w.ann, {"username": "bob"}) == {
        "user": {"id": 2, "username": "bob"}
    }
    (pushed,) = events_to(w.ann, user_topic(1))
    assert pushed["event"] == Event.BLOCK_REMOVED and pushed[Control.UNBLOCK] == 2
    assert call(w.ops["block.list"], w.ann, {})["blocked"] == []


def test_bad_input_self_unknown_twice_and_unblocking_who_is_not_blocked(w):
    refused = _refused(w.ops, "block.add", w.ann, {"username": "ann"})
    assert refused.code == ErrorCode.BAD_REQUEST and "yourself" in refused.message
    refused = _refused(w.ops, "block.add", w.ann, {"username": "nobody"})
    assert refused.code == ErrorCode.NOT_FOUND
    refused = _refused(w.ops, "block.remove", w.ann, {"username": "nobody"})
    assert refused.code == ErrorCode.NOT_FOUND
    refused = _refused(w.ops, "block.remove", w.ann, {"username": "bob"})
    assert refused.code == ErrorCode.NOT_FOUND and "not blocked bob" in refused.message
    first = _block(w, w.ann, "bob")
    # Twice is one block: the same answer, nothing pushed, one row.
    assert _block(w, w.ann, "bob") == first
    assert w.ann.events == []
    assert len(call(w.ops["block.list"], w.ann, {})["blocked"]) == 1


def test_the_cap(tmp_path):
    w = _world(tmp_path, max_blocks="1")
    _block(w, w.ann, "bob")
    refused = _refused(w.ops, "block.add", w.ann, {"username": "cat"})
    assert refused.code == ErrorCode.LIMIT_REACHED and "unblock some" in refused.message
    assert _block(w, w.ann, "bob")["user"]["id"] == 2  # the one already blocked: still fine
    call(w.ops["block.remove"], w.ann, {"username": "bob"})
    _block(w, w.ann, "cat")
    w.engine.dispose()


def test_blocking_a_friend_ends_the_friendship_both_told_as_for_friend_remove(w):
    _befriend(w, w.ann, w.bob)
    _block(w, w.ann, "bob")
    removed_to_bob = events_to(w.ann, user_topic(2))
    assert removed_to_bob == [{"event": Event.FRIEND_REMOVED, "user": {"id": 1, "username": "ann"}}]
    assert call(w.ops["friend.list"], w.ann, {})["friends"] == []
    assert call(w.ops["friend.list"], w.bob, {})["friends"] == []
    # A DM now gets a stranger's answer, both ways.
    for sender, to in ((w.bob, "ann"), (w.ann, "bob")):
        refused = _refused(w.ops, "dm.send", sender, {"to": to, "text": "hi"})
        assert refused.code == ErrorCode.FORBIDDEN and "only message friends" in refused.message


def test_pending_requests_are_dropped_both_ways(w):
    call(w.ops["friend.request"], w.bob, {"username": "ann"})
    _block(w, w.ann, "bob")
    assert call(w.ops["friend.list"], w.ann, {})["incoming"] == []
    assert call(w.ops["friend.list"], w.bob, {})["outgoing"] == []
    call(w.ops["block.remove"], w.ann, {"username": "bob"})
    call(w.ops["friend.request"], w.ann, {"username": "bob"})
    _block(w, w.ann, "bob")
    assert call(w.ops["friend.list"], w.bob, {})["incoming"] == []


def test_a_blocked_users_friend_request_looks_like_a_strangers(w):
    _block(w, w.ann, "bob")
    from_bob = call(w.ops["friend.request"], w.bob, {"username": "ann"})
    from_cat = call(w.ops["friend.request"], w.cat, {"username": "ann"})
    # The same answer as cat's (the names differ only), and pending on bob's side too.
    assert from_bob == from_cat == {"status": "pending", "to": {"id": 1, "username": "ann"}}
    assert [r["user"]["username"] for r in call(w.ops["friend.list"], w.bob, {})["outgoing"]] == [
        "ann"
    ]
    # Asking again: the same as asking a stranger twice.
    assert call(w.ops["friend.request"], w.bob, {"username": "ann"}) == from_bob
    # ...but ann never hears of it: not pushed, not listed, not at login, not answerable.
    assert events_to(w.bob, user_topic(1)) == []
    incoming = call(w.ops["friend.list"], w.ann, {})["incoming"]
    assert [r["user"]["username"] for r in incoming] == ["cat"]
    assert [r["user"]["username"] for r in call(w.ops["session.open"], w.ann, {})["incoming"]] == [
        "cat"
    ]
    for op in ("friend.accept", "friend.reject"):
        assert _refused(w.ops, op, w.ann, {"username": "bob"}).code == ErrorCode.NOT_FOUND
    # ann asking bob while she blocks him: told to unblock first.
    refused = _refused(w.ops, "friend.request", w.ann, {"username": "bob"})
    assert refused.code == ErrorCode.CONFLICT and "unblock" in refused.message
    # Unblocking drops what he sent meanwhile, rather than surface it as new.
    call(w.ops["block.remove"], w.ann, {"username": "bob"})
    assert [r["user"]["username"] for r in call(w.ops["friend.list"], w.ann, {})["incoming"]] == [
        "cat"
    ]


def test_room_history_and_sync_hide_the_blocked_senders_rows(w):
    _say(w, w.bob, "before the block")
    kept = _say(w, w.cat, "from cat")
    _block(w, w.ann, "bob")
    hidden = _say(w, w.bob, "after the block")
    call(w.ops["message.edit"], w.bob, {"message": hidden["id"], "text": "edited"})
    history = call(w.ops["room.history"], w.ann, {"room": LOBBY})
    assert [m["text"] for m in history["messages"]] == ["from cat"]
    # Others still see everything.
    assert len(call(w.ops["room.history"], w.cat, {"room": LOBBY})["messages"]) == 3
    synced = call(w.ops["sync"], w.ann, {"cursors": {}})
    (lobby,) = [c for c in synced["conversations"] if c["name"] == LOBBY]
    assert [m["text"] for m in lobby["messages"]] == ["from cat"]
    # Each hidden row is only its seq, so the client's cursor moves over it.
    assert lobby["events"] == [
        {"room": LOBBY, "room_id": 1, "seq": s, "kind": "hidden", "target": None}
        for s in (1, hidden["seq"], hidden["seq"] + 1)
    ]
    assert "bob" not in str(lobby)
    assert kept["seq"] == 2
    # Unblocked: all of it again.
    call(w.ops["block.remove"], w.ann, {"username": "bob"})
    assert len(call(w.ops["room.history"], w.ann, {"room": LOBBY})["messages"]) == 3


def test_room_events_name_their_author_for_the_edge(w):
    message = _say(w, w.bob, "hello")
    (event,) = events_to(w.bob, b"r:1|")
    assert event[Control.SENDER] == 2
    call(w.ops["message.edit"], w.bob, {"message": message["id"], "text": "hello!"})
    (event,) = events_to(w.bob, b"r:1|")
    assert event[Control.SENDER] == 2


def test_room_members_show_the_blocked_user_nothing_of_the_blocker(w):
    call(w.ops["room.create"], w.ann, {"room": "club"})
    for ctx in (w.bob, w.cat):
        call(w.ops["room.join"], ctx, {"room": "club"})
    call(w.ops["presence.set"], w.ann, {"status": "busy"})
    _befriend(w, w.ann, w.bob)
    _block(w, w.ann, "bob")

    def member(viewer, room: str, name: str) -> dict | None:
        members = call(w.ops["room.members"], viewer, {"room": room})["members"]
        return next((m for m in members if m["username"] == name), None)

    assert member(w.bob, "club", "ann") == {
        "id": 1,
        "username": "ann",
        "online": False,
        "status": "",
        "avatar": None,
        "last_seen": None,
        "role": "owner",  # the room's, not the person's: shown as to anyone
    }
    assert member(w.cat, "club", "ann")["online"] is True  # others see her
    # The lobby lists who is online: she is not listed for bob, as if offline.
    assert member(w.bob, LOBBY, "ann") is None
    assert member(w.cat, LOBBY, "ann") is not None


def test_avatar_of_the_blocker_is_a_strangers(tmp_path):
    for visibility in ("friends", "everyone"):
        w = _world(tmp_path / visibility, avatar_visibility=visibility)
        _befriend(w, w.ann, w.bob)
        image = base64.b64encode(png(64, 64)).decode()
        avatar = call(w.media["avatar.set"], w.ann, {"image": image})["hash"]
        assert call(w.media["avatar.get"], w.bob, {"hash": avatar})["hash"] == avatar
        _block(w, w.ann, "bob")
        refused = _refused(w.media, "avatar.get", w.bob, {"hash": avatar})
        stranger = _refused(w.media, "avatar.get", w.bob, {"hash": "0" * 64})
        assert (refused.code, refused.message) == (stranger.code, stranger.message)
        # The default picture, and her own, still.
        assert call(w.media["avatar.get"], w.bob, {"hash": "default"})
        assert call(w.media["avatar.get"], w.ann, {"hash": avatar})["hash"] == avatar
        if visibility == "everyone":
            assert call(w.media["avatar.get"], w.cat, {"hash": avatar})["hash"] == avatar
        w.engine.dispose()


def test_a_second_device_of_the_blocker_and_the_blocked_one_cannot_unblock(w):
    ann2 = as_user(1, "ann", conn="conn-1b")
    _block(w, ann2, "bob")
    # ann's first device sees it (block.list) and can unblock it.
    assert [b["username"] for b in call(w.ops["block.list"], w.ann, {})["blocked"]] == ["bob"]
    # bob cannot undo it: he has blocked nobody.
    assert _refused(w.ops, "block.remove", w.bob, {"username": "ann"}).code == ErrorCode.NOT_FOUND
    call(w.ops["block.remove"], w.ann, {"username": "bob"})


def test_export_lists_whom_the_user_blocks_and_erase_forgets_it(w):
    since = _block(w, w.ann, "bob")["since"]
    _block(w, w.bob, "ann")
    store = SocialStore(w.engine)
    with store.transaction() as tx:
        assert tx.export_of(1)["blocked"] == [{"username": "bob", "since": since}]
        tx.erase_of(1)
    assert call(w.ops["block.list"], w.ann, {})["blocked"] == []
    # bob's block of ann is bob's own data: it stays.
    assert [b["username"] for b in call(w.ops["block.list"], w.bob, {})["blocked"]] == ["ann"]
