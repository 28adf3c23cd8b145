"""The bus admits only known CURVE keys, each only where its role belongs.

An intruder here is a real ZeroMQ socket connected straight to the bus's ports, as any
local user or any container on the backend network could: without a key, with a key the
bus does not know, or with a real key of the wrong role. It must get nothing: no events,
no replies, no login requests (with their passwords) meant for auth. Every wait is a
bounded poll. Operator ops need the admin key.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from pathlib import Path

import pytest
import zmq
import zmq.asyncio
import zmq.auth

from chatroom import buskeys
from chatroom.bus_client import BusClient
from chatroom.bus_contract import PING_OP
from chatroom.errors import ServiceError

from wire import WireClient, wait_until

# What a process holding no key of this bus can try.
INTRUDERS = ["no_key", "unknown_key"]
QUIET_S = 2.0  # how long an intruder listens for something it must not get


def intruder_socket(zctx: zmq.Context, stack, kind: int, endpoint: str, key: str) -> zmq.Socket:
    """A socket connected to `endpoint` of `stack`'s bus with `key`: "no_key", "unknown_key"
    (a fresh key pair, with the bus's real public key) or a role whose real key it uses."""
    sock = zctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    if key != "no_key":
        keys_dir = Path(stack.env["CHAT_BUS_KEYS_DIR"])
        if key == "unknown_key":
            public, secret = zmq.curve_keypair()
        else:
            public, secret = zmq.auth.load_certificate(keys_dir / f"{key}.key_secret")
        sock.curve_publickey = public
        sock.curve_secretkey = secret
        sock.curve_serverkey = zmq.auth.load_certificate(keys_dir / "bus.key")[0]
    sock.connect(stack.settings.bus_connect(endpoint))
    return sock


@pytest.fixture
def zctx():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


def send_ping(sock: zmq.Socket, rid: str) -> None:
    """Queue a health ping (never blocking: a refused socket may have nowhere to send)."""
    deadline = int((time.time() + 30) * 1000)
    body = json.dumps({"rid": rid, "op": PING_OP, "deadline_ms": deadline}).encode()
    with contextlib.suppress(zmq.Again):
        sock.send(body, zmq.NOBLOCK)


@pytest.mark.parametrize("key", [*INTRUDERS, "auth"])
def test_intruder_receives_no_events(make_stack, sqlite_url, zctx, key):
    stack = make_stack(sqlite_url)
    spy = intruder_socket(zctx, stack, zmq.SUB, "events.out", key)
    spy.setsockopt(zmq.SUBSCRIBE, b"")  # everything: every DM, every presence change
    with WireClient(stack.port) as alice, WireClient(stack.port) as bob:
        alice.register_and_login("alice")
        bob.register_and_login("bob")
        alice.call("friend.request", username="bob")
        bob.call("friend.accept", username="alice")
        deadline = time.monotonic() + QUIET_S
        while time.monotonic() < deadline:
            alice.call("dm.send", to="bob", text="for bob only")
            assert bob.event("message", timeout=5)["text"] == "for bob only"  # the edge hears
            assert not spy.poll(100), "an intruder received an event"


@pytest.mark.parametrize("key", [*INTRUDERS, "media"])
def test_intruder_gets_no_reply_from_a_service(make_stack, sqlite_url, zctx, key):
    stack = make_stack(sqlite_url)
    asker = intruder_socket(zctx, stack, zmq.DEALER, "auth.front", key)
    send_ping(asker, "intruder:1")
    assert not asker.poll(int(QUIET_S * 1000)), "an intruder got a reply"


def test_knocking_cannot_flood_the_bus_log(make_stack, sqlite_url, zctx):
    # Each refused handshake used to be a warning: 48 sockets wrote 387 lines in 2.5 s.
    stack = make_stack(sqlite_url)
    knockers = [
        intruder_socket(zctx, stack, zmq.DEALER, "auth.front", "unknown_key") for _ in range(40)
    ]
    for number, sock in enumerate(knockers):
        send_ping(sock, f"knock:{number}")
    refused = "bus refused a unknown key on auth.front"

    def warnings() -> list[str]:
        return [line for line in stack.logs("bus").splitlines() if refused in line]

    wait_until(lambda: warnings(), timeout_s=20, what="the first refusal in the bus log")
    # The knockers keep retrying their handshakes meanwhile (ZeroMQ reconnects).
    time.sleep(QUIET_S)  # the quiet spell is the point: nothing more may be logged
    assert len(warnings()) == 1, warnings()


def test_the_edge_key_gets_replies(make_stack, sqlite_url, zctx):
    # The same request as above, with the key an edge holds: so the silence above is the
    # bus refusing the key, not a malformed request.
    stack = make_stack(sqlite_url)
    asker = intruder_socket(zctx, stack, zmq.DEALER, "auth.front", "edge")
    send_ping(asker, "edge:1")
    assert asker.poll(10_000), "no reply with the edge's key"
    assert json.loads(asker.recv())["ok"] is True


@pytest.mark.parametrize("key", [*INTRUDERS, "edge", "social"])
def test_intruder_cannot_pose_as_an_auth_replica(make_stack, sqlite_url, zctx, key):
    """Were it admitted, the bus would hand it every other login request, password
    included (requests are shared round-robin among replicas)."""
    stack = make_stack(sqlite_url)
    fake = intruder_socket(zctx, stack, zmq.DEALER, "auth.back", key)
    with WireClient(stack.port) as setup:
        setup.call("register", username="carol", password="correct horse")
    deadline = time.monotonic() + QUIET_S
    logins = 0
    while time.monotonic() < deadline or logins < 6:
        with WireClient(stack.port) as c:
            c.login("carol", "correct horse")  # answered by the real replica every time
        logins += 1
        assert not fake.poll(50), "a fake auth replica received a login request"


def test_admin_ops_need_the_admin_key(make_stack, sqlite_url, zctx, admin_json):
    stack = make_stack(sqlite_url)
    with WireClient(stack.port) as c:
        c.register_and_login("dave")

    async def refusal_as_edge(service: str, op: str) -> ServiceError:
        actx = zmq.asyncio.Context()
        client = BusClient(stack.settings, "not-admin", actx)
        client.start()
        try:
            with pytest.raises(ServiceError) as refused:
                await client.call(service, op, {"username": "dave"})
            return refused.value
        finally:
            client.close()
            actx.term()

    # With the edge's key, on the ordinary path: the service refuses operator ops.
    for service, op in (
        ("auth", "admin.kick"),
        ("auth", "admin.users"),
        ("social", "admin.online"),
        ("auth", "admin.erase"),
        ("social", "admin.erase"),
        ("media", "admin.erase"),
        ("media", "admin.export"),
    ):
        assert asyncio.run(refusal_as_edge(service, op)).code == "forbidden"
    # Any key but the admin key: the operators' path does not even hand-shake.
    for key in ("no_key", "unknown_key", "edge", "auth"):
        for front in ("auth.admin.front", "media.admin.front"):
            asker = intruder_socket(zctx, stack, zmq.DEALER, front, key)
            send_ping(asker, "x:1")
            assert not asker.poll(500), f"{front} answered a {key}"
    # With the admin key (chatroom admin): served.
    assert [u["username"] for u in admin_json(stack, "users")["users"]] == ["dave"]


def test_every_endpoint_admits_some_role_and_keys_are_created_once(tmp_path):
    assert all(roles for roles in buskeys.ENDPOINT_ROLES.values())
    assert set(buskeys.ensure_keys(tmp_path)) == set(buskeys.ROLES)
    before = (tmp_path / "edge.key_secret").read_bytes()
    assert buskeys.ensure_keys(tmp_path) == []
    assert (tmp_path / "edge.key_secret").read_bytes() == before
    assert (tmp_path / "edge.key_secret").stat().st_mode & 0o077 == 0
