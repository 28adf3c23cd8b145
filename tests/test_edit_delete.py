"""message.edit, message.delete and reply_to through the real processes (edge, bus,
social), on SQLite and MariaDB: two sessions of one user (a change on one is pushed to
the other and to the room, and sync replays it), history after changes, tombstones
without text, the rate limit, and replies only within their conversation."""

from __future__ import annotations

import pytest

from wire import WireClient, befriend, users


def test_edit_on_one_session_reaches_the_other_live_and_by_sync(stack):
    with users(stack, "ann", "bob") as (ann, bob), WireClient(stack.port) as ann2:
        ann2.login("ann", "correct horse")
        sent = ann.call("room.send", room="lobby", text="helo wrld")["message"]
        cursor = {str(sent["room_id"]): sent["seq"]}
        bob.event("message", id=sent["id"])
        ann2.event("message", id=sent["id"])
        change = ann.call("message.edit", message=sent["id"], text="hello world")["change"]
        assert change["seq"] == sent["seq"] + 1
        for client in (bob, ann2):  # the author's other session and the room, live
            pushed = client.event("message.edited", target=sent["id"])
            assert pushed["text"] == "hello world" and pushed["seq"] == change["seq"]
        ann.no_event("message.edited", within=0.3)  # not back to the connection that made it
        gone = ann2.call("message.delete", message=sent["id"])["change"]
        deleted = ann.event("message.deleted", target=sent["id"])
        assert deleted["seq"] == gone["seq"] == change["seq"] + 1
        bob.event("message.deleted", target=sent["id"])
        # a session that was away: sync from before the edit replays both events
        synced = bob.call("sync", cursors=cursor)
        (lobby,) = [c for c in synced["conversations"] if c["id"] == sent["room_id"]]
        assert [(e["kind"], e["target"]) for e in lobby["events"]] == [
            ("edit", sent["id"]),
            ("delete", sent["id"]),
        ]
        assert lobby["events"][-1]["deleted"] is True
        assert "text" not in lobby["events"][0]  # superseded: no text carried
        # history: a tombstone with no text, the events not listed
        history = bob.call("room.history", room="lobby")["messages"]
        assert [(m["id"], m["text"], m.get("deleted")) for m in history] == [(sent["id"], "", True)]
        full = bob.call("sync", cursors={})
        assert "helo" not in str(full) and "hello world" not in str(full)


def test_history_shows_the_latest_text_with_the_edited_mark(stack):
    with users(stack, "ann", "bob") as (ann, bob):
        befriend(ann, bob)
        sent = ann.call("dm.send", to="bob", text="see you at 5")["message"]
        bob.event("message", id=sent["id"])
        ann.call("message.edit", message=sent["id"], text="see you at 6")
        pushed = bob.event("message.edited", target=sent["id"])
        assert pushed["direct"] is True and pushed["to"]["username"] == "bob"
        (shown,) = bob.call("dm.history", **{"with": "ann"})["messages"]
        assert shown["text"] == "see you at 6" and shown["edited_at"] >= sent["ts"]


def test_attacks_on_other_peoples_messages(stack):
    with users(stack, "ann", "bob", "cat") as (ann, bob, cat):
        befriend(ann, bob)
        dm = ann.call("dm.send", to="bob", text="between us")["message"]
        ann.call("room.create", room="den")
        den = ann.call("room.send", room="den", text="den talk")["message"]
        lobby = ann.call("room.send", room="lobby", text="hi all")["message"]
        # a non-author editing, a non-member deleting, a stranger on a direct chat
        assert bob.error_of("message.edit", message=lobby["id"], text="x")["code"] == "forbidden"
        assert cat.error_of("message.delete", message=den["id"])["code"] == "not_found"
        assert cat.error_of("message.edit", message=dm["id"], text="x")["code"] == "not_found"
        # reply_to a message of another conversation, as if it did not exist
        error = cat.error_of("room.send", room="lobby", text="re", reply_to=dm["id"])
        assert error["code"] == "not_found"
        error = bob.error_of("dm.send", to="ann", text="re", reply_to=den["id"])
        assert error["code"] == "not_found"
        # editing a deleted message; its text is never readable again
        ann.call("message.delete", message=dm["id"])
        assert ann.error_of("message.edit", message=dm["id"], text="y")["code"] == "not_found"
        for client in (ann, bob):
            history = client.call("dm.history", **{"with": "ann" if client is bob else "bob"})
            assert "between us" not in str(history)
            assert "between us" not in str(client.call("sync", cursors={}))
        # bad input: typed errors
        assert ann.error_of("message.edit", message=0, text="x")["code"] == "bad_request"
        assert ann.error_of("message.edit", message=lobby["id"], text=" ")["code"] == (
            "bad_request"
        )
        assert ann.error_of("message.delete", message="1")["code"] == "bad_request"


def test_reply_quotes_the_original(stack):
    with users(stack, "ann", "bob") as (ann, bob):
        question = ann.call("room.send", room="lobby", text="lunch?")["message"]
        answer = bob.call("room.send", room="lobby", text="yes", reply_to=question["id"])
        quoted = answer["message"]["reply_to"]
        assert quoted == {
            "id": question["id"],
            "seq": question["seq"],
            "from": {"id": ann.user["id"], "username": "ann"},
            "text": "lunch?",
            "deleted": False,
        }
        pushed = ann.event("message", id=answer["message"]["id"])
        assert pushed["reply_to"] == quoted
        ann.call("message.edit", message=question["id"], text="lunch at noon?")
        history = bob.call("room.history", room="lobby")["messages"]
        assert history[-1]["reply_to"]["text"] == "lunch at noon?"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_edits_are_rate_limited(make_stack, db_url):
    stack = make_stack(db_url, rate_edit="3/m")
    with users(stack, "ann") as (ann,):
        sent = ann.call("room.send", room="lobby", text="draft")["message"]
        for n in range(3):
            ann.call("message.edit", message=sent["id"], text=f"draft {n}")
        error = ann.error_of("message.delete", message=sent["id"])
        assert error["code"] == "rate_limited" and error["retry_after_ms"] > 0
        assert ann.call("room.history", room="lobby")["messages"][-1]["text"] == "draft 2"
