"""Account self-service through real processes: change the password, list and end
sessions, export one's own data in pages, delete the account (docs/protocol.md,
"Account"). Two sessions of one user are two logins (two devices)."""

from __future__ import annotations

import json

from chatroom import account_steps

from wire import WireClient, befriend

PW = "correct horse"
NEW = "battery staple"
DELETED = "deleted user"


def _closing(client: WireClient) -> list[str]:
    return [f["code"] for f in client.wait_closed(timeout=10) if f.get("event") == "closing"]


def _export(client: WireClient, **first) -> tuple[dict, int]:
    """Every part of the user's export, assembled as the client does; and the replies."""
    request: dict | None = dict(first)
    account, sent, avatar, replies = {}, [], None, 0
    while request is not None:
        reply = client.call("account.export", **request)
        replies += 1
        if reply["part"] == "account":
            account = reply
        elif reply["part"] == "messages":
            sent += reply["messages"]
        else:
            avatar = reply["avatar"]
        request = reply["next"]
    return account_steps.assembled(account, sent, avatar), replies


def test_password_change_ends_the_other_sessions(stack):
    with WireClient(stack.port) as laptop, WireClient(stack.port) as phone:
        laptop.register_and_login("ann")
        phone.login("ann", PW)
        sessions = laptop.call("account.sessions")["sessions"]
        assert len(sessions) == 2 and sum(s["current"] for s in sessions) == 1
        assert all(s["ip"] == "127.0.0.1" and s["last_used_at"] > 0 for s in sessions)
        mine = next(s["id"] for s in sessions if s["current"])

        wrong = laptop.error_of("account.password", old_password="nope nope", new_password=NEW)
        assert wrong["code"] == "bad_credentials"
        short = laptop.error_of("account.password", old_password=PW, new_password="short")
        assert short["code"] == "invalid_password"
        assert (
            laptop.call("account.password", old_password=PW, new_password=NEW)["sessions_ended"]
            == 1
        )
        assert _closing(phone) == ["logged_out"]
        # this device stays signed in; the other's token is dead; only the new password
        assert [s["id"] for s in laptop.call("account.sessions")["sessions"]] == [mine]
    with WireClient(stack.port) as again:
        assert again.error_of("login", token=phone.token)["code"] == "bad_credentials"
        assert again.error_of("login", username="ann", password=PW)["code"] == "bad_credentials"
        again.login("ann", NEW)


def test_logout_others_and_another_users_session(stack):
    with (
        WireClient(stack.port) as laptop,
        WireClient(stack.port) as phone,
        WireClient(stack.port) as tablet,
        WireClient(stack.port) as eve,
    ):
        laptop.register_and_login("ann")
        phone.login("ann", PW)
        tablet.login("ann", PW)
        eve.register_and_login("eve")
        ann_sessions = laptop.call("account.sessions")["sessions"]
        phone_id = next(s["id"] for s in ann_sessions if s["id"] == phone_sid(phone))
        # eve cannot end ann's session: the answer for one that does not exist
        assert eve.error_of("account.logout_others", session=phone_id)["code"] == "not_found"
        assert eve.error_of("account.logout_others", session=10**9)["code"] == "not_found"
        current = next(s["id"] for s in ann_sessions if s["current"])
        assert laptop.error_of("account.logout_others", session=current)["code"] == "bad_request"
        assert laptop.error_of("account.logout_others", session="x")["code"] == "bad_request"
        assert len(laptop.call("account.sessions")["sessions"]) == 3  # nothing changed
        phone.call("ping")

        # one device, then all the others
        assert laptop.call("account.logout_others", session=phone_id)["sessions_ended"] == 1
        assert _closing(phone) == ["logged_out"]
        assert laptop.call("account.logout_others")["sessions_ended"] == 1
        assert _closing(tablet) == ["logged_out"]
        assert [s["current"] for s in laptop.call("account.sessions")["sessions"]] == [True]
        assert laptop.call("account.logout_others")["sessions_ended"] == 0
        laptop.call("room.send", room="lobby", text="still here")
        eve.call("ping")


def phone_sid(client: WireClient) -> int:
    return next(s["id"] for s in client.call("account.sessions")["sessions"] if s["current"])


def test_a_stolen_session_cannot_guess_the_password(make_stack, sqlite_url):
    stack = make_stack(sqlite_url, rate_login_failed_account_ip="3/15m", rate_account="off")
    with WireClient(stack.port) as thief:
        thief.register_and_login("ann")
        for guess in ("guess one", "guess two", "guess three"):
            err = thief.error_of("account.delete", password=guess)
            assert err["code"] == "bad_credentials"
        # the throttle is the login's: the right password is refused now too, and a
        # login from this address as well
        err = thief.error_of("account.password", old_password=PW, new_password=NEW)
        assert err["code"] == "rate_limited" and err["retry_after_ms"] > 60_000
        assert thief.error_of("account.delete", password=PW)["code"] == "rate_limited"
        thief.call("ping")
    with WireClient(stack.port) as again:
        assert again.error_of("login", username="ann", password=PW)["code"] == "rate_limited"


def test_export_in_pages(make_stack, db_url):
    stack = make_stack(db_url, max_reply_bytes=16 * 1024, rate_message="off")
    with WireClient(stack.port) as ann, WireClient(stack.port) as bob:
        ann.register_and_login("ann")
        bob.register_and_login("bob")
        befriend(ann, bob)
        ann.call("dm.send", to="bob", text="hi bob")
        text = "é" * 2000
        for i in range(60):
            ann.call("room.send", room="lobby", text=f"{i} {text}")
        exported, replies = _export(ann)
        assert replies >= 1 + 8 + 1  # 60 messages of ~4 KB in 16 KB pages
        assert exported["account"]["username"] == "ann"
        assert [f["username"] for f in exported["friends"]] == ["bob"]
        sent = exported["messages_sent"]
        assert sent[0]["text"] == "hi bob" and len(sent) == 61
        assert [int(m["text"].split()[0]) for m in sent[1:]] == list(range(60))
        assert exported["avatar"] is None and exported["sessions"]
        assert "password" not in json.dumps(exported)
        # bad parts; pages of one's own only
        assert ann.error_of("account.export", part="secrets")["code"] == "bad_request"
        assert ann.error_of("account.export", after=-1)["code"] == "bad_request"
        theirs = bob.call("account.export", part="messages", after=0)
        assert [m["text"] for m in theirs["messages"]] == []


def test_delete_account(stack):
    with (
        WireClient(stack.port) as ann,
        WireClient(stack.port) as phone,
        WireClient(stack.port) as bob,
    ):
        ann.register_and_login("ann")
        phone.login("ann", PW)
        bob.register_and_login("bob")
        befriend(ann, bob)
        ann.call("dm.send", to="bob", text="bye bob")
        ann.call("room.send", room="lobby", text="bye all")

        # a wrong password changes nothing
        assert ann.error_of("account.delete", password="not it at all")["code"] == (
            "bad_credentials"
        )
        assert ann.error_of("account.delete")["code"] == "bad_request"
        assert [f["username"] for f in bob.call("friend.list")["friends"]] == ["ann"]
        phone.call("ping")

        assert ann.call("account.delete", password=PW)["ok"]
        assert _closing(phone) == ["account_deleted"]
        bob.event("friend.removed", user={"id": ann.user["id"], "username": "ann"})
        # the deleting connection stays open, logged out
        assert ann.error_of("room.send", room="lobby", text="x")["code"] == "not_authenticated"
        lobby = bob.call("room.history", room="lobby")["messages"]
        assert [(m["from"]["username"], m["text"]) for m in lobby] == [(DELETED, "bye all")]
        synced = bob.call("sync", cursors={})["conversations"]
        direct = [c for c in synced if c["kind"] == "direct"]
        assert [(c["with"]["username"], [m["text"] for m in c["messages"]]) for c in direct] == [
            (DELETED, ["bye bob"])
        ]
    with WireClient(stack.port) as again:
        assert again.error_of("login", username="ann", password=PW)["code"] == "bad_credentials"
        assert again.error_of("login", token=ann.token)["code"] == "bad_credentials"
