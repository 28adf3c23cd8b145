"""The bad-input table of docs/security.md: each kind of hostile or broken input gets
its typed error (or is stored verbatim where it is just text), nothing is corrupted, and
nobody acts as anyone else. A test below checks that every row of the table names a
test that exists."""

from __future__ import annotations

import ast
import base64
import re
import struct
import time
from pathlib import Path

import pytest

from images import png
from wire import WireClient, befriend

ROOT = Path(__file__).resolve().parents[1]

# (case id, request fields after login, expected error code, expected `field` or None)
INVALID_REQUESTS = [
    ("id_float", {"op": "ping", "id": 1.5}, "bad_request", "id"),
    ("id_bool", {"op": "ping", "id": True}, "bad_request", "id"),
    ("id_too_long", {"op": "ping", "id": "x" * 65}, "bad_request", "id"),
    ("id_object", {"op": "ping", "id": {"$gt": 0}}, "bad_request", "id"),
    ("op_missing", {"id": 1}, "bad_request", "op"),
    ("op_not_string", {"op": 7, "id": 1}, "bad_request", "op"),
    ("op_unknown", {"op": "drop.tables", "id": 1}, "unknown_op", None),
    (
        "text_number",
        {"op": "room.send", "id": 1, "room": "lobby", "text": 12},
        "bad_request",
        "text",
    ),
    (
        "text_null",
        {"op": "room.send", "id": 1, "room": "lobby", "text": None},
        "bad_request",
        "text",
    ),
    (
        "text_empty",
        {"op": "room.send", "id": 1, "room": "lobby", "text": " \n\t"},
        "bad_request",
        "text",
    ),
    (
        "text_only_zero_width",
        {"op": "room.send", "id": 1, "room": "lobby", "text": "\u200b\u200c\u200d\u2060\ufeff"},
        "bad_request",
        "text",
    ),
    (
        "text_only_braille_blanks",  # assigned, visible category, but drawn as nothing
        {"op": "room.send", "id": 1, "room": "lobby", "text": "\u2800\u2800 \U0001d159"},
        "bad_request",
        "text",
    ),
    (
        "text_only_variation_selectors",
        {"op": "room.send", "id": 1, "room": "lobby", "text": "\ufe0f\ufe0e" * 3},
        "bad_request",
        "text",
    ),
    (
        "text_only_tag_characters",
        {"op": "room.send", "id": 1, "room": "lobby", "text": "\U000e0041\U000e0042\U000e007f"},
        "bad_request",
        "text",
    ),
    (
        "text_only_controls",
        {"op": "room.send", "id": 1, "room": "lobby", "text": "\x00\x07\x1b\x7f"},
        "bad_request",
        "text",
    ),
    (
        "text_only_bidi_and_fillers",
        {"op": "room.send", "id": 1, "room": "lobby", "text": "\u202e\u2066\u3164\u00ad"},
        "bad_request",
        "text",
    ),
    (
        "text_too_long",
        {"op": "room.send", "id": 1, "room": "lobby", "text": "x" * 4001},
        "bad_request",
        "text",
    ),
    # Sent as raw JSON (no encoder produces it): refused when the frame is decoded.
    (
        "text_lone_surrogate",
        b'{"op": "room.send", "id": 1, "room": "lobby", "text": "\\ud800"}',
        "bad_frame",
        None,
    ),
    (
        "room_list_type",
        {"op": "room.send", "id": 1, "room": ["lobby"], "text": "x"},
        "bad_request",
        "room",
    ),
    (
        "room_control_chars",
        {"op": "room.create", "id": 1, "room": "a\u0000b"},
        "bad_request",
        "room",
    ),
    (
        "room_reserved_prefix",
        {"op": "room.create", "id": 1, "room": "dm:1:2"},
        "bad_request",
        "room",
    ),
    (
        "limit_zero",
        {"op": "room.history", "id": 1, "room": "lobby", "limit": 0},
        "bad_request",
        "limit",
    ),
    (
        "limit_negative",
        {"op": "room.history", "id": 1, "room": "lobby", "limit": -5},
        "bad_request",
        "limit",
    ),
    (
        "limit_huge",
        {"op": "room.history", "id": 1, "room": "lobby", "limit": 2**62},
        "bad_request",
        "limit",
    ),
    (
        "before_string",
        {"op": "room.history", "id": 1, "room": "lobby", "before": "1"},
        "bad_request",
        "before",
    ),
    ("cursors_not_object", {"op": "sync", "id": 1, "cursors": [1, 2]}, "bad_request", "cursors"),
    (
        "cursors_too_many",
        {"op": "sync", "id": 1, "cursors": {str(i): 0 for i in range(10_001)}},
        "bad_request",
        "cursors",
    ),
    (
        "status_too_long",
        {"op": "presence.set", "id": 1, "status": "s" * 141},
        "bad_request",
        "status",
    ),
    (
        "avatar_not_base64",
        {"op": "avatar.set", "id": 1, "image": "not base64!"},
        "bad_request",
        "image",
    ),
    (
        "avatar_not_image",
        {"op": "avatar.set", "id": 1, "image": base64.b64encode(b"MZ\x90\x00" * 50).decode()},
        "invalid_image",
        None,
    ),
    (
        "avatar_size_odd",
        {"op": "avatar.get", "id": 1, "hash": "default", "size": 100},
        "bad_request",
        "size",
    ),
    (
        "login_twice",
        {"op": "login", "id": 1, "username": "sec", "password": "correct horse"},
        "already_authenticated",
        None,
    ),
]


@pytest.fixture
def logged_in(make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    with WireClient(stack.port, timeout=20) as c:
        c.register_and_login("sec")
        yield stack, c


@pytest.mark.parametrize(
    ("case", "request_fields", "code", "field"),
    INVALID_REQUESTS,
    ids=[c[0] for c in INVALID_REQUESTS],
)
def test_invalid_request_gets_a_typed_error(logged_in, case, request_fields, code, field):
    stack, c = logged_in
    if isinstance(request_fields, bytes):
        c.send_raw(struct.pack(">I", len(request_fields)) + request_fields)
    else:
        c.send(request_fields)
    reply = c.next_matching(lambda f: "ok" in f)
    assert reply["ok"] is False
    assert reply["error"]["code"] == code, reply
    assert reply["error"]["message"]
    if field is not None:
        assert reply["error"].get("field") == field, reply
    # Nothing was stored by a refused request, the connection survived the refusal and
    # no service failed on the way.
    assert c.call("room.history", room="lobby")["messages"] == []
    assert c.call("ping")["ok"]
    assert "Traceback" not in stack.logs()


def test_requests_before_login_are_refused(make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    with WireClient(stack.port) as c:
        for op in ("room.send", "dm.send", "friend.request", "avatar.get", "sync", "logout"):
            assert c.error_of(op, room="lobby", text="x", to="a", username="a", hash="default")[
                "code"
            ] == ("not_authenticated")


USERNAMES = [
    ("sql_quote", "' OR '1'='1", "invalid_username"),
    ("sql_comment", "admin'--", "invalid_username"),
    ("newline_log_forgery", "eve\n2026-11-25 INFO user 1 logged in", "invalid_username"),
    ("rtl_override", "abc\u202egnp.exe", "invalid_username"),
    ("zero_width", "ali\u200bce", "invalid_username"),
    ("only_spaces", "   ", "invalid_username"),
    ("too_long", "a" * 33, "invalid_username"),
    ("nul", "a\u0000b", "invalid_username"),
]


@pytest.mark.parametrize(("case", "name", "code"), USERNAMES, ids=[u[0] for u in USERNAMES])
def test_hostile_usernames_are_refused(make_stack, sqlite_url, case, name, code):
    stack = make_stack(sqlite_url)
    with WireClient(stack.port) as c:
        assert c.error_of("register", username=name, password="correct horse")["code"] == code
        # Logging in with it is just a wrong username: no SQL, no crash.
        assert c.error_of("login", username=name, password="correct horse")["code"] == (
            "bad_credentials"
        )
    assert "Traceback" not in stack.logs()


def test_lookalike_names_are_one_account(stack):
    with WireClient(stack.port) as c:
        c.call("register", username="José", password="correct horse")
        for twin in ("JOSÉ", "Jose\u0301", "jos\u00e9"):  # case, NFD, NFC
            assert c.error_of("register", username=twin, password="correct horse")["code"] == (
                "username_taken"
            )
        assert c.login("JOSE\u0301", "correct horse")["user"]["username"] == "José"


TEXTS = [
    ("sql_injection_text", "'); DROP TABLE messages; --"),
    ("sql_union_text", "1 UNION SELECT password_hash FROM users"),
    ("astral_emoji", "😀🇨🇳👩‍👩‍👧‍👦 𝔘𝔫𝔦𝔠𝔬𝔡𝔢"),
    ("zalgo_combining", "Z" + "\u0301\u0302\u0303\u0304" * 200),
    ("nul_and_controls", "a\u0000b\u0007c\u001bd"),
    ("bidi_controls", "\u202ereversed\u202c and \u2066isolated\u2069"),
    ("json_and_html", '{"op":"login"} <script>alert(1)</script> \\" \\u0000'),
    ("log_forgery_text", "hi\n2026-11-25 12:00:00 | INFO | user 1 logged in as admin"),
]


@pytest.mark.parametrize(("case", "text"), TEXTS, ids=[t[0] for t in TEXTS])
def test_hostile_text_is_stored_verbatim_and_never_logged(stack, case, text):
    with WireClient(stack.port) as a, WireClient(stack.port) as b:
        a.register_and_login("writer")
        b.register_and_login("reader")
        befriend(a, b)
        sent = a.call("room.send", room="lobby", text=text)
        assert b.event("message")["text"] == text
        a.call("dm.send", to="reader", text=text)
        history = b.call("room.history", room="lobby")["messages"]
        assert [m["text"] for m in history] == [text]
        assert history[0]["id"] == sent["message"]["id"]
        assert b.call("dm.history", **{"with": "writer"})["messages"][0]["text"] == text
        b.call("ping")
    # Message bodies are not logged (so they cannot forge log lines either).
    logs = stack.logs()
    assert text not in logs and "logged in as admin" not in logs


def test_acting_as_another_user_is_impossible(stack):
    """Identity comes from the connection's session, never from the request."""
    with (
        WireClient(stack.port) as alice,
        WireClient(stack.port) as bob,
        WireClient(stack.port) as mallory,
    ):
        alice.register_and_login("alice")
        bob.register_and_login("bob")
        mallory.register_and_login("mallory")
        befriend(alice, bob)
        victim = alice.user["id"]
        # Fields naming another user are ignored: the message is mallory's.
        sent = mallory.call(
            "room.send",
            room="lobby",
            text="I am alice",
            user_id=victim,
            sender_id=victim,
            **{"from": {"id": victim, "username": "alice"}},
        )
        assert sent["message"]["from"]["username"] == "mallory"
        assert alice.event("message")["from"]["username"] == "mallory"
        # Not a friend: no DMs, no reading their DMs.
        assert mallory.error_of("dm.send", to="alice", text="hi")["code"] == "forbidden"
        alice.call("dm.send", to="bob", text="secret")
        history = mallory.request("dm.history", **{"with": "alice"})
        assert not history["ok"] or history["messages"] == []
        # Accepting a request nobody sent, for someone else.
        assert mallory.error_of("friend.accept", username="alice")["code"] == "not_found"
        # A private room of others: not readable, not writable, no members list.
        alice.call("room.create", room="inner circle")
        for op, extra in (("room.history", {}), ("room.send", {"text": "x"}), ("room.members", {})):
            assert mallory.error_of(op, room="inner circle", **extra)["code"] == "forbidden"
        # Sync with cursors for conversations that are not mallory's returns none of them.
        rooms = {r["name"]: r["id"] for r in alice.call("room.list")["rooms"]}
        result = mallory.call("sync", cursors={str(rid): 0 for rid in range(1, 50)})
        seen = [m["text"] for conv in result["conversations"] for m in conv["messages"]]
        assert "secret" not in seen and rooms["inner circle"] not in [
            conv["id"] for conv in result["conversations"]
        ]
        # Avatars of strangers are not served, even with the exact hash.
        image = base64.b64encode(png(64, 64, (10, 200, 10))).decode()
        picture = alice.call("avatar.set", image=image)["hash"]
        assert bob.call("avatar.get", hash=picture)["hash"] == picture  # a friend may
        assert mallory.error_of("avatar.get", hash=picture)["code"] == "not_found"
        # Logging out with another session's id ends only one's own session.
        mallory.call("logout", session_id=1, user_id=victim)
        assert alice.call("ping")["ok"]
        with WireClient(stack.port) as again:
            assert again.call("login", token=alice.token)["user"]["username"] == "alice"
        with WireClient(stack.port) as again:
            assert again.error_of("login", token=mallory.token)["code"] == "bad_credentials"


def test_half_open_partial_header_is_closed_at_login_timeout(make_stack, sqlite_url):
    stack = make_stack(sqlite_url, login_timeout_s=1)
    with WireClient(stack.port) as c:
        c.send_raw(b"\x00\x00")  # half a length prefix, then silence
        frames = c.wait_closed(timeout=10)
        assert frames[-1]["code"] == "login_timeout"
    with WireClient(stack.port) as c:
        c.send_raw(b"\x00\x00\x00\x10{")  # a frame started and never finished
        started = time.monotonic()
        c.wait_closed(timeout=10)
        assert time.monotonic() - started < 5


# --------------------------------------------------------------------------- the table


def _test_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_security_table_rows_name_existing_tests():
    doc = (ROOT / "docs" / "security.md").read_text()
    rows = re.findall(
        r"^\| *(\d+) *\|.*`(tests/[\w/]+\.py)::(\w+)(?:\[([\w-]+)\])?` *\|$", doc, re.M
    )
    assert len(rows) >= 40, f"only {len(rows)} rows in the bad-input table"
    numbers = [int(r[0]) for r in rows]
    assert numbers == list(range(1, len(rows) + 1)), "rows must be numbered 1..n"
    for _n, path, name, param in rows:
        source = ROOT / path
        assert name in _test_names(source), f"{path}::{name} does not exist"
        if param:
            assert f'"{param}"' in source.read_text(), f"{path}::{name}[{param}]: no such case"


def test_sqlite_database_is_private_to_its_owner(tmp_path):
    import stat

    from sqlalchemy import text

    from chatroom.config_env import load
    from chatroom.storage.db import make_engine
    from chatroom.storage.migrate import upgrade

    folder = tmp_path / "data"
    engine = make_engine(load({"CHAT_DB_URL": f"sqlite:///{folder}/chat.db"}))
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("SELECT count(*) FROM users"))
    files = [folder / "chat.db", *folder.glob("chat.db-*")]
    assert len(files) >= 2, files  # the WAL files too
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    engine.dispose()
