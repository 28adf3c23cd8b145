from __future__ import annotations

import pytest

from chatroom.errors import ServiceError
from chatroom.services.auth.accounts import check_password, normalise_username, username_key

from wire import WireClient


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("alice", "alice"),
        ("  bob  ", "bob"),
        ("小明", "小明"),
        ("Jose\u0301", "José"),  # decomposed accent is stored composed (NFC)
        ("a_b-c.d", "a_b-c.d"),
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
    ],
)
def test_invalid_usernames(raw):
    with pytest.raises(ServiceError) as err:
        normalise_username(raw, 32)
    assert err.value.code == "invalid_username"


def test_username_key_is_case_and_form_insensitive():
    assert username_key("Alice") == username_key("ALICE") == username_key("alice")
    assert username_key("José") == username_key("JOSE\u0301")
    assert username_key("Straße") == username_key("STRASSE")
    assert username_key("jose") != username_key("josé")


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
