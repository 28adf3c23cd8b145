"""Before login, a connection may make the edge hold only a little (hardening issue,
edge): frames up to the longest login, and a per-edge budget of pre-login connections
and their unfinished bytes; IPv6 clients count by their /64 for per-address limits."""

from __future__ import annotations

import base64
import json
import socket
import struct

import pytest

from chatroom.protocol import DEVICE_MAX_CHARS, PRELOGIN_MAX_FRAME_BYTES, longest_request_bytes
from chatroom.ratelimit import address_key
from services.tcp_edge.admission import PreloginBudget

from images import noisy_png
from wire import WireClient

WIDEST = "\U0001f600"  # 12 bytes in JSON when escaped, as json.dumps does by default


def header(length: int) -> bytes:
    return struct.pack(">I", length)


def widest_login() -> bytes:
    """The longest valid login an ordinary encoder writes (escaped astral characters)."""
    payload = json.dumps(
        {
            "op": "login",
            "id": WIDEST * 64,
            "username": WIDEST * 256,
            "password": WIDEST * 1024,
            "token": WIDEST * 256,
            "device": WIDEST * DEVICE_MAX_CHARS,
        }
    ).encode()
    assert len(payload) == PRELOGIN_MAX_FRAME_BYTES == longest_request_bytes("login")
    return header(len(payload)) + payload


# ----------------------------------------------------------------------------- frame cap


def test_prelogin_frame_above_the_cap_is_refused_and_closed(make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    with WireClient(stack.port) as c:
        # The longest valid login fits (and is answered: those credentials are wrong).
        c.send_raw(widest_login())
        assert c.read_frame()["error"]["code"] in ("bad_credentials", "invalid_username")
        assert c.call("ping")["ok"]
        c.send_raw(header(PRELOGIN_MAX_FRAME_BYTES + 1))
        frames = c.wait_closed(timeout=5)
        assert [f["error"]["code"] for f in frames] == ["frame_too_large"]
        assert "before login" in frames[0]["error"]["message"]
    with WireClient(stack.port) as other:
        assert other.call("ping")["ok"]


def test_logged_in_connection_may_send_large_frames(make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    with WireClient(stack.port, timeout=30) as c:
        c.register_and_login("ann")
        # 4,000 escaped astral characters: a 48 KB frame, above the pre-login cap.
        long_text = json.dumps(
            {"op": "room.send", "id": "long", "room": "lobby", "text": WIDEST * 4000}
        ).encode()
        assert len(long_text) > PRELOGIN_MAX_FRAME_BYTES
        c.send_raw(header(len(long_text)) + long_text)
        assert c.next_matching(lambda f: f.get("id") == "long")["ok"]
        image = base64.b64encode(noisy_png()).decode()
        assert len(image) > 4 * PRELOGIN_MAX_FRAME_BYTES
        assert c.call("avatar.set", image=image)["hash"]
        # Logged out, the connection is back to small frames.
        c.call("logout")
        c.send_raw(header(PRELOGIN_MAX_FRAME_BYTES + 1))
        frames = c.wait_closed(timeout=5)  # after the pushes of the message and avatar
        assert [f["error"]["code"] for f in frames if "error" in f] == ["frame_too_large"]


# ----------------------------------------------------------------------------- budget


def hostile(port: int, source: str, body: int = 0) -> WireClient:
    """A connection that pings once (so the edge has surely counted it, in this order)
    and then sends `body` bytes of a login-sized frame it never finishes."""
    c = WireClient(port, source=source)
    assert c.call("ping")["ok"]
    if body:
        c.send_raw(header(PRELOGIN_MAX_FRAME_BYTES) + b"x" * body)
    return c


def test_prelogin_connection_budget_drops_the_least_recently_active(make_stack, sqlite_url):
    stack = make_stack(sqlite_url, max_prelogin_conns=3)
    with WireClient(stack.port) as user:
        user.register_and_login("ann")  # logged-in connections do not count
        attackers = [hostile(stack.port, f"127.0.0.{2 + i}") for i in range(3)]
        try:
            with WireClient(stack.port) as newcomer:
                frames = attackers[0].wait_closed(timeout=5)
                assert [f.get("code") for f in frames] == ["server_busy"]
                newcomer.call("register", username="bo", password="correct horse")
                newcomer.login("bo", "correct horse")
                assert user.call("room.send", room="lobby", text="still here")["ok"]
                assert newcomer.event("message", text="still here")
            for c in attackers[1:]:  # only the least recently active one was dropped
                assert c.call("ping")["ok"]
        finally:
            for c in attackers:
                c.close()


def test_prelogin_bytes_budget_drops_the_oldest_holder(make_stack, sqlite_url):
    body = 15_000
    stack = make_stack(sqlite_url, max_prelogin_bytes=2 * body + 5_000)
    with WireClient(stack.port) as user:
        user.register_and_login("ann")
        holders = [hostile(stack.port, f"127.0.0.{2 + i}", body) for i in range(3)]
        try:
            frames = holders[0].wait_closed(timeout=5)
            assert [f.get("code") for f in frames] == ["server_busy"]
            assert user.call("room.send", room="lobby", text="unbothered")["ok"]
            with WireClient(stack.port) as newcomer:  # holds nothing: costs no bytes
                assert newcomer.call("ping")["ok"]
            for c in holders[1:]:  # finish the frame: both are answered
                c.send_raw(b"y" * (PRELOGIN_MAX_FRAME_BYTES - body))
                assert c.read_frame()["error"]["code"] == "bad_frame"
        finally:
            for c in holders:
                c.close()


class Conn:
    def __init__(self, name: str, busy: bool = False) -> None:
        self.name, self.busy = name, busy

    def __repr__(self) -> str:
        return self.name


def test_budget_spares_connections_waiting_for_a_reply():
    a, b, c, d = Conn("a", busy=True), Conn("b"), Conn("c"), Conn("d")
    budget = PreloginBudget(max_conns=2, max_bytes=100, busy=lambda conn: conn.busy)
    assert budget.admit(a) == [] and budget.admit(b) == []
    assert budget.admit(c) == [b]  # a is waiting for its login reply
    budget.active(c)
    assert budget.admit(d) == [c]


def test_budget_refuses_the_newcomer_when_everyone_is_busy():
    a, b = Conn("a", busy=True), Conn("b", busy=True)
    budget = PreloginBudget(max_conns=2, max_bytes=100, busy=lambda conn: conn.busy)
    budget.admit(a)
    budget.admit(b)
    newcomer = Conn("new")
    assert budget.admit(newcomer) == [newcomer]
    assert newcomer not in budget and len(budget) == 2


def test_budget_bytes_drop_the_oldest_holder_and_release_frees():
    a, b, c = Conn("a"), Conn("b"), Conn("c")
    budget = PreloginBudget(max_conns=10, max_bytes=100, busy=lambda conn: conn.busy)
    for conn in (a, b, c):
        budget.admit(conn)
    assert budget.holding(b, 60) == []
    assert budget.holding(c, 60) == [b]  # a holds nothing: dropping it would not help
    assert budget.buffered_bytes == 60
    budget.release(c)
    assert budget.buffered_bytes == 0 and len(budget) == 1


# ----------------------------------------------------------------------------- addresses


@pytest.mark.parametrize(
    ("ip", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::1", "::/64"),
        ("::ffff:198.51.100.9", "198.51.100.9"),
        ("fe80::1%eth0", "fe80::/64"),
        ("?", "?"),
    ],
)
def test_ipv6_clients_are_counted_by_their_64(ip, key):
    assert address_key(ip) == key


def ipv6_loopback_works() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback_works(), reason="no IPv6 loopback here")
def test_per_address_cap_over_ipv6(make_stack, sqlite_url):
    # Listening on every interface: IPv4 clients arrive as themselves, IPv6 ones on ::1.
    stack = make_stack(sqlite_url, edge_host="", max_conns_per_ip=2)
    six = [WireClient(stack.port, host="::1") for _ in range(2)]
    try:
        for c in six:
            assert c.call("ping")["ok"]
        with WireClient(stack.port, host="::1") as third:
            assert [f.get("code") for f in third.wait_closed(timeout=5)] == ["too_many_connections"]
        with WireClient(stack.port) as four:
            assert four.call("ping")["ok"]
        assert "refusing a connection from ::1" in stack.logs("edge#0")
    finally:
        for c in six:
            c.close()
