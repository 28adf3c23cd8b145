"""Social's handlers in-process, against a store on a temp SQLite file (no ZeroMQ):
friend requests, rooms and their messages, direct messages, sync, sessions and
presence, and bad input as typed errors. The end-to-end tests (test_social.py,
test_authz.py, test_presence.py, ...) go through the edge and the bus."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from chatroom.bus_contract import room_topic, user_topic
from chatroom.errors import ServiceError
from chatroom.storage.schema import LOBBY
from services.social.handlers import SocialHandlers
from services.social.store import SocialStore

from inproc import (
    add_users,
    as_user,
    call,
    events_to,
    mark_erased,
    sqlite_engine,
    sqlite_settings,
)


@pytest.fixture
def w(tmp_path):
    """The handlers (the store as __main__ builds it) and alice, bob and carol."""
    settings = sqlite_settings(tmp_path)
    engine = sqlite_engine(settings)
    alice, bob, carol = add_users(engine, "alice", "bob", "carol")
    store = SocialStore(engine)
    store.ensure_lobby()
    handlers = SocialHandlers(store, settings)
    yield SimpleNamespace(ops=handlers.ops(), alice=alice, bob=bob, carol=carol, engine=engine)
    engine.dispose()


def _refused(w, op: str, ctx, args) -> str:
    with pytest.raises(ServiceError) as refused:
        call(w.ops[op], ctx, args)
    return refused.value.code


def _befriend(w, a, b) -> None:
    call(w.ops["friend.request"], a, {"username": b.username})
    call(w.ops["friend.accept"], b, {"username": a.username})


def test_friend_request_then_accept(w):
    asked = call(w.ops["friend.request"], w.alice, {"username": "BOB"})
    assert asked == {"status": "pending", "to": {"id": 2, "username": "bob"}}
    assert events_to(w.alice, user_topic(2))[0]["event"] == "friend.request"
    incoming = call(w.ops["friend.list"], w.bob, {})["incoming"]
    assert [r["user"]["username"] for r in incoming] == ["alice"]
    accepted = call(w.ops["friend.accept"], w.bob, {"username": "alice"})
    assert accepted["status"] == "accepted" and accepted["friend"]["username"] == "alice"
    assert {t for t, _ in w.bob.events} == {user_topic(1), user_topic(2)}
    friends = call(w.ops["friend.list"], w.alice, {})["friends"]
    assert [f["username"] for f in friends] == ["bob"]


def test_asking_back_is_accepting(w):
    call(w.ops["friend.request"], w.alice, {"username": "bob"})
    assert call(w.ops["friend.request"], w.bob, {"username": "alice"})["status"] == "accepted"


def test_friend_reject_is_told_once(w):
    call(w.ops["friend.request"], w.alice, {"username": "bob"})
    assert call(w.ops["friend.reject"], w.bob, {"username": "alice"}) == {"status": "rejected"}
    (told,) = events_to(w.bob, user_topic(1))
    assert told["event"] == "friend.rejected" and told["_ack"]["op"] == "notice.delivered"
    assert _refused(w, "friend.accept", w.bob, {"username": "alice"}) == "not_found"


@pytest.mark.parametrize(
    ("op", "who", "code"),
    [
        ("friend.request", "alice", "bad_request"),  # herself
        ("friend.request", "nobody", "not_found"),
        ("friend.accept", "bob", "not_found"),  # nothing pending
        ("friend.remove", "bob", "not_found"),  # not friends
    ],
)
def test_friend_refusals(w, op, who, code):
    assert _refused(w, op, w.alice, {"username": who}) == code


def test_already_friends_is_a_conflict_and_remove_ends_it(w):
    _befriend(w, w.alice, w.bob)
    assert _refused(w, "friend.request", w.alice, {"username": "bob"}) == "conflict"
    assert call(w.ops["friend.remove"], w.alice, {"username": "bob"}) == {}
    assert events_to(w.alice, user_topic(2))[0]["event"] == "friend.removed"


def test_room_create_join_send_history(w):
    created = call(w.ops["room.create"], w.alice, {"room": "Books"})["room"]
    assert created["kind"] == "group"
    assert events_to(w.alice, user_topic(1))[0]["_join"] == created["id"]
    assert _refused(w, "room.create", w.bob, {"room": "BOOKS"}) == "conflict"
    assert _refused(w, "room.send", w.bob, {"room": "Books", "text": "hi"}) == "forbidden"
    call(w.ops["room.join"], w.bob, {"room": "books"})
    assert events_to(w.bob, room_topic(created["id"]))[0]["joined"] is True
    for n in range(3):
        sent = call(w.ops["room.send"], w.bob, {"room": "Books", "text": f"m{n}"})["message"]
        assert sent["seq"] == n + 1
        assert events_to(w.bob, room_topic(created["id"]))[0]["text"] == f"m{n}"
    page = call(w.ops["room.history"], w.alice, {"room": "Books", "limit": 2})
    assert [m["text"] for m in page["messages"]] == ["m1", "m2"] and page["has_more"]
    older = call(w.ops["room.history"], w.alice, {"room": "Books", "before": 2})
    assert [m["text"] for m in older["messages"]] == ["m0"] and not older["has_more"]
    call(w.ops["room.leave"], w.bob, {"room": "Books"})
    assert _refused(w, "room.history", w.bob, {"room": "Books"}) == "forbidden"
    assert _refused(w, "room.leave", w.bob, {"room": "Books"}) == "not_found"


def test_a_retried_send_is_stored_once(w):
    args = {"room": LOBBY, "text": "once", "client_id": "c-1"}
    first = call(w.ops["room.send"], w.alice, args)["message"]
    again = call(w.ops["room.send"], w.alice, args)["message"]
    assert again == first and not w.alice.events  # the copy is not pushed again


def test_rooms_listed_and_the_lobby_cannot_be_left(w):
    call(w.ops["room.create"], w.alice, {"room": "Books"})
    listed = {r["name"]: r for r in call(w.ops["room.list"], w.bob, {})["rooms"]}
    assert listed["Books"]["members"] == 1 and not listed["Books"]["joined"]
    assert listed[LOBBY]["kind"] == "public"
    assert _refused(w, "room.leave", w.alice, {"room": LOBBY}) == "forbidden"


def test_room_list_is_a_bounded_search(w):
    # 3,000 rooms with long names made one room.list reply 959 KB; now it is a search
    # with a limit and says when more matched.
    for name in ("Book Club", "Bookworms", "Chess", "50% off", "Ｂｏｏｋ　ｓｗａｐ"):
        call(w.ops["room.create"], w.alice, {"room": name})
    found = call(w.ops["room.list"], w.bob, {"query": "BOOK"})
    # (names are stored NFKC: the fullwidth one is "Book swap")
    assert [r["name"] for r in found["rooms"]] == ["Book Club", "Book swap", "Bookworms"]
    assert found["has_more"] is False
    exact = call(w.ops["room.list"], w.bob, {"query": "bookworms", "limit": 1})
    assert [r["name"] for r in exact["rooms"]] == ["Bookworms"]  # the exact name first
    assert exact["has_more"] is False
    first = call(w.ops["room.list"], w.bob, {"query": "o", "limit": 2})
    assert len(first["rooms"]) == 2 and first["has_more"] is True
    # LIKE's wildcards are plain characters in a query.
    assert [r["name"] for r in call(w.ops["room.list"], w.bob, {"query": "%"})["rooms"]] == [
        "50% off"
    ]
    everything = call(w.ops["room.list"], w.bob, {})
    assert everything["rooms"][0]["name"] == LOBBY and len(everything["rooms"]) == 6


def test_direct_messages_between_friends_only(w):
    assert _refused(w, "dm.send", w.alice, {"to": "bob", "text": "hi"}) == "forbidden"
    _befriend(w, w.alice, w.bob)
    sent = call(w.ops["dm.send"], w.alice, {"to": "bob", "text": "hi"})["message"]
    assert sent["to"] == {"id": 2, "username": "bob"}
    assert events_to(w.alice, user_topic(2))[0]["direct"] is True
    history = call(w.ops["dm.history"], w.bob, {"with": "alice"})
    assert [m["text"] for m in history["messages"]] == ["hi"]
    # The conversation is not a room: its name gets the answer of a room that is not.
    assert _refused(w, "room.join", w.bob, {"room": sent["room"]}) == "not_found"
    call(w.ops["friend.remove"], w.bob, {"username": "alice"})
    # Checked in the write's transaction, though this process knows the conversation.
    assert _refused(w, "dm.send", w.alice, {"to": "bob", "text": "still?"}) == "forbidden"
    assert _refused(w, "dm.history", w.carol, {"with": "alice"}) == "not_found"


def test_sync_after_cursors(w):
    _befriend(w, w.alice, w.bob)
    dm = call(w.ops["dm.send"], w.alice, {"to": "bob", "text": "a"})["message"]
    lobby = call(w.ops["room.send"], w.alice, {"room": LOBBY, "text": "b"})["message"]
    synced = call(w.ops["sync"], w.bob, {"cursors": {str(lobby["room_id"]): 1}})
    (only,) = synced["conversations"]
    assert only["id"] == dm["room_id"] and only["with"]["username"] == "alice"
    assert [m["text"] for m in only["messages"]] == ["a"] and not synced["has_more"]


def test_sessions_open_and_close_tell_friends(w):
    _befriend(w, w.alice, w.bob)
    snapshot = call(w.ops["session.open"], w.alice, {})
    assert [f["username"] for f in snapshot["friends"]] == ["bob"]
    assert {r["name"] for r in snapshot["rooms"]} == {LOBBY}
    assert events_to(w.alice, user_topic(2))[0]["online"] is True
    call(w.ops["presence.set"], w.alice, {"status": " reading "})
    assert events_to(w.alice, user_topic(2))[0]["status"] == "reading"
    assert call(w.ops["edge.heartbeat"], w.alice, {}) == {"sessions": 1}
    call(w.ops["session.close"], w.alice, {})
    (offline,) = events_to(w.alice, user_topic(2))
    assert offline["online"] is False and offline["last_seen"]


def test_a_gone_edge_takes_its_users_offline(w):
    _befriend(w, w.alice, w.bob)
    call(w.ops["session.open"], w.alice, {})
    assert call(w.ops["edge.gone"], w.bob, {}) == {"offline": 1}  # the same edge-1
    assert events_to(w.bob, user_topic(2))[0]["online"] is False


@pytest.mark.parametrize(
    ("op", "args"),
    [
        ("room.create", {"room": "dm:1:2"}),
        ("room.send", {"room": LOBBY, "text": "   "}),
        ("room.send", {"room": LOBBY, "text": "\u200b\u200b"}),
        ("presence.set", {"status": "x" * 1000}),
        ("sync", {"cursors": {"one": 1}}),
        ("sync", {"cursors": {"1": -1}}),
    ],
)
def test_bad_input_is_bad_request(w, op, args):
    assert _refused(w, op, w.alice, args) == "bad_request"


def test_export_then_erase_keeps_others_conversations(w):
    _befriend(w, w.alice, w.bob)
    call(w.ops["friend.request"], w.carol, {"username": "alice"})
    books_id = call(w.ops["room.create"], w.alice, {"room": "Books"})["room"]["id"]
    call(w.ops["room.join"], w.bob, {"room": "books"})
    call(w.ops["room.send"], w.alice, {"room": "books", "text": "chapter one"})
    call(w.ops["dm.send"], w.alice, {"to": "bob", "text": "psst"})
    call(w.ops["presence.set"], w.alice, {"status": "reading"})
    admin = as_user(None)  # an operator: no user

    exported = call(w.ops["admin.export"], admin, {"user_id": 1, "limit": 1})
    assert [m["text"] for m in exported["messages"]] == ["chapter one"]
    assert exported["has_more"] is True
    page2 = call(w.ops["admin.export"], admin, {"user_id": 1, "messages_after": 1})
    assert [(m["conversation"], m["text"]) for m in page2["messages"]] == [
        ("direct with bob", "psst")
    ]
    assert [f["username"] for f in exported["friends"]] == ["bob"]
    assert [r["user"] for r in exported["friend_requests_received"]] == ["carol"]
    assert [r["name"] for r in exported["rooms_created"]] == ["Books"]
    assert exported["profile"]["status"] == "reading"

    # Only once auth has marked the account.
    assert _refused(w, "admin.erase", admin, {"user_id": 1}) == "conflict"
    mark_erased(w.engine, 1)
    assert _refused(w, "admin.export", admin, {"user_id": 1}) == "not_found"
    done = call(w.ops["admin.erase"], admin, {"user_id": 1})
    assert done == {
        "user_id": 1,
        "friendships_deleted": 1,
        "requests_deleted": 2,
        "rooms_left": 1,
    }
    removed = [e["event"] for e in events_to(admin, user_topic(2))]
    assert removed == ["friend.removed"]
    assert [e["event"] for e in events_to(admin, user_topic(3))] == ["friend.removed"]
    member = events_to(admin, room_topic(books_id))
    assert [(e["event"], e["joined"]) for e in member] == [("room.member", False)]

    # The friend keeps what was said, in the group and in their direct conversation.
    assert call(w.ops["friend.list"], w.bob, {})["friends"] == []
    books = call(w.ops["room.history"], w.bob, {"room": "books"})["messages"]
    assert [m["text"] for m in books] == ["chapter one"]
    synced = call(w.ops["sync"], w.bob, {"cursors": {}})["conversations"]
    direct = [c for c in synced if c["kind"] == "direct"]
    assert [[m["text"] for m in c["messages"]] for c in direct] == [["psst"]]
    # Nobody reaches the erased account by name any more; again is safe.
    assert _refused(w, "friend.request", w.carol, {"username": "alice"}) == "not_found"
    again = call(w.ops["admin.erase"], admin, {"user_id": 1})
    assert again["friendships_deleted"] == again["requests_deleted"] == again["rooms_left"] == 0
    assert _refused(w, "admin.erase", admin, {"user_id": 99}) == "not_found"
    assert _refused(w, "admin.export", admin, {"user_id": 2, "limit": 0}) == "bad_request"
