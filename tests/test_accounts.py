from __future__ import annotations

import pytest

from chatroom.errors import ServiceError
from chatroom.names import NameRefused, check_room_name, name_key
from services.auth.accounts import check_password, normalise_username, username_key

from wire import WireClient


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("alice", "alice"),
        ("  bob  ", "bob"),
        ("小明", "小明"),
        ("Jose\u0301", "José"),  # decomposed accent is stored composed (NFC)
        ("a_b-c.d", "a_b-c.d"),
        ("ＡＬＩＣＥ", "ALICE"),  # stored and shown in NFKC
        ("山田たろう", "山田たろう"),  # Han + Hiragana: Japanese, a common mix
        ("abc한국어", "abc한국어"),  # Latin + Hangul
    ],
)
def test_valid_usernames(raw, expected):
    assert normalise_username(raw, 32) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "a b",
        "tab\there",
        "new\nline",
        "x" * 33,
        "semi;colon",
        "quote'",
        "nul\x00",
        "emoji😀",
        "rtl\u202eoverride",
        "zero\u200bwidth",
        "l\u043ebby",  # Cyrillic о among Latin
        "\u0391\u0392C",  # Greek and Latin capitals
        "ab\u034f",  # combining grapheme joiner: a default-ignorable mark
        "x\u0378",  # unassigned
    ],
)
def test_invalid_usernames(raw):
    with pytest.raises(ServiceError) as err:
        normalise_username(raw, 32)
    assert err.value.code == "invalid_username"


def test_folded_key_longer_than_its_column_is_refused():
    assert normalise_username("ß" * 32, 40) == "ß" * 32  # key 'ss' * 32: 64, fits
    with pytest.raises(ServiceError) as err:
        normalise_username("ß" * 33, 40)  # key 'ss' * 33: 66 characters
    assert err.value.code == "invalid_username"


def test_username_key_is_case_and_form_insensitive():
    assert username_key("Alice") == username_key("ALICE") == username_key("alice")
    assert username_key("José") == username_key("JOSE\u0301")
    assert username_key("Straße") == username_key("STRASSE")
    assert username_key("jose") != username_key("josé")
    assert username_key("ＡＬＩＣＥ") == username_key("𝐚𝐥𝐢𝐜𝐞") == username_key("alice")


@pytest.mark.parametrize(
    "name", ["Book Club 读书会", "lobby", "Ελληνικά!", "Москва 2026", "ロビー", "ßß" * 16]
)
def test_valid_room_names(name):
    assert check_room_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        *("l\u043ebby", "lob\u200bby", "lobby\ufe0f", "x\u0378", "ß" * 40, "a\nb", " ", "x" * 65),
        *("\u2800", "lob\u2800by"),  # the Braille blank draws nothing
    ],
)
def test_invalid_room_names(name):
    with pytest.raises(NameRefused):
        check_room_name(name)


def test_room_name_keys_fold_lookalikes():
    assert name_key("Ｌｏｂｂｙ") == name_key("𝐥𝐨𝐛𝐛𝐲") == name_key("LOBBY") == "lobby"


@pytest.mark.parametrize("password", ["short", "       ", "        "])
def test_weak_passwords(password):
    with pytest.raises(ServiceError) as err:
        check_password(password, 8)
    assert err.value.code == "invalid_password"


def test_logout_ends_the_session_on_every_connection_using_its_token(stack):
    with WireClient(stack.port) as first, WireClient(stack.port) as resumed:
        first.register_and_login("lou")
        resumed.call("login", token=first.token)
        with WireClient(stack.port) as elsewhere:  # another session of the same user
            elsewhere.login("lou", "correct horse")
            first.call("logout")
            closing = resumed.event("closing", timeout=10)
            assert closing["code"] == "logged_out" and closing["message"]
            resumed.wait_closed()
            # The connection that logged out stays open, logged out; the other
            # session is untouched.
            assert first.error_of("friend.list")["code"] == "not_authenticated"
            assert first.call("ping")["ok"]
            assert elsewhere.call("friend.list")["ok"]
            elsewhere.no_event("closing", within=0.3)
        with WireClient(stack.port) as again:
            assert again.error_of("login", token=first.token)["code"] == "bad_credentials"
