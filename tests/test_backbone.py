"""The backbone end to end: real processes, real sockets, SQLite and MariaDB."""

from __future__ import annotations

import pytest

from wire import WireClient

TRICKY_TEXT = (
    "你好, 世界 😀👍🏽 \"quoted\" 'single' \\back\\slash '; DROP TABLE messages; -- \n\ttab"
)


def test_two_clients_talk_in_lobby_across_two_edges(make_stack, db_url):
    stack = make_stack(db_url, edges=2)
    with (
        WireClient(stack.edge_ports[0]) as alice,
        WireClient(stack.edge_ports[0]) as bob,
        WireClient(stack.edge_ports[1]) as carol,
    ):
        login = alice.register_and_login("alice")
        assert login["limits"]["max_text_chars"] > 0
        assert [r["name"] for r in login["rooms"]] == ["lobby"]
        bob.register_and_login("bob")
        carol.register_and_login("carol")

        sent = alice.call("room.send", room="lobby", text="hello from alice")["message"]
        assert sent["seq"] >= 1 and sent["id"] and sent["ts"]
        for reader in (bob, carol):
            pushed = reader.event("message", timeout=5)
            assert pushed["text"] == "hello from alice"
            assert pushed["from"]["username"] == "alice"
            assert pushed["id"] == sent["id"] and pushed["room"] == "lobby"
        alice.no_event("message")  # the sender's own connection has the reply instead

        bob.call("room.send", room="lobby", text="hi alice")
        assert alice.event("message")["text"] == "hi alice"
        assert carol.event("message")["text"] == "hi alice"


def test_account_errors(stack):
    with WireClient(stack.port) as c:
        c.call("register", username="Dora", password="password-1")
        assert c.error_of("register", username="dora", password="password-2")["code"] == (
            "username_taken"
        )
        wrong = c.error_of("login", username="Dora", password="not-it-at-all")
        unknown = c.error_of("login", username="nobody-here", password="not-it-at-all")
        assert wrong["code"] == unknown["code"] == "bad_credentials"
        assert wrong["message"] == unknown["message"]
        assert c.error_of("register", username="x y", password="password-1")["code"] == (
            "invalid_username"
        )
        assert c.error_of("register", username="eve", password="short")["code"] == (
            "invalid_password"
        )
        # Case-insensitive login with the name as registered in another case.
        assert c.call("login", username="DORA", password="password-1")["user"]["username"] == "Dora"
        assert c.error_of("login", username="Dora", password="password-1")["code"] == (
            "already_authenticated"
        )


def test_requests_are_validated(stack):
    with WireClient(stack.port) as c:
        assert c.error_of("room.send", room="lobby", text="hi")["code"] == "not_authenticated"
        assert c.error_of("room.history", room="lobby")["code"] == "not_authenticated"
        err = c.error_of("launch.rockets")
        assert err["code"] == "unknown_op"
        err = c.error_of("register", username="frank")
        assert (err["code"], err["field"]) == ("bad_request", "password")
        err = c.error_of("register", username=42, password="password-1")
        assert (err["code"], err["field"]) == ("bad_request", "username")
        assert "string" in err["message"]
        c.register_and_login("frank")
        err = c.error_of("room.send", room="lobby", text=["not", "text"])
        assert (err["code"], err["field"]) == ("bad_request", "text")
        err = c.error_of("room.history", room="lobby", limit=True)
        assert (err["code"], err["field"]) == ("bad_request", "limit")
        err = c.error_of("room.send", room="lobby", text="   ")
        assert (err["code"], err["field"]) == ("bad_request", "text")
        limit = c.user and 4000
        err = c.error_of("room.send", room="lobby", text="x" * (limit + 1))
        assert (err["code"], err["field"]) == ("bad_request", "text")
        assert c.error_of("room.send", room="no-such-room", text="hi")["code"] == "not_found"
        # A request without an id cannot be matched: the reply says so with id null.
        c.send({"op": "ping"})
        reply = c.read_frame()
        assert reply["id"] is None and reply["error"]["field"] == "id"
        assert c.call("ping")["ok"]


def test_token_resume_and_logout(stack):
    with WireClient(stack.port) as first:
        first.register_and_login("gina")
        token = first.token
    with WireClient(stack.port) as second:
        resumed = second.call("login", token=token)
        assert resumed["user"]["username"] == "gina"
        second.call("room.send", room="lobby", text="resumed")
        second.call("logout")
        assert second.error_of("room.send", room="lobby", text="x")["code"] == "not_authenticated"
    with WireClient(stack.port) as third:
        assert third.error_of("login", token=token)["code"] == "bad_credentials"
        assert third.error_of("login", token="made-up-token")["code"] == "bad_credentials"


def test_resumes_arriving_together_are_answered_each_on_its_own(stack):
    # Resumes (and the session openings after them) are checked in batches: a bad or
    # ended token among good ones is refused alone, and every good one gets its own
    # user's snapshot, including two sessions of one user in the same batch.
    from chatroom.framing import encode_frame

    tokens = {}
    for name in ("hana", "ivan", "jude"):
        with WireClient(stack.port) as c:
            c.register_and_login(name)
            tokens[name] = c.token
    with WireClient(stack.port) as ended:
        ended.register_and_login("kent")
        ended.call("logout")
        tokens["kent"] = ended.token
    attempts = [*tokens.items(), ("hana", tokens["hana"]), ("nobody", "made-up-token")]
    clients = [WireClient(stack.port) for _ in attempts]
    try:
        for client, (_name, token) in zip(clients, attempts, strict=True):
            client.send_raw(encode_frame({"op": "login", "id": 1, "token": token}))
        replies = [c.next_matching(lambda f: f.get("id") == 1) for c in clients]
    finally:
        for client in clients:
            client.close()
    for (name, _token), reply in zip(attempts, replies, strict=True):
        if name in ("kent", "nobody"):
            assert reply["error"]["code"] == "bad_credentials", reply
        else:
            assert reply["ok"] and reply["user"]["username"] == name, reply
            assert [r["name"] for r in reply["rooms"]] == ["lobby"]


def test_text_is_stored_and_delivered_byte_identical(stack):
    with WireClient(stack.port) as alice, WireClient(stack.port) as bob:
        alice.register_and_login("小明")
        bob.register_and_login("bob")
        sent = alice.call("room.send", room="lobby", text=TRICKY_TEXT)["message"]
        assert sent["text"] == TRICKY_TEXT
        pushed = bob.event("message")
        assert pushed["text"] == TRICKY_TEXT and pushed["from"]["username"] == "小明"
        history = bob.call("room.history", room="lobby")["messages"]
        assert history[-1]["text"] == TRICKY_TEXT
        assert history[-1]["text"].encode("utf-8") == TRICKY_TEXT.encode("utf-8")


def test_history_pages_backwards(stack):
    with WireClient(stack.port) as c:
        c.register_and_login("henry")
        for i in range(25):
            c.call("room.send", room="lobby", text=f"m{i}")
        page = c.call("room.history", room="lobby", limit=10)
        assert [m["text"] for m in page["messages"]] == [f"m{i}" for i in range(15, 25)]
        assert page["has_more"] is True
        seqs = []
        before = None
        while True:
            args = {"limit": 10} if before is None else {"limit": 10, "before": before}
            page = c.call("room.history", room="lobby", **args)
            seqs = [m["seq"] for m in page["messages"]] + seqs
            if not page["has_more"]:
                break
            before = page["messages"][0]["seq"]
        assert seqs == list(range(1, 26))


def test_client_id_makes_send_idempotent(stack):
    with WireClient(stack.port) as c:
        c.register_and_login("iris")
        first = c.call("room.send", room="lobby", text="once", client_id="c-1")["message"]
        again = c.call("room.send", room="lobby", text="once", client_id="c-1")["message"]
        assert first["id"] == again["id"] and first["seq"] == again["seq"]
        history = c.call("room.history", room="lobby")["messages"]
        assert [m["text"] for m in history].count("once") == 1


def test_retries_racing_into_one_group_commit_store_the_message_once(stack):
    # Five copies of one send (same client_id) in one write: the edge forwards them at
    # once, so they can meet in one batch of the message writer. One is stored; every
    # reply names it; the rest of the batch (another sender's message) is unharmed.
    from chatroom.framing import encode_frame

    with WireClient(stack.port) as c, WireClient(stack.port) as other:
        c.register_and_login("ivy")
        other.register_and_login("jay")
        copies = [
            {"op": "room.send", "id": 100 + n, "room": "lobby", "text": "one", "client_id": "r-1"}
            for n in range(5)
        ]
        c.send_raw(b"".join(encode_frame(frame) for frame in copies))
        other.call("room.send", room="lobby", text="bystander")
        replies = [c.next_matching(lambda f, n=n: f.get("id") == 100 + n) for n in range(5)]
        assert all(r["ok"] for r in replies), replies
        assert len({r["message"]["id"] for r in replies}) == 1
        history = c.call("room.history", room="lobby")["messages"]
        texts = [m["text"] for m in history]
        assert texts.count("one") == 1 and texts.count("bystander") == 1
        # The refused copies had their seqs given back in the same transaction: no gap
        # for clients to stumble on, and the next message follows on.
        seqs = [m["seq"] for m in history]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
        after = c.call("room.send", room="lobby", text="after", client_id="r-2")["message"]
        assert after["seq"] == seqs[-1] + 1


@pytest.mark.parametrize("password", ["hunter2-secret-Pa55", "口令-密码-🔑-secret"])
def test_passwords_never_stored_or_logged(make_stack, sqlite_url, password):
    stack = make_stack(sqlite_url)
    with WireClient(stack.port) as c:
        c.register_and_login("julia", password)
        token = c.token
        c.call("room.send", room="lobby", text="hello")
        c.call("logout")
        c.call("login", username="julia", password=password)
    stack.stop()
    db_file = sqlite_url.removeprefix("sqlite:///")
    raw = b""
    for suffix in ("", "-wal"):
        try:
            with open(db_file + suffix, "rb") as fh:
                raw += fh.read()
        except FileNotFoundError:
            pass
    logs = stack.logs()
    for secret in (password, token):
        assert secret.encode() not in raw
        assert secret not in logs
    assert b"$argon2id$" in raw
