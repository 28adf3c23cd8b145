"""Blocking through real processes and sockets, on SQLite and MariaDB: the edge skips a
blocked author's room messages on every session of the blocker (the one that blocked,
another one told by the block.added push, and one logging in later from the snapshot),
and stops skipping on unblock; history and sync agree; the blocked user's probes (DM,
friend request, avatar, members, presence) get a stranger's answers; bad input gets
typed errors. In-process: test_block_handlers.py."""

from __future__ import annotations

import base64

from images import png
from wire import WireClient, befriend, users


def _texts(messages: list[dict]) -> list[str]:
    return [m["text"] for m in messages]


def _next_message(client: WireClient) -> dict:
    return client.event("message")


def test_every_session_of_the_blocker_stops_hearing_the_blocked_user(stack):
    with users(stack, "ann", "bob", "cat") as (ann, bob, cat), WireClient(stack.port) as ann2:
        ann2.login("ann", "correct horse")
        blocked = ann.call("block.add", username="bob")
        assert blocked["user"]["username"] == "bob"
        pushed = ann2.event("block.added")  # the other session, at once
        assert pushed["user"] == {
            "id": bob.user["id"],
            "username": "bob",
            "since": blocked["since"],
        }
        ann.no_event("block.added", within=0.2)  # the one that blocked has the reply

        bob.call("room.send", room="lobby", text="from bob")
        cat.call("room.send", room="lobby", text="from cat")
        # Events of one room arrive in order: cat's comes after bob's would have (and
        # others hear bob; the sender's own connection does not get its echo).
        assert _next_message(cat)["text"] == "from bob"
        for session in (ann, ann2):
            assert _next_message(session)["text"] == "from cat"
        # A session logged in later starts from the snapshot's list.
        with WireClient(stack.port) as ann3:
            assert [b["username"] for b in ann3.login("ann", "correct horse")["blocked"]] == ["bob"]
            bob.call("room.send", room="lobby", text="bob again")
            cat.call("room.send", room="lobby", text="cat again")
            assert _next_message(cat)["text"] == "bob again"
            assert _next_message(ann3)["text"] == "cat again"
        for session in (ann, ann2):
            assert _next_message(session)["text"] == "cat again"

        # History and sync leave him out too; others see all of it.
        assert _texts(ann2.call("room.history", room="lobby")["messages"]) == [
            "from cat",
            "cat again",
        ]
        assert len(cat.call("room.history", room="lobby")["messages"]) == 4
        (lobby,) = [c for c in ann.call("sync")["conversations"] if c["name"] == "lobby"]
        assert _texts(lobby["messages"]) == ["from cat", "cat again"]
        assert [(e["kind"], e["target"]) for e in lobby["events"]] == [("hidden", None)] * 2

        # Unblocked on the second session: both hear him again.
        ann2.call("block.remove", username="bob")
        ann.event("block.removed")
        bob.call("room.send", room="lobby", text="bob is back")
        for session in (ann, ann2):
            assert _next_message(session)["text"] == "bob is back"


def test_the_blocked_users_probes_look_like_a_strangers(stack):
    # ann blocks bob, her friend; cat has never met ann: bob must get cat's answers.
    with users(stack, "ann", "bob", "cat") as (ann, bob, cat):
        ann.call("room.create", room="den")
        bob.call("room.join", room="den")
        cat.call("room.join", room="den")
        ann.call("presence.set", status="at work")
        avatar = ann.call("avatar.set", image=base64.b64encode(png(64, 64)).decode())["hash"]
        befriend(ann, bob)
        ann.call("block.add", username="bob")
        # The friendship ends as with friend.remove, both told.
        assert bob.event("friend.removed")["user"]["username"] == "ann"
        assert ann.event("friend.removed")["user"]["username"] == "bob"

        # Direct messages: the non-friend's refusal, word for word.
        assert bob.error_of("dm.send", to="ann", text="hi") == cat.error_of(
            "dm.send", to="ann", text="hi"
        )
        # Friend requests: pending, as a stranger's; ann never hears of bob's.
        answers = [c.call("friend.request", username="ann") for c in (bob, cat)]
        assert [{k: v for k, v in a.items() if k != "id"} for a in answers] == [
            {"ok": True, "status": "pending", "to": {"id": ann.user["id"], "username": "ann"}}
        ] * 2
        assert ann.event("friend.request")["from"]["username"] == "cat"
        ann.no_event("friend.request", within=0.3)
        assert [r["user"]["username"] for r in ann.call("friend.list")["incoming"]] == ["cat"]
        assert [r["user"]["username"] for r in bob.call("friend.list")["outgoing"]] == ["ann"]
        # Her picture: not_found, as a picture that does not exist.
        assert bob.error_of("avatar.get", hash=avatar) == cat.error_of("avatar.get", hash="0" * 64)
        # Members: to bob she is offline with nothing to show; to cat she is online.
        seen_by = {
            who.user["username"]: next(
                m for m in who.call("room.members", room="den")["members"] if m["username"] == "ann"
            )
            for who in (bob, cat)
        }
        assert seen_by["bob"] == {
            "id": ann.user["id"],
            "username": "ann",
            "online": False,
            "status": "",
            "avatar": None,
            "last_seen": None,
            "role": "owner",  # the room's, as anyone sees it
        }
        assert seen_by["cat"]["online"] is True and seen_by["cat"]["avatar"] == avatar
        lobby = [m["username"] for m in bob.call("room.members", room="lobby")["members"]]
        assert "ann" not in lobby and "cat" in lobby
        # Presence: not a friend, so no pushes.
        ann.call("presence.set", status="back")
        bob.no_event("presence", within=0.3)
        # ann's words still reach bob: blocking hides him from her, not her from him.
        ann.call("room.send", room="den", text="hello den")
        assert bob.event("message")["text"] == "hello den"


def test_bad_input_gets_typed_errors(stack):
    with users(stack, "ann", "bob") as (ann, bob):
        assert ann.error_of("block.add", username="ann")["code"] == "bad_request"
        assert ann.error_of("block.add", username="nobody")["code"] == "not_found"
        assert ann.error_of("block.remove", username="bob")["code"] == "not_found"
        assert ann.error_of("block.add", username="")["code"] in ("bad_request", "not_found")
        assert ann.error_of("block.add")["code"] == "bad_request"  # no username
        assert ann.error_of("block.add", username=7)["code"] == "bad_request"
        first = ann.call("block.add", username="bob")
        again = ann.call("block.add", username="Bob")  # twice is one block
        assert (again["user"], again["since"]) == (first["user"], first["since"])
        assert len(ann.call("block.list")["blocked"]) == 1
        refused = ann.error_of("friend.request", username="bob")
        assert refused["code"] == "conflict" and "unblock" in refused["message"]
        # bob cannot lift ann's block, nor see it in his own list.
        assert bob.error_of("block.remove", username="ann")["code"] == "not_found"
        assert bob.call("block.list")["blocked"] == []
