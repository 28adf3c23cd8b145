"""Private rooms and moderation in-process (social's handlers on a temp SQLite file, no
ZeroMQ): roles and who outranks whom, private rooms invisible to outsiders, bans that
keep a user out of join, send, history and sync, announcement mode, deleting a room,
the events every action leaves in the room and the audit trail, the lobby's operator.
End to end (real processes, SQLite and MariaDB): test_moderation.py."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from chatroom.bus_contract import AdminOp, Control, room_topic, user_topic
from chatroom.errors import ServiceError
from chatroom.protocol import ErrorCode, Event
from chatroom.storage.schema import LOBBY
from services.social.handlers import SocialHandlers
from services.social.store import SocialStore

from inproc import add_users, as_user, call, events_to, sqlite_engine, sqlite_settings


@pytest.fixture
def w(tmp_path):
    """alice owns the private room 'den' and the public room 'hall'; bob is a member
    of both, carol of neither; dave is a stranger; alice2 is alice's second device."""
    settings = sqlite_settings(tmp_path)
    engine = sqlite_engine(settings)
    alice, bob, carol, dave = add_users(engine, "alice", "bob", "carol", "dave")
    store = SocialStore(engine)
    store.ensure_lobby()
    ops = SocialHandlers(store, settings).ops()
    for ctx in (alice, bob, carol, dave):
        call(ops["session.open"], ctx, {})
    call(ops["room.create"], alice, {"room": "den", "visibility": "private"})
    call(ops["room.create"], alice, {"room": "hall"})
    call(ops["room.invite"], alice, {"room": "den", "username": "bob"})
    call(ops["room.join"], bob, {"room": "hall"})
    operator = as_user(None, None, conn="admin")
    alice2 = as_user(1, "alice", conn="conn-1b")
    yield SimpleNamespace(
        ops=ops,
        alice=alice,
        alice2=alice2,
        bob=bob,
        carol=carol,
        dave=dave,
        operator=operator,
    )
    engine.dispose()


def refused(w, op: str, ctx, args) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        call(w.ops[op], ctx, args)
    return caught.value


def names_listed(w, ctx) -> set[str]:
    return {r["name"] for r in call(w.ops["room.list"], ctx, {})["rooms"]}


def test_private_room_does_not_exist_for_outsiders(w):
    assert "den" in names_listed(w, w.bob)
    assert "den" not in names_listed(w, w.carol)
    nothing = refused(w, "room.join", w.carol, {"room": "nope"})
    for op, args in (
        ("room.join", {"room": "den"}),
        ("room.leave", {"room": "den"}),
        ("room.members", {"room": "den"}),
        ("room.history", {"room": "den"}),
        ("room.send", {"room": "den", "text": "hi"}),
        ("room.invite", {"room": "den", "username": "carol"}),
        ("room.kick", {"room": "den", "username": "bob"}),
        ("room.update", {"room": "den", "topic": "mine"}),
        ("room.delete", {"room": "den"}),
        ("room.bans", {"room": "den"}),
    ):
        error = refused(w, op, w.carol, {**args})
        # The same answer as for a room that does not exist: code and wording.
        assert error.code == nothing.code == ErrorCode.NOT_FOUND, op
        assert error.message == nothing.message.replace("nope", "den"), op
    # Creating it says only that the name is taken.
    assert refused(w, "room.create", w.carol, {"room": "DEN"}).code == ErrorCode.CONFLICT


def test_roles_in_snapshot_members_and_replies(w):
    snapshot = call(w.ops["session.open"], w.bob, {})
    den = next(r for r in snapshot["rooms"] if r["name"] == "den")
    assert (den["visibility"], den["role"], den["topic"], den["announce"]) == (
        "private",
        "member",
        "",
        False,
    )
    lobby = next(r for r in snapshot["rooms"] if r["name"] == LOBBY)
    assert lobby["role"] == "member"
    members = call(w.ops["room.members"], w.bob, {"room": "den"})["members"]
    assert {m["username"]: m["role"] for m in members} == {"alice": "owner", "bob": "member"}


def test_invite_pushes_to_the_invitee_and_the_room(w):
    reply = call(w.ops["room.invite"], w.alice, {"room": "den", "username": "carol"})
    (event,) = reply["events"]
    assert (event["action"], event["by"]["username"], event["target"]["username"]) == (
        "invite",
        "alice",
        "carol",
    )
    (joined,) = events_to(w.alice, user_topic(3))
    assert joined["event"] == Event.ROOM_JOINED and joined[Control.JOIN] == event["room_id"]
    assert joined["reason"] == "invited" and joined["room"]["name"] == "den"
    (pushed,) = events_to(w.alice, room_topic(event["room_id"]))
    assert pushed == {"event": Event.ROOM_EVENT, **event}
    # Now carol is in: she reads it, and the invite is in its history as an event.
    history = call(w.ops["room.history"], w.carol, {"room": "den"})["messages"]
    assert [m.get("action") for m in history] == ["invite", "invite"]
    again = refused(w, "room.invite", w.alice, {"room": "den", "username": "carol"})
    assert again.code == ErrorCode.CONFLICT
    no_one = refused(w, "room.invite", w.alice, {"room": "den", "username": "nobody"})
    assert no_one.code == ErrorCode.NOT_FOUND


def test_members_cannot_moderate_and_moderators_not_their_equals(w):
    for op, args in (
        ("room.invite", {"username": "carol"}),
        ("room.kick", {"username": "alice"}),
        ("room.ban", {"username": "carol"}),
        ("room.update", {"announce": True}),
        ("room.set_role", {"username": "bob", "role": "owner"}),
        ("room.delete", {}),
    ):
        error = refused(w, op, w.bob, {"room": "den", **args})
        assert error.code == ErrorCode.FORBIDDEN, op
        assert "only" in error.message
    call(w.ops["room.set_role"], w.alice, {"room": "den", "username": "bob", "role": "moderator"})
    call(w.ops["room.invite"], w.bob, {"room": "den", "username": "carol"})
    call(w.ops["room.set_role"], w.alice, {"room": "den", "username": "carol", "role": "moderator"})
    # A moderator cannot kick or ban the owner or another moderator, nor set roles.
    for op, name in (("room.kick", "alice"), ("room.ban", "alice"), ("room.kick", "carol")):
        error = refused(w, op, w.bob, {"room": "den", "username": name})
        assert error.code == ErrorCode.FORBIDDEN and "not below yours" in error.message
    error = refused(
        w, "room.set_role", w.bob, {"room": "den", "username": "carol", "role": "member"}
    )
    assert error.code == ErrorCode.FORBIDDEN
    assert refused(w, "room.kick", w.bob, {"room": "den", "username": "bob"}).code == (
        ErrorCode.BAD_REQUEST
    )


def test_kick_removes_and_unsubscribes_every_session(w):
    reply = call(w.ops["room.kick"], w.alice, {"room": "den", "username": "bob"})
    room_id = reply["room"]["id"]
    (left,) = events_to(w.alice, user_topic(2))
    assert left["event"] == Event.ROOM_LEFT and left[Control.LEAVE] == room_id
    assert left["reason"] == "kicked"
    assert refused(w, "room.history", w.bob, {"room": "den"}).code == ErrorCode.NOT_FOUND
    assert refused(w, "room.send", w.bob, {"room": "den", "text": "x"}).code == (
        ErrorCode.NOT_FOUND
    )
    assert "den" not in {r["name"] for r in call(w.ops["sync"], w.bob, {})["conversations"]}


def test_ban_keeps_a_user_out_of_join_send_history_and_sync(w):
    call(w.ops["room.send"], w.alice, {"room": "hall", "text": "before"})
    call(w.ops["room.ban"], w.alice, {"room": "hall", "username": "bob"})
    assert refused(w, "room.join", w.bob, {"room": "hall"}).code == ErrorCode.BANNED
    assert refused(w, "room.history", w.bob, {"room": "hall"}).code == ErrorCode.BANNED
    assert refused(w, "room.send", w.bob, {"room": "hall", "text": "x"}).code == (ErrorCode.BANNED)
    call(w.ops["room.send"], w.alice, {"room": "hall", "text": "after"})
    synced = call(w.ops["sync"], w.bob, {"cursors": {}})["conversations"]
    assert "hall" not in {c["name"] for c in synced}
    # Banning a stranger ahead of time; unbanning; banning twice.
    call(w.ops["room.ban"], w.alice, {"room": "hall", "username": "dave"})
    assert refused(w, "room.join", w.dave, {"room": "hall"}).code == ErrorCode.BANNED
    again = refused(w, "room.ban", w.alice, {"room": "hall", "username": "dave"})
    assert again.code == ErrorCode.CONFLICT
    bans = call(w.ops["room.bans"], w.alice, {"room": "hall"})["bans"]
    assert [b["username"] for b in bans] == ["bob", "dave"]
    call(w.ops["room.unban"], w.alice, {"room": "hall", "username": "dave"})
    call(w.ops["room.join"], w.dave, {"room": "hall"})
    not_banned = refused(w, "room.unban", w.alice, {"room": "hall", "username": "dave"})
    assert not_banned.code == ErrorCode.NOT_FOUND


def test_announcement_mode_only_moderators_post(w):
    call(w.ops["room.update"], w.alice, {"room": "hall", "announce": True, "topic": "news"})
    error = refused(w, "room.send", w.bob, {"room": "hall", "text": "me too"})
    assert error.code == ErrorCode.READ_ONLY and "announcement" in error.message
    call(w.ops["room.send"], w.alice, {"room": "hall", "text": "news"})
    call(w.ops["room.set_role"], w.alice, {"room": "hall", "username": "bob", "role": "moderator"})
    call(w.ops["room.send"], w.bob, {"room": "hall", "text": "now I can"})
    same = refused(w, "room.update", w.alice, {"room": "hall", "announce": True})
    assert same.code == ErrorCode.CONFLICT
    long = refused(w, "room.update", w.alice, {"room": "hall", "topic": "x" * 201})
    assert long.code == ErrorCode.BAD_REQUEST


def test_moderators_delete_others_messages_but_not_their_betters(w):
    bobs = call(w.ops["room.send"], w.bob, {"room": "den", "text": "rude"})["message"]
    alices = call(w.ops["room.send"], w.alice, {"room": "den", "text": "rules"})["message"]
    call(w.ops["room.invite"], w.alice, {"room": "den", "username": "carol"})
    call(w.ops["room.set_role"], w.alice, {"room": "den", "username": "carol", "role": "moderator"})
    error = refused(w, "message.delete", w.bob, {"message": alices["id"]})
    assert error.code == ErrorCode.FORBIDDEN
    assert refused(w, "message.delete", w.carol, {"message": alices["id"]}).code == (
        ErrorCode.FORBIDDEN
    )
    change = call(w.ops["message.delete"], w.carol, {"message": bobs["id"]})["change"]
    assert change["from"]["username"] == "carol" and change["deleted"]
    # Moderators do not edit others' words.
    assert refused(w, "message.edit", w.carol, {"message": alices["id"], "text": "x"}).code == (
        ErrorCode.FORBIDDEN
    )
    audit = call(w.ops[AdminOp.AUDIT], w.operator, {"room": "den"})["audit"]
    assert audit[-1]["action"] == "delete_message" and audit[-1]["actor"] == "carol"


def test_last_owner_hands_over_before_leaving(w):
    error = refused(w, "room.leave", w.alice, {"room": "hall"})
    assert error.code == ErrorCode.CONFLICT and "owner" in error.message
    step_down = {"room": "hall", "username": "alice", "role": "member"}
    assert refused(w, "room.set_role", w.alice, step_down).code == ErrorCode.CONFLICT
    call(w.ops["room.set_role"], w.alice, {"room": "hall", "username": "bob", "role": "owner"})
    call(w.ops["room.leave"], w.alice, {"room": "hall"})
    members = call(w.ops["room.members"], w.bob, {"room": "hall"})["members"]
    assert [(m["username"], m["role"]) for m in members] == [("bob", "owner")]


def test_delete_tells_members_and_hides_the_room(w):
    call(w.ops["room.send"], w.bob, {"room": "den", "text": "secret"})
    reply = call(w.ops["room.delete"], w.alice, {"room": "den"})
    room_id = reply["room"]["id"]
    told = {t: e for t, e in w.alice.events if e.get("event") == Event.ROOM_LEFT}
    assert set(told) == {user_topic(1), user_topic(2)}
    assert all(e["reason"] == "deleted" and e[Control.LEAVE] == room_id for e in told.values())
    for who in (w.alice, w.bob):
        assert refused(w, "room.history", who, {"room": "den"}).code == ErrorCode.NOT_FOUND
        assert refused(w, "room.join", who, {"room": "den"}).code == ErrorCode.NOT_FOUND
        assert "den" not in names_listed(w, who)
    # The name is not reused (docs/protocol.md).
    assert refused(w, "room.create", w.bob, {"room": "den"}).code == ErrorCode.CONFLICT
    assert refused(w, "room.delete", w.alice, {"room": LOBBY}).code == ErrorCode.FORBIDDEN


def test_events_replayed_by_sync_in_seq_order(w):
    den = call(w.ops["room.members"], w.bob, {"room": "den"})
    assert den["room"] == "den"
    first = call(w.ops["sync"], w.bob, {})
    (entry,) = [c for c in first["conversations"] if c["name"] == "den"]
    cursor = {str(entry["id"]): entry["last_seq"]}
    call(w.ops["room.update"], w.alice, {"room": "den", "topic": "plans", "announce": True})
    call(w.ops["room.set_role"], w.alice, {"room": "den", "username": "bob", "role": "moderator"})
    (entry,) = call(w.ops["sync"], w.bob, {"cursors": cursor})["conversations"]
    events = [(e["action"], e["detail"]) for e in entry["events"]]
    assert events == [("topic", "plans"), ("announce", "on"), ("role", "moderator")]
    assert [e["seq"] for e in entry["events"]] == sorted(e["seq"] for e in entry["events"])
    assert (entry["topic"], entry["announce"]) == ("plans", True)


def test_lobby_is_the_operators(w):
    lobby = {"room": LOBBY}
    assert refused(w, "room.kick", w.alice, {**lobby, "username": "bob"}).code == (
        ErrorCode.FORBIDDEN
    )
    call(w.ops[AdminOp.ROOM], w.operator, {"action": "ban", **lobby, "username": "bob"})
    (left,) = events_to(w.operator, user_topic(2))
    assert left["reason"] == "banned"
    error = refused(w, "room.send", w.bob, {**lobby, "text": "let me in"})
    assert error.code == ErrorCode.BANNED
    assert refused(w, "room.history", w.bob, lobby).code == ErrorCode.BANNED
    assert LOBBY not in {r["name"] for r in call(w.ops["session.open"], w.bob, {})["rooms"]}
    assert LOBBY not in {c["name"] for c in call(w.ops["sync"], w.bob, {})["conversations"]}
    call(w.ops[AdminOp.ROOM], w.operator, {"action": "unban", **lobby, "username": "bob"})
    call(w.ops["room.send"], w.bob, {**lobby, "text": "thanks"})
    # Announcement mode in the lobby, with a moderator the operator named.
    call(w.ops[AdminOp.ROOM], w.operator, {"action": "update", **lobby, "announce": True})
    args = {"action": "set_role", **lobby, "username": "carol", "role": "moderator"}
    call(w.ops[AdminOp.ROOM], w.operator, args)
    assert refused(w, "room.send", w.bob, {**lobby, "text": "hi"}).code == ErrorCode.READ_ONLY
    call(w.ops["room.send"], w.carol, {**lobby, "text": "welcome"})
    call(w.ops["room.kick"], w.carol, {**lobby, "username": "bob"})
    owner = {"action": "set_role", **lobby, "username": "carol", "role": "owner"}
    assert refused(w, AdminOp.ROOM, w.operator, owner).code == ErrorCode.BAD_REQUEST
    audit = call(w.ops[AdminOp.AUDIT], w.operator, lobby)["audit"]
    assert [(a["action"], a["actor"], a["target"]) for a in audit] == [
        ("ban", None, "bob"),
        ("unban", None, "bob"),
        ("announce", None, None),
        ("role", None, "carol"),
        ("kick", "carol", "bob"),
    ]
    history = call(w.ops["room.history"], w.carol, lobby)["messages"]
    operator_event = next(m for m in history if m.get("action") == "ban")
    assert operator_event["by"] is None and operator_event["target"]["username"] == "bob"


def test_admin_room_refuses_bad_requests(w):
    for args in (
        {"action": "explode", "room": LOBBY},
        {"action": "kick", "room": 5, "username": "bob"},
        {"action": "update", "room": LOBBY, "announce": "yes"},
    ):
        assert refused(w, AdminOp.ROOM, w.operator, args).code == ErrorCode.BAD_REQUEST
    assert refused(w, AdminOp.AUDIT, w.operator, {"room": "nope"}).code == ErrorCode.NOT_FOUND


def test_bad_visibility_and_role(w):
    bad = refused(w, "room.create", w.bob, {"room": "x1", "visibility": "secret"})
    assert bad.code == ErrorCode.BAD_REQUEST and "visibility" in bad.message
    role = {"room": "den", "username": "bob", "role": "king"}
    assert refused(w, "room.set_role", w.alice, role).code == ErrorCode.BAD_REQUEST
