"""Mentions and notification levels through real processes and sockets, on SQLite and
MariaDB: the mention flag delivered live to both devices of the mentioned, counts in
the login reply and sync agreeing on both and cleared by read.mark, a non-member
mentioned gets nothing, names by key; room.notify pushed to the user's other session,
kept for the next login, and its refusals. In-process: test_mention_handlers.py."""

from __future__ import annotations

from wire import WireClient, befriend, users


def _entry(reply: dict, room_id: int) -> dict:
    entries = reply["read"] if "read" in reply else reply["rooms"] + reply["direct"]
    (entry,) = [e for e in entries if e["id"] == room_id]
    return entry


def test_a_mention_reaches_both_devices_and_is_counted_until_read(stack):
    with users(stack, "ann", "bob", "cat") as (ann, bob, cat), WireClient(stack.port) as bob2:
        bob2.login("bob", "correct horse")
        den = ann.call("room.create", room="den")["room"]["id"]
        bob.call("room.join", room="den")
        bob2.event("room.joined")
        # bob by another case, cat (not in den), ann herself, nobody: only bob counts.
        sent = ann.call("room.send", room="den", text="@BOB @cat @ann @nobody look")["message"]
        assert sent["mentions"] == [bob.user["id"]]
        for device in (bob, bob2):
            pushed = device.event("message", room="den")
            assert pushed["mentions"] == [bob.user["id"]]
        cat.no_event("message", within=0.3)  # not a member: hears nothing at all
        ann.call("room.send", room="den", text="and something else")
        for device in (bob, bob2):
            device.event("message", room="den")
            entry = _entry(device.call("sync"), den)
            assert (entry["unread"], entry["mentions"], entry["notify"]) == (2, 1, "all")
        with WireClient(stack.port) as bob3:
            entry = _entry(bob3.login("bob", "correct horse"), den)
            assert (entry["unread"], entry["mentions"]) == (2, 1)
        # cat joins later: the mention was never hers.
        cat.call("room.join", room="den")
        assert _entry(cat.call("sync"), den)["mentions"] == 0

        marked = bob.call("read.mark", room="den", seq=sent["seq"])
        assert (marked["unread"], marked["mentions"]) == (1, 0)
        assert bob2.event("read", room_id=den)["mentions"] == 0
        bob.no_event("read")
        assert _entry(bob2.call("sync"), den)["mentions"] == 0

        # A deleted message mentions no one any more.
        again = ann.call("room.send", room="den", text="@bob once more")["message"]
        assert _entry(bob.call("sync"), den)["mentions"] == 1
        ann.call("message.delete", message=again["id"])
        assert _entry(bob.call("sync"), den)["mentions"] == 0


def test_room_notify_is_kept_and_pushed_to_the_other_session(stack):
    with users(stack, "dee", "eli") as (dee, eli), WireClient(stack.port) as dee2:
        dee2.login("dee", "correct horse")
        eli.call("room.create", room="quiet")
        befriend(dee, eli)
        dm = eli.call("dm.send", to="dee", text="hi")["message"]["room"]
        reply = dee.call("room.notify", room="Lobby", level="mentions")
        assert (reply["room"], reply["level"]) == ("lobby", "mentions")
        pushed = dee2.event("room.notify")
        assert (pushed["room_id"], pushed["level"]) == (reply["room_id"], "mentions")
        dee.no_event("room.notify")
        eli.no_event("room.notify", within=0.2)
        with WireClient(stack.port) as dee3:
            assert _entry(dee3.login("dee", "correct horse"), reply["room_id"])["notify"] == (
                "mentions"
            )
        assert _entry(dee2.call("sync"), reply["room_id"])["notify"] == "mentions"
        assert _entry(eli.call("sync"), reply["room_id"])["notify"] == "all"
        # Refusals, each typed; nothing changed by them.
        bad = dee.error_of("room.notify", room="lobby", level="loud")
        assert (bad["code"], bad["field"]) == ("bad_request", "level")
        assert dee.error_of("room.notify", room="quiet", level="none")["code"] == "forbidden"
        assert dee.error_of("room.notify", room=dm, level="none")["code"] == "not_found"
        assert dee.error_of("room.notify", room="nowhere", level="none")["code"] == "not_found"
        missing = dee.request("room.notify", room="lobby")
        assert missing["error"]["code"] == "bad_request"
        assert _entry(dee.call("sync"), reply["room_id"])["notify"] == "mentions"
