"""Usernames a reader cannot tell apart (hardening issue): fullwidth and mathematical
letters fold to the ASCII key and collide as taken; default-ignorable, unassigned and
mixed-script lookalike names are refused with invalid_username; folded keys that would
not fit their column are refused, never `internal`; names of one script (or a common
mix such as Han + kana) still register. On SQLite and MariaDB."""

from __future__ import annotations

import pytest

from wire import WireClient

PASSWORD = "correct horse"

STILL_VALID = [
    "小明",
    "Ελένη",
    "Иван",
    "José",
    "Zoë",
    "Ångström",
    "山田たろう",  # Han + Hiragana: Japanese
    "김철수",
    "mike_2-b.c",
    "12345",
    "Müller2000",
    "ßßßßßßßßßßßßßßßßßßßßßßßßßßßßßßßß",  # 32 characters, key 'ss' * 32 = 64
]

LOOKALIKES = [
    ("l\u043ebby", "cannot mix"),  # Cyrillic о among Latin letters
    ("p\u0430ypal", "cannot mix"),  # Cyrillic а
    ("\u0391lice", "cannot mix"),  # Greek Alpha
    ("ali\u200bce", "invisible"),  # zero-width space
    ("ali\u00adce", "invisible"),  # soft hyphen
    ("al\u034fice", "invisible"),  # combining grapheme joiner (a mark)
    ("alice\ufe0f", "invisible"),  # variation selector (a mark)
    ("\u3164alice", "invisible"),  # Hangul filler (a letter)
    ("ali\u2800ce", "invisible"),  # Braille blank (a symbol drawn as nothing)
    ("alice\U000e0041", "invisible"),  # tag character
    ("alice\u0378", "unassigned"),
    ("alice\U0003ffff", "unassigned"),
]


def test_valid_names_still_register(make_stack, db_url):
    stack = make_stack(db_url)
    with WireClient(stack.port) as c:
        for name in STILL_VALID:
            reply = c.call("register", username=name, password=PASSWORD)
            assert reply["user"]["username"] == name
        assert c.login("ZOË", PASSWORD)["user"]["username"] == "Zoë"


def test_lookalike_letters_fold_to_one_account(make_stack, db_url):
    stack = make_stack(db_url)
    with WireClient(stack.port) as c:
        c.call("register", username="alice", password=PASSWORD)
        for twin in ("ＡＬＩＣＥ", "𝐚𝐥𝐢𝐜𝐞", "𝒜lice", "Alice"):
            err = c.error_of("register", username=twin, password=PASSWORD)
            assert err["code"] == "username_taken", (twin, err)
        c.call("register", username="ｂｏｂ", password=PASSWORD)  # shown as typed, in NFKC
        assert c.login("bob", PASSWORD)["user"]["username"] == "bob"
        c.call("logout")
        assert c.login("𝐀𝐋𝐈𝐂𝐄", PASSWORD)["user"]["username"] == "alice"


@pytest.mark.parametrize(("name", "why"), LOOKALIKES)
def test_spoofing_names_are_refused(make_stack, sqlite_url, name, why):
    stack = make_stack(sqlite_url)
    with WireClient(stack.port) as c:
        err = c.error_of("register", username=name, password=PASSWORD)
        assert err["code"] == "invalid_username", err
        assert why in err["message"], err


def test_spoofing_names_are_refused_on_each_backend(make_stack, db_url):
    stack = make_stack(db_url)
    with WireClient(stack.port) as c:
        for name, _why in LOOKALIKES:
            err = c.error_of("register", username=name, password=PASSWORD)
            assert err["code"] == "invalid_username", (name, err)
        c.call("register", username="lobby", password=PASSWORD)


def test_folded_keys_that_do_not_fit_are_refused(make_stack, db_url):
    """With usernames up to 64 characters, 'ß' * 33 would fold to a 66-character key
    (MariaDB: 'data too long', an internal error) and 'ﬃ' * 22 is 66 letters in NFKC:
    both are refused as invalid_username."""
    stack = make_stack(db_url, max_username_chars=64)
    with WireClient(stack.port) as c:
        c.call("register", username="ß" * 32, password=PASSWORD)
        for name in ("ß" * 33, "ﬃ" * 22, "Straße" * 10 + "ßßßß"):
            err = c.error_of("register", username=name, password=PASSWORD)
            assert err["code"] == "invalid_username", (name, err)
        c.call("register", username="a" * 64, password=PASSWORD)
