"""Private rooms and moderation through the real processes (edge, bus, social), on
SQLite and MariaDB: an outsider probing a private room by name, an invitation reaching
every session of the invitee, a kicked user's other session no longer hearing the room,
a banned user rejoining, syncing and reading history, a moderator's two sessions, a
moderator trying the owner, announcement mode, and the operator's `chatroom admin room`
and `chatroom admin audit` against the running stack. In-process: test_moderation_handlers.py."""

from __future__ import annotations

from wire import WireClient, users


def _second(stack, name: str) -> WireClient:
    client = WireClient(stack.port)
    client.login(name, "correct horse")
    return client


def test_private_room_invite_and_kick_across_sessions(stack):
    with users(stack, "ann", "bob", "cat") as (ann, bob, cat), _second(stack, "cat") as cat2:
        den = ann.call("room.create", room="den", visibility="private")["room"]
        assert (den["visibility"], den["role"]) == ("private", "owner")
        # The outsider probing it by name gets the answer for a name never used.
        never = cat.error_of("room.join", room="no such room")
        for op in ("room.join", "room.history", "room.members"):
            error = cat.error_of(op, room="den")
            assert error["code"] == "not_found" == never["code"]
            assert error["message"] == never["message"].replace("no such room", "den")
        assert "den" not in [r["name"] for r in cat.call("room.list")["rooms"]]
        # An invitation by a non-member is the same not_found; by the owner it lands on
        # every session of the invitee, which hear the room from then on.
        assert bob.error_of("room.invite", room="den", username="cat")["code"] == "not_found"
        ann.call("room.invite", room="den", username="cat")
        for client in (cat, cat2):
            joined = client.event("room.joined", reason="invited")
            assert joined["room"]["name"] == "den" and joined["room"]["visibility"] == "private"
        said = ann.call("room.send", room="den", text="welcome")["message"]
        for client in (cat, cat2):
            client.event("message", id=said["id"])
        # Kicked: both sessions are told and stop hearing the room.
        ann.call("room.kick", room="den", username="cat")
        for client in (cat, cat2):
            assert client.event("room.left", reason="kicked")["room"]["name"] == "den"
        after = ann.call("room.send", room="den", text="after the kick")["message"]
        ann.call("room.invite", room="den", username="bob")  # an event that comes later
        bob.event("room.joined", reason="invited")
        cat2.no_event("message", within=0.5)
        assert after["id"] and cat.error_of("room.history", room="den")["code"] == "not_found"
        synced = cat.call("sync", cursors={str(den["id"]): 0})
        assert den["id"] not in [c["id"] for c in synced["conversations"]]
        assert "after the kick" not in str(synced)


def test_moderators_bans_and_announcement_mode(stack):
    with (
        users(stack, "ann", "bob", "cat") as (ann, bob, cat),
        _second(stack, "bob") as bob2,
    ):
        hall = ann.call("room.create", room="hall")["room"]
        for client in (bob, cat):
            client.call("room.join", room="hall")
        ann.call("room.set_role", room="hall", username="bob", role="moderator")
        for client in (bob, bob2):  # the moderator's two sessions see the change
            event = client.event("room.event", action="role")
            assert event["target"]["username"] == "bob" and event["detail"] == "moderator"
        rude = cat.call("room.send", room="hall", text="rude words")["message"]
        # A moderator cannot ban the owner; a member cannot kick anyone.
        assert bob.error_of("room.ban", room="hall", username="ann")["code"] == "forbidden"
        assert cat.error_of("room.kick", room="hall", username="bob")["code"] == "forbidden"
        # The moderator deletes the member's message, then bans them from a session.
        bob.call("message.delete", message=rude["id"])
        bob2.call("room.ban", room="hall", username="cat")
        assert cat.event("room.left", reason="banned")["room"]["name"] == "hall"
        bob.event("room.event", action="ban")
        # Banned: no rejoin, no history, no sync, no send.
        for op, fields in (
            ("room.join", {}),
            ("room.history", {}),
            ("room.send", {"text": "let me back"}),
        ):
            assert cat.error_of(op, room="hall", **fields)["code"] == "banned", op
        hidden = ann.call("room.send", room="hall", text="not for cat")["message"]
        synced = cat.call("sync", cursors={str(hall["id"]): 0})
        assert hall["id"] not in [c["id"] for c in synced["conversations"]]
        assert "not for cat" not in str(synced) and hidden["id"]
        bans = bob.call("room.bans", room="hall")["bans"]
        assert [b["username"] for b in bans] == ["cat"]
        # Unbanned, cat may join again; in announcement mode cat reads but cannot post.
        bob.call("room.unban", room="hall", username="cat")
        cat.call("room.join", room="hall")
        ann.call("room.update", room="hall", announce=True, topic="news only")
        error = cat.error_of("room.send", room="hall", text="me too")
        assert error["code"] == "read_only" and "announcement" in error["message"]
        bob.call("room.send", room="hall", text="from a moderator")
        # Everything replayed in order for a session that was away.
        synced = bob2.call("sync", cursors={str(hall["id"]): 0})
        (entry,) = [c for c in synced["conversations"] if c["id"] == hall["id"]]
        actions = [e.get("action", e["kind"]) for e in entry["events"]]
        assert actions == ["role", "delete", "ban", "unban", "topic", "announce"]
        assert (entry["topic"], entry["announce"]) == ("news only", True)


def test_operator_moderates_the_lobby(stack, admin, admin_json):
    with users(stack, "ann", "bob") as (ann, bob), _second(stack, "bob") as bob2:
        out = admin(stack, "room", "ban", "lobby", "bob")
        assert out.returncode == 0 and "room lobby: ban bob" in out.stdout, out.stderr
        for client in (bob, bob2):
            client.event("room.left", reason="banned")
        ann.event("room.event", action="ban", by=None)
        assert bob.error_of("room.send", room="lobby", text="hi")["code"] == "banned"
        quiet = ann.call("room.send", room="lobby", text="bob cannot read this")["message"]
        bob2.no_event("message", within=0.5)
        assert "bob cannot read this" not in str(bob.call("sync", cursors={}))
        assert bob.error_of("room.history", room="lobby")["code"] == "banned"
        assert quiet["id"]
        assert admin(stack, "room", "unban", "lobby", "bob").returncode == 0
        bob.event("room.joined", reason="unbanned")
        assert admin(stack, "room", "announce", "lobby", "on").returncode == 0
        assert admin(stack, "room", "role", "lobby", "ann", "moderator").returncode == 0
        assert admin(stack, "room", "topic", "lobby", "Welcome! Read the rules.").returncode == 0
        assert bob.error_of("room.send", room="lobby", text="hi")["code"] == "read_only"
        ann.call("room.send", room="lobby", text="announcement")
        # Clients cannot reach the operator's ops; mistakes get a clear answer.
        assert ann.error_of("admin.room", action="ban", room="lobby")["code"] == "unknown_op"
        bad = admin(stack, "room", "ban", "lobby", "nobody")
        assert bad.returncode == 1 and "no user called 'nobody'" in bad.stderr
        audit = admin_json(stack, "audit", "lobby")["audit"]
        assert [(a["action"], a["actor"], a["target"]) for a in audit] == [
            ("ban", None, "bob"),
            ("unban", None, "bob"),
            ("announce", None, None),
            ("role", None, "ann"),
            ("topic", None, None),
        ]
        table = admin(stack, "audit", "lobby").stdout
        assert "(operator)" in table and "5 actions in lobby" in table
