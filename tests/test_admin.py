"""`chatroom admin`, run as operators run it (a process talking to the live stack over
the bus): list users, who is online, kick, disable/enable, reset a password. Clients
cannot reach these ops."""

from __future__ import annotations

from wire import WireClient


def test_admin_commands(make_stack, db_url, admin, admin_json):
    stack = make_stack(db_url)
    with (
        WireClient(stack.port) as alice,
        WireClient(stack.port) as alice2,
        WireClient(stack.port) as bob,
    ):
        alice.register_and_login("Alice")
        alice2.login("alice", "correct horse")
        bob.register_and_login("bob")
        bob.call("friend.request", username="alice")
        alice.call("friend.accept", username="bob")

        users = admin_json(stack, "users", "--match", "ALI")["users"]
        assert [(u["username"], u["disabled"], u["tokens"]) for u in users] == [("Alice", False, 2)]
        online = {u["username"]: u for u in admin_json(stack, "online")["online"]}
        assert online["Alice"]["connections"] == 2 and online["bob"]["connections"] == 1
        table = admin(stack, "online").stdout
        assert "Alice" in table and "2 users online" in table

        # kick: both connections closed with a reason, tokens revoked, friends told.
        out = admin(stack, "kick", "alice")
        assert out.returncode == 0 and "2 sessions ended" in out.stdout, out
        for conn in (alice, alice2):
            frames = conn.wait_closed(timeout=10)
            assert any(f.get("event") == "closing" and f["code"] == "kicked" for f in frames)
        bob.event("presence", user={"id": alice.user["id"], "username": "Alice"}, online=False)
    with WireClient(stack.port) as again:
        assert again.error_of("login", token=alice.token)["code"] == "bad_credentials"
        again.login("alice", "correct horse")

        # disable: the live session is closed with account_disabled; no login until enable.
        assert admin(stack, "disable", "alice").returncode == 0
        frames = again.wait_closed(timeout=10)
        assert [f["code"] for f in frames if f.get("event") == "closing"] == ["account_disabled"]
    with WireClient(stack.port) as c:
        assert c.error_of("login", username="alice", password="correct horse")["code"] == (
            "account_disabled"
        )
        assert admin_json(stack, "users", "--match", "alice")["users"][0]["disabled"] is True
        assert admin(stack, "enable", "alice").returncode == 0
        c.login("alice", "correct horse")
        old_token = c.token

        # reset-password: new password works, the old one and old tokens do not.
        out = admin(stack, "reset-password", "alice", "--password-stdin", stdin="new secret 1\n")
        assert out.returncode == 0, out.stderr
        c.wait_closed(timeout=10)
    with WireClient(stack.port) as c:
        assert c.error_of("login", username="alice", password="correct horse")["code"] == (
            "bad_credentials"
        )
        assert c.error_of("login", token=old_token)["code"] == "bad_credentials"
        c.login("alice", "new secret 1")


def test_admin_errors_and_clients_cannot_call_admin_ops(make_stack, sqlite_url, admin):
    stack = make_stack(sqlite_url)
    out = admin(stack, "kick", "nobody")
    assert out.returncode == 1 and "not_found" in out.stderr
    out = admin(stack, "reset-password", "nobody", "--password-stdin", stdin="short\n")
    assert out.returncode == 1 and "invalid_password" in out.stderr
    with WireClient(stack.port) as c:
        c.register_and_login("mallory")
        for op in ("admin.kick", "admin.users", "admin.online", "admin.reset_password"):
            err = c.error_of(op, username="mallory", password="owned owned")
            assert err["code"] == "unknown_op"
        c.call("ping")
