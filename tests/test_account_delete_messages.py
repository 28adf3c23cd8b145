"""CHAT_DELETE_MESSAGES_ON_ACCOUNT_DELETE through real processes (SQLite and MariaDB):
on, a deleted account's messages are deleted as message.delete does it (a tombstone
without text, a sequenced delete event that sync replays, a push to whoever sees the
conversation), by the user's own account.delete and by `chatroom admin erase`; off (the
default), they stay, from "deleted user" (also tests/test_account_self.py and
tests/test_admin_erase.py)."""

from __future__ import annotations

from services.social.handlers.accounts import REMOVE_BATCH

from wire import WireClient, befriend

PW = "correct horse"
DELETED = "deleted user"


def _shown(messages: list[dict]) -> list[tuple[str, str, bool]]:
    return [(m["from"]["username"], m["text"], bool(m.get("deleted"))) for m in messages]


def test_account_delete_removes_the_messages_when_configured(make_stack, db_url):
    stack = make_stack(db_url, delete_messages_on_account_delete="true")
    with (
        WireClient(stack.port) as ann,
        WireClient(stack.port) as phone,
        WireClient(stack.port) as bob,
        WireClient(stack.port) as carol,
    ):
        ann.register_and_login("ann")
        phone.login("ann", PW)
        bob.register_and_login("bob")
        carol.register_and_login("carol")
        befriend(ann, bob)
        lobby_msg = ann.call("room.send", room="lobby", text="bye all")["message"]
        bob.call("room.send", room="lobby", text="bob stays")
        dm = ann.call("dm.send", to="bob", text="a secret for bob")["message"]
        ann.call("room.create", room="plots")
        bob.call("room.join", room="plots")
        plan = ann.call("room.send", room="plots", text="the plan")["message"]
        gone_already = ann.call("room.send", room="lobby", text="oops")["message"]
        ann.call("message.delete", message=gone_already["id"])
        for who in (bob, carol):
            who.event("message.deleted", target=gone_already["id"])
        carol_cursor = {str(lobby_msg["room_id"]): lobby_msg["seq"] - 1}

        # a wrong password deletes nothing
        assert ann.error_of("account.delete", password="not it")["code"] == "bad_credentials"
        assert [m["text"] for m in bob.call("room.history", room="lobby")["messages"]] == [
            "bye all",
            "bob stays",
            "",
        ]

        assert ann.call("account.delete", password=PW)["ok"]
        assert [
            f["code"] for f in phone.wait_closed(timeout=10) if f.get("event") == "closing"
        ] == ["account_deleted"]
        # pushed live: the lobby's to everyone in it, the DM's to bob; one each
        for who in (bob, carol):
            who.event("message.deleted", target=lobby_msg["id"])
        bob.event("message.deleted", target=dm["id"], direct=True)
        carol.no_event("message.deleted", within=0.3)

        # history: tombstones without text, from "deleted user"; others' messages stay
        lobby = bob.call("room.history", room="lobby")["messages"]
        assert _shown(lobby) == [
            (DELETED, "", True),
            ("bob", "bob stays", False),
            (DELETED, "", True),
        ]
        plots = bob.call("room.history", room="plots")["messages"]
        assert _shown(plots) == [(DELETED, "", True)] and plots[0]["id"] == plan["id"]
        # sync replays the deletes as events after the cursor
        synced = {c["name"]: c for c in carol.call("sync", cursors=carol_cursor)["conversations"]}
        deletes = [e["target"] for e in synced["lobby"]["events"] if e["kind"] == "delete"]
        assert deletes == [gone_already["id"], lobby_msg["id"]]
        direct = [c for c in bob.call("sync", cursors={})["conversations"] if c["kind"] == "direct"]
        assert [_shown(c["messages"]) for c in direct] == [[(DELETED, "", True)]]
        # nothing of the text is stored any more: ann's export is gone with her
        bob.call("room.send", room="lobby", text="still works")


def test_admin_erase_deletes_every_message_in_batches(make_stack, sqlite_url, admin, admin_json):
    stack = make_stack(sqlite_url, delete_messages_on_account_delete="true", rate_message="off")
    count = REMOVE_BATCH * 2 + 7  # more than one batch, the last one short
    with WireClient(stack.port) as mallory, WireClient(stack.port) as bob:
        mallory.register_and_login("mallory")
        bob.register_and_login("bob")
        for i in range(count):
            mallory.call("room.send", room="lobby", text=f"spam {i}")
        out = admin(stack, "erase", "mallory", "--yes")
        assert out.returncode == 0, out.stderr
        assert f"{count} of its messages deleted" in out.stdout, out.stdout
        history = bob.call("room.history", room="lobby", limit=200)["messages"]
        assert {(m["text"], m.get("deleted")) for m in history} == {("", True)}
        # run again (an erase cut half-way is finished this way): nothing new to delete
        result = admin_json(stack, "erase", "mallory", "--yes")
        assert result["erase_social"]["messages_deleted"] == 0


def test_off_by_default_the_messages_stay(make_stack, sqlite_url, admin):
    stack = make_stack(sqlite_url)
    with WireClient(stack.port) as mallory, WireClient(stack.port) as bob:
        mallory.register_and_login("mallory")
        bob.register_and_login("bob")
        mallory.call("room.send", room="lobby", text="hello")
        out = admin(stack, "erase", "mallory", "--yes")
        assert 'its messages now show as "deleted user"' in out.stdout, out.stdout
        bob.no_event("message.deleted", within=0.3)
        lobby = bob.call("room.history", room="lobby")["messages"]
        assert _shown(lobby) == [(DELETED, "hello", False)]


def test_a_chat_with_a_deleted_account_is_read_by_its_id(make_stack, db_url):
    """The deleted account's name is "deleted user" for everyone it wrote to, so its
    direct chats are reached by the id the login reply and sync give (`with_id`): the
    history, and the read marker. An id reveals nothing: the same not_found, naming
    no one, for a stranger's id, a made-up one and one's own."""
    stack = make_stack(db_url)
    with (
        WireClient(stack.port) as ann,
        WireClient(stack.port) as bob,
        WireClient(stack.port) as cat,
        WireClient(stack.port) as laptop,
    ):
        ann.register_and_login("ann")
        bob.register_and_login("bob")
        cat.register_and_login("cat")
        befriend(ann, bob)
        first = ann.call("dm.send", to="bob", text="hello bob")["message"]
        bob.call("dm.send", to="ann", text="hi ann")
        ann_id = ann.user["id"]
        assert ann.call("account.delete", password=PW)["ok"]
        removed = bob.event("friend.removed")
        assert removed["user"] == {"id": ann_id, "username": "ann"} and removed["deleted"] is True

        (chat,) = laptop.login("bob", PW)["direct"]  # the login reply lists the chat
        assert chat["with"] == {"id": ann_id, "username": DELETED}
        synced = laptop.call("sync", cursors={})["conversations"]
        assert [c["with"] for c in synced if c["kind"] == "direct"] == [chat["with"]]
        page = bob.call("dm.history", with_id=ann_id)
        assert page["with"] == {"id": ann_id, "username": DELETED}
        assert _shown(page["messages"]) == [(DELETED, "hello bob", False), ("bob", "hi ann", False)]
        assert (
            bob.call("dm.history", with_id=ann_id, before=page["messages"][1]["seq"])["messages"]
            == page["messages"][:1]
        )
        # the name finds no one now
        assert bob.error_of("dm.history", **{"with": DELETED})["code"] == "not_found"

        mark = bob.call("read.mark", with_id=ann_id, seq=first["seq"])
        assert mark["with"]["id"] == ann_id and mark["seq"] == first["seq"]
        assert laptop.event("read", room_id=chat["id"])["seq"] == first["seq"]

        for who, probe in ((cat, ann_id), (bob, bob.user["id"]), (bob, 2**40)):
            for op, extra in (("dm.history", {}), ("read.mark", {"seq": 1})):
                error = who.error_of(op, with_id=probe, **extra)
                assert error["code"] == "not_found", (op, probe, error)
                assert "ann" not in error["message"] and DELETED not in error["message"]
        both = {"with": "bob", "with_id": ann_id}
        assert cat.error_of("dm.history", **both)["code"] == "bad_request"
        assert bob.error_of("read.mark", seq=1, **both)["code"] == "bad_request"
        for bad in (0, -1, "1", 1.5, None):
            assert bob.error_of("dm.history", with_id=bad)["code"] == "bad_request", bad
