"""Device names on sessions through real processes (SQLite and MariaDB): a login's
optional `device`, kept with the session in auth, renamed by a token resume that names
another, listed by account.sessions and in the user's export; bad names refused with
bad_request before any password is checked (docs/protocol.md, "login")."""

from __future__ import annotations

import time

import pytest

from chatroom.devices import default_device_name, device_problem
from chatroom.protocol import DEVICE_MAX_CHARS

from wire import WireClient, wait_until

PW = "correct horse"
LAPTOP = "ChatRoom on ann-laptop (Linux)"
PHONE = "Ann's phone 📱 — Пётр"


def _devices(client: WireClient) -> dict[str, bool]:
    """Device name -> is it the asking session."""
    return {s["device"]: s["current"] for s in client.call("account.sessions")["sessions"]}


def test_each_session_lists_its_device_and_a_resume_renames_it(stack):
    with WireClient(stack.port) as laptop, WireClient(stack.port) as phone:
        laptop.call("register", username="ann", password=PW)
        laptop.call("login", username="ann", password=PW, device=LAPTOP)
        reply = phone.call("login", username="ann", password=PW, device=PHONE)
        token = reply["token"]
        assert _devices(laptop) == {LAPTOP: True, PHONE: False}
        assert _devices(phone) == {LAPTOP: False, PHONE: True}
        listed = laptop.call("account.sessions")["sessions"]
        assert all(s["last_used_at"] >= s["created_at"] > 0 for s in listed)
    # the phone reconnects: a resume without a name keeps it, one with a new name renames
    with WireClient(stack.port) as phone:
        phone.call("login", token=token)
        assert _devices(phone) == {LAPTOP: False, PHONE: True}
    with WireClient(stack.port) as phone:
        phone.call("login", token=token, device="Ann's new phone")
        assert _devices(phone) == {LAPTOP: False, "Ann's new phone": True}
        export = phone.call("account.export")
        assert sorted(s["device"] for s in export["sessions"]) == sorted(
            [LAPTOP, "Ann's new phone"]
        )


def test_a_login_without_a_device_is_listed_without_one(stack):
    with WireClient(stack.port) as old_client:
        old_client.register_and_login("bob")
        (session,) = old_client.call("account.sessions")["sessions"]
        assert session["device"] is None and session["current"]


@pytest.mark.parametrize(
    "device",
    [
        "",
        "   ",
        " padded",
        "x" * (DEVICE_MAX_CHARS + 1),
        "two\nlines",
        "tab\there",
        "bell\x07",
        "evil\u202etxt.exe",  # a right-to-left override: draws as something else
        "zero\u200bwidth",
        42,
        ["laptop"],
    ],
)
def test_bad_device_names_are_refused_before_any_password_check(make_stack, sqlite_url, device):
    # Failed logins are throttled hard here: a bad name must not spend one (nor argon2).
    stack = make_stack(sqlite_url, rate_login_failed_account_ip="1/15m")
    with WireClient(stack.port) as client:
        client.call("register", username="cid", password=PW)
        for _ in range(3):
            err = client.error_of("login", username="cid", password=PW, device=device)
            assert err["code"] == "bad_request" and err.get("field") == "device", err
        with WireClient(stack.port) as other:
            token = other.login("cid", PW)["token"]
        err = client.error_of("login", token=token, device=device)
        assert (err["code"], err.get("field")) == ("bad_request", "device")
        # nothing was stored, and the throttle's one failed login is still unspent
        client.call("login", username="cid", password=PW, device="fine")
        assert _devices(client) == {None: False, "fine": True}


def test_a_strangers_device_name_is_never_shown_to_another_user(stack):
    with WireClient(stack.port) as ann, WireClient(stack.port) as eve:
        ann.call("register", username="ann", password=PW)
        ann.call("login", username="ann", password=PW, device=LAPTOP)
        eve.call("register", username="eve", password=PW)
        eve.call("login", username="eve", password=PW, device="eve's box")
        assert _devices(eve) == {"eve's box": True}
        assert _devices(ann) == {LAPTOP: True}


def test_last_use_follows_the_connection_not_only_the_login(make_stack, db_url):
    """A device that stays connected all day never logs in again; one that closed at 5
    pm last logged in at 9. The edge tells auth: a closed session's last use is when it
    closed (within seconds), a connected one's moves on while it stays connected
    (every CHAT_SESSION_IN_USE_S, 1 s here), and a closed one's then stays put."""
    stack = make_stack(db_url, session_in_use_s=1)
    laptop = WireClient(stack.port)
    with WireClient(stack.port) as phone:
        laptop.register_and_login("ann")
        phone.login("ann", PW)

        def last_used() -> dict[bool, int]:  # is it the phone -> last_used_at
            listed = phone.call("account.sessions")["sessions"]
            return {s["current"]: s["last_used_at"] for s in listed}

        logged_in = last_used()
        laptop.close()
        closed_ms = time.time() * 1000
        wait_until(lambda: last_used()[False] >= closed_ms, 20, "the laptop's last use: its close")
        laptop_last = last_used()[False]
        wait_until(
            lambda: last_used()[True] > max(laptop_last, logged_in[True]) + 1500,
            20,
            "the phone's last use moving on while it is connected",
        )
        assert last_used()[False] == laptop_last  # closed: no longer moves
        # Edges' report is theirs alone: a client cannot send it.
        assert phone.error_of("sessions.used", sessions=[1])["code"] == "unknown_op"


def test_the_rule_and_the_clients_default():
    assert device_problem(LAPTOP) is None and device_problem(PHONE) is None
    assert device_problem("x" * DEVICE_MAX_CHARS) is None
    # whatever the host reports, the default is a valid name
    hosts = [("ann-laptop", "Linux"), ("", ""), ("a\tb\nc", "Win\x00dows"), ("h" * 200, "Mac")]
    for host, system in [*hosts, ("x\u202ey", "Linux")]:
        name = default_device_name(host, system)
        assert device_problem(name) is None, (host, system, name)
    assert default_device_name("ann-laptop", "Linux") == LAPTOP
