"""`chatroom admin export` and `chatroom admin erase`, run as operators run them (a
process talking to the live stack over the bus): the export holds what the user
stored; the erase removes the account and its personal data, while the people they
talked to keep their conversations, the author shown as "deleted user"."""

from __future__ import annotations

import base64
import json
import stat

from images import png
from wire import WireClient, befriend

DELETED = "deleted user"


def _authors(messages: list[dict]) -> list[tuple[str, str]]:
    return [(m["from"]["username"], m["text"]) for m in messages]


def test_export_then_erase(make_stack, db_url, admin, admin_json, tmp_path):
    stack = make_stack(db_url)
    with (
        WireClient(stack.port) as mallory,
        WireClient(stack.port) as bob,
        WireClient(stack.port) as carol,
        WireClient(stack.port) as dave,
    ):
        mallory.register_and_login("Mallory")
        bob.register_and_login("bob")
        carol.register_and_login("carol")
        dave.register_and_login("dave")
        befriend(mallory, bob)
        carol.call("friend.request", username="mallory")
        mallory.call("friend.request", username="dave")
        mallory.call("room.send", room="lobby", text="hello lobby")
        mallory.call("dm.send", to="bob", text="a secret for bob")
        mallory.call("room.create", room="plots")
        bob.call("room.join", room="plots")
        mallory.call("room.send", room="plots", text="the plan")
        mallory.call("presence.set", status="scheming")
        picture = base64.b64encode(png(64, 64)).decode()
        avatar_hash = mallory.call("avatar.set", image=picture)["hash"]

        # export, to a file only its owner reads
        out_file = tmp_path / "mallory.json"
        out = admin(stack, "export", "MALLORY", "--output", str(out_file))
        assert out.returncode == 0, out.stderr
        assert stat.S_IMODE(out_file.stat().st_mode) == 0o600
        exported = json.loads(out_file.read_text())
        assert exported["account"]["username"] == "Mallory"
        sent = [(m["conversation"], m["text"]) for m in exported["messages_sent"]]
        assert sent == [
            ("lobby", "hello lobby"),
            ("direct with bob", "a secret for bob"),
            ("plots", "the plan"),
        ]
        assert all(m["ts"] > 0 for m in exported["messages_sent"])
        assert [f["username"] for f in exported["friends"]] == ["bob"]
        assert [r["user"] for r in exported["friend_requests_received"]] == ["carol"]
        assert [r["user"] for r in exported["friend_requests_sent"]] == ["bob", "dave"]
        assert {c["name"] for c in exported["conversations"]} == {"plots", "direct with bob"}
        assert [r["name"] for r in exported["rooms_created"]] == ["plots"]
        assert exported["profile"]["status"] == "scheming"
        assert exported["sessions"] and exported["sessions"][0]["ip"] == "127.0.0.1"
        assert exported["avatar"]["hash"] == avatar_hash and exported["avatar"]["pngs"]
        assert len(exported["connections"]) == 1
        text = out_file.read_text()
        assert "password" not in text and "token" not in text  # no secrets, not even hashes
        # to stdout, the same
        assert (
            json.loads(admin(stack, "export", "mallory").stdout)["messages_sent"]
            == (exported["messages_sent"])
        )

        # erase: asks to type the name; anything else changes nothing
        out = admin(stack, "erase", "mallory", stdin="bob\n")
        assert out.returncode == 1 and "not confirmed" in out.stderr
        assert admin(stack, "export", "mallory").returncode == 0
        out = admin(stack, "erase", "mallory", stdin="mallory\n")
        assert out.returncode == 0, out.stderr
        assert "erase: done" in out.stdout and "1 friends" in out.stdout, out.stdout
        closing = [f for f in mallory.wait_closed(timeout=10) if f.get("event") == "closing"]
        assert [f["code"] for f in closing] == ["account_disabled"]

        # a connected friend's client: the friend is gone, with an existing push
        gone = {"id": mallory.user["id"], "username": "Mallory"}
        bob.event("friend.removed", user=gone)
        bob.event("room.member", room="plots", user=gone, joined=False)
        carol.event("friend.removed", user=gone)  # her request to them is closed
        dave.event("friend.request.closed", **{"from": gone})  # theirs to him too
        assert bob.call("friend.list")["friends"] == []
        assert carol.call("friend.list")["outgoing"] == []
        assert dave.call("friend.list")["incoming"] == []

        # what others received stays, by "deleted user": history, sync, the DM list
        plots = bob.call("room.history", room="plots")["messages"]
        assert _authors(plots) == [(DELETED, "the plan")]
        lobby = bob.call("room.history", room="lobby")["messages"]
        assert _authors(lobby) == [(DELETED, "hello lobby")]
        synced = {c["name"]: c for c in bob.call("sync", cursors={})["conversations"]}
        direct = [c for c in synced.values() if c["kind"] == "direct"]
        assert [(c["with"]["username"], _authors(c["messages"])) for c in direct] == [
            (DELETED, [(DELETED, "a secret for bob")])
        ]
        members = bob.call("room.members", room="plots")["members"]
        assert [m["username"] for m in members] == ["bob"]

    with WireClient(stack.port) as again, WireClient(stack.port) as bob:
        # the erased user cannot log in (the answer for any wrong name), by password or
        # by token, and the name stays taken
        wrong = again.error_of("login", username="mallory", password="correct horse")
        unknown = again.error_of("login", username="nobody", password="correct horse")
        assert wrong == unknown and wrong["code"] == "bad_credentials"
        assert again.error_of("login", token=mallory.token)["code"] == "bad_credentials"
        taken = again.error_of("register", username="MALLORY", password="correct horse")
        assert taken["code"] == "username_taken"
        assert again.error_of("friend.request", username="mallory")["code"] == ("not_authenticated")
        reply = bob.login("bob", "correct horse")
        assert reply["friends"] == []
        assert [d["with"]["username"] for d in reply["direct"]] == [DELETED]
        assert bob.error_of("friend.request", username="mallory")["code"] == "not_found"

    # gone for operators: export and every other command say not_found; users omits it
    out = admin(stack, "export", "mallory")
    assert out.returncode == 1 and "not_found" in out.stderr and out.stdout == ""
    assert admin(stack, "kick", "mallory").returncode == 1
    names = [u["username"] for u in admin_json(stack, "users")["users"]]
    assert names == ["bob", "carol", "dave"]
    # erasing again is safe (an erase that stopped half-way is finished this way)
    out = admin(stack, "erase", "mallory", "--yes")
    assert out.returncode == 0 and "being erased already" in out.stdout, out
    with WireClient(stack.port) as bob:
        bob.login("bob", "correct horse")
        plots = bob.call("room.history", room="plots")["messages"]
        assert _authors(plots) == [(DELETED, "the plan")]


def test_export_and_erase_bad_input(make_stack, sqlite_url, admin):
    stack = make_stack(sqlite_url)
    for command in ("export", "erase"):
        out = admin(stack, command, "nobody", "--yes" if command == "erase" else "--output=x")
        assert out.returncode == 1 and "not_found: no user named 'nobody'" in out.stderr, out
        out = admin(stack, command, "  ")
        assert out.returncode == 2 and "give a username" in out.stderr, out
    # erase without a terminal and without --yes: nothing typed, nothing erased
    with WireClient(stack.port) as c:
        c.register_and_login("alice")
    out = admin(stack, "erase", "alice", stdin="")
    assert out.returncode == 1 and "not confirmed" in out.stderr
    with WireClient(stack.port) as c:
        c.login("alice", "correct horse")
        # clients cannot reach these ops: the edge forwards only client ops
        for op in ("admin.export", "admin.erase", "admin.erase_finish"):
            assert c.error_of(op, username="alice", user_id=1)["code"] == "unknown_op"
        c.call("ping")
