"""message.edit, message.delete and reply_to in-process (social's handlers on a temp
SQLite file): events in the conversation's seq, history as it is now, tombstones with no
text stored, the authorisation rules, and sync's size after 10,000 edits and deletes."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy import select

from chatroom.bus_contract import room_topic, user_topic
from chatroom.errors import ServiceError
from chatroom.framing import dumps
from chatroom.storage.schema import messages
from services.social.handlers import SocialHandlers
from services.social.store import SocialStore

from inproc import add_users, call, events_to, sqlite_engine, sqlite_settings


@pytest.fixture
def w(tmp_path):
    settings = sqlite_settings(tmp_path, max_reply_bytes="65536")
    engine = sqlite_engine(settings)
    alice, bob, carol = add_users(engine, "alice", "bob", "carol")
    store = SocialStore(engine)
    store.ensure_lobby()
    handlers = SocialHandlers(store, settings)
    yield SimpleNamespace(
        ops=handlers.ops(), alice=alice, bob=bob, carol=carol, engine=engine, settings=settings
    )
    engine.dispose()


def op(w, name, ctx, **args):
    return call(w.ops[name], ctx, args)


def refused(w, name, ctx, **args) -> str:
    with pytest.raises(ServiceError) as error:
        call(w.ops[name], ctx, args)
    return error.value.code


def befriend(w, a, b):
    op(w, "friend.request", a, username=b.username)
    op(w, "friend.accept", b, username=a.username)


def test_edit_and_delete_are_sequenced_events_and_history_shows_the_latest(w):
    first = op(w, "room.send", w.alice, room="lobby", text="helo")["message"]
    second = op(w, "room.send", w.bob, room="lobby", text="hi")["message"]
    edit = op(w, "message.edit", w.alice, message=first["id"], text="hello")["change"]
    assert edit["kind"] == "edit" and edit["target"] == first["id"]
    assert edit["seq"] == second["seq"] + 1 and edit["text"] == "hello"
    pushed = events_to(w.alice, room_topic(first["room_id"]))
    assert pushed[0]["event"] == "message.edited" and pushed[0]["text"] == "hello"
    gone = op(w, "message.delete", w.bob, message=second["id"])["change"]
    assert gone["seq"] == edit["seq"] + 1 and gone["deleted"] is True
    assert events_to(w.bob, room_topic(first["room_id"]))[0]["event"] == "message.deleted"

    history = op(w, "room.history", w.carol, room="lobby")["messages"]
    assert [(m["text"], "edited_at" in m, m.get("deleted")) for m in history] == [
        ("hello", True, None),
        ("", False, True),
    ]
    # sync from before the edit replays both events; the newest per message has its state
    synced = op(w, "sync", w.carol, cursors={str(first["room_id"]): first["seq"]})
    (lobby,) = synced["conversations"]
    assert [m["id"] for m in lobby["messages"]] == [second["id"]]
    assert [(e["kind"], e["target"]) for e in lobby["events"]] == [
        ("edit", first["id"]),
        ("delete", second["id"]),
    ]
    assert lobby["events"][0]["text"] == "hello" and lobby["events"][1]["deleted"] is True
    # edits and deletes are not unread messages
    assert {r["id"]: r["unread"] for r in synced["read"]}[first["room_id"]] <= 2


def test_a_tombstone_keeps_no_text(w):
    sent = op(w, "room.send", w.alice, room="lobby", text="secret words")["message"]
    op(w, "message.edit", w.alice, message=sent["id"], text="more secret words")
    op(w, "message.delete", w.alice, message=sent["id"])
    with w.engine.connect() as conn:
        texts = [r.text for r in conn.execute(select(messages.c.text))]
    assert all("secret" not in t for t in texts), texts
    synced = op(w, "sync", w.bob, cursors={})
    assert "secret" not in dumps(synced).decode()
    assert refused(w, "message.edit", w.alice, message=sent["id"], text="back") == "not_found"
    assert refused(w, "message.delete", w.alice, message=sent["id"]) == "not_found"


def test_who_may_edit_and_delete(w):
    sent = op(w, "room.send", w.alice, room="lobby", text="mine")["message"]
    assert refused(w, "message.edit", w.bob, message=sent["id"], text="yours") == "forbidden"
    assert refused(w, "message.delete", w.bob, message=sent["id"]) == "forbidden"
    assert refused(w, "message.edit", w.bob, message=10**9, text="x") == "not_found"
    assert refused(w, "message.edit", w.alice, message=sent["id"], text="  ") == "bad_request"
    # a group room: a non-member does not find the message at all
    op(w, "room.create", w.alice, room="den")
    den = op(w, "room.send", w.alice, room="den", text="in the den")["message"]
    assert refused(w, "message.delete", w.carol, message=den["id"]) == "not_found"
    # the author who left cannot change it either
    op(w, "room.join", w.bob, room="den")
    mine = op(w, "room.send", w.bob, room="den", text="bob was here")["message"]
    op(w, "room.leave", w.bob, room="den")
    assert refused(w, "message.delete", w.bob, message=mine["id"]) == "not_found"
    # the events themselves are not messages
    change = op(w, "message.edit", w.alice, message=den["id"], text="in the den!")["change"]
    assert refused(w, "message.delete", w.alice, message=change["id"]) == "not_found"


def test_edit_window(tmp_path):
    settings = sqlite_settings(tmp_path, edit_window_s="0")
    engine = sqlite_engine(settings)
    (alice,) = add_users(engine, "alice")
    store = SocialStore(engine)
    store.ensure_lobby()
    ops = SocialHandlers(store, settings).ops()
    sent = call(ops["room.send"], alice, {"room": "lobby", "text": "x"})["message"]
    import time

    time.sleep(0.01)
    with pytest.raises(ServiceError) as error:
        call(ops["message.edit"], alice, {"message": sent["id"], "text": "y"})
    assert error.value.code == "forbidden"
    # deleting has no window
    assert call(ops["message.delete"], alice, {"message": sent["id"]})["change"]["deleted"]
    engine.dispose()


def test_direct_messages_edit_delete_and_ex_friends(w):
    befriend(w, w.alice, w.bob)
    sent = op(w, "dm.send", w.alice, to="bob", text="hi bob")["message"]
    edit = op(w, "message.edit", w.alice, message=sent["id"], text="hi Bob")["change"]
    assert edit["to"]["username"] == "bob"
    for ctx, topic in ((w.alice, user_topic(2)), (w.alice, user_topic(1))):
        assert events_to(ctx, topic)[0]["direct"] is True
    assert refused(w, "message.edit", w.carol, message=sent["id"], text="x") == "not_found"
    assert refused(w, "message.delete", w.carol, message=sent["id"]) == "not_found"
    op(w, "friend.remove", w.alice, username="bob")
    # an ex-friend adds nothing (no edit) but may take their words back
    assert refused(w, "message.edit", w.alice, message=sent["id"], text="x") == "forbidden"
    assert op(w, "message.delete", w.alice, message=sent["id"])["change"]["deleted"]


def test_reply_to_quotes_the_original_in_the_same_conversation_only(w):
    original = op(w, "room.send", w.alice, room="lobby", text="question?")["message"]
    reply = op(w, "room.send", w.bob, room="lobby", text="answer", reply_to=original["id"])
    quoted = reply["message"]["reply_to"]
    assert quoted["id"] == original["id"] and quoted["text"] == "question?"
    assert quoted["from"]["username"] == "alice"
    history = op(w, "room.history", w.carol, room="lobby")["messages"]
    assert history[-1]["reply_to"] == quoted
    befriend(w, w.alice, w.bob)
    dm = op(w, "dm.send", w.alice, to="bob", text="psst")["message"]
    # a message of another conversation is answered as one that does not exist
    code = refused(w, "room.send", w.bob, room="lobby", text="x", reply_to=dm["id"])
    assert code == "not_found"
    assert refused(w, "dm.send", w.bob, to="alice", text="x", reply_to=original["id"]) == (
        "not_found"
    )
    # the original deleted: the quote says so, with no text
    op(w, "message.delete", w.alice, message=original["id"])
    history = op(w, "room.history", w.carol, room="lobby")["messages"]
    assert history[-1]["reply_to"]["deleted"] is True
    assert history[-1]["reply_to"]["text"] == ""
    assert refused(w, "room.send", w.bob, room="lobby", text="x", reply_to=original["id"]) == (
        "not_found"
    )


def test_sync_after_ten_thousand_edits_and_deletes_stays_bounded(w):
    """10,000 edits of one long message and deletes of others: every sync reply within
    max_reply_bytes (64 KiB here), and all of them together a few fixed bytes per
    event, not the text again per edit (4,000 characters x 10,000 would be 40 MB)."""
    budget = w.settings.max_reply_bytes
    long = op(w, "room.send", w.alice, room="lobby", text="a" * 4000)["message"]
    doomed = [
        op(w, "room.send", w.alice, room="lobby", text=f"m{i}")["message"] for i in range(500)
    ]
    for i in range(9500):
        op(w, "message.edit", w.alice, message=long["id"], text=("b" if i % 2 else "c") * 4000)
    for message in doomed:
        op(w, "message.delete", w.alice, message=message["id"])
    cursors: dict[str, int] = {}
    total, replies, events = 0, 0, 0
    while True:
        reply = op(w, "sync", w.bob, cursors=cursors, limit=10_000)
        size = len(dumps(reply))
        assert size <= budget + 4096, size
        total += size
        replies += 1
        for conv in reply["conversations"]:
            rows = conv["messages"] + conv["events"]
            events += len(conv["events"])
            cursors[str(conv["id"])] = max(r["seq"] for r in rows)
        if not reply["has_more"]:
            break
    assert events == 10_000
    print(f"sync after 10,000 edits/deletes: {replies} replies, {total} bytes in all")
    assert total < 10_000 * 250 + replies * 8100, (total, replies)
