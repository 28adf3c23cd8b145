"""Hostile and broken byte streams against a real edge: each gets its documented
outcome, and the edge keeps serving everyone else."""

from __future__ import annotations

import socket
import struct
import time

import pytest

from chatroom.framing import encode_frame

from wire import ConnectionClosed, WireClient, answers_ping, wait_until


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


@pytest.fixture
def edge(make_stack, sqlite_url):
    return make_stack(sqlite_url)


def assert_edge_still_serves(stack) -> None:
    """Whatever was thrown at it, the edge is alive and serving a well-behaved client."""
    wait_until(lambda: answers_ping(stack.port), 10, "a newcomer served")
    assert stack.procs["edge#0"].poll() is None
    assert "Traceback" not in stack.logs("edge#0")


FATAL = [
    ("http_request", b"GET / HTTP/1.1\r\nHost: chat\r\n\r\n", "frame_too_large"),
    ("tls_hello", bytes.fromhex("16030100a5010000a10303") + b"\x00" * 40, "frame_too_large"),
    ("zero_length", b"\x00\x00\x00\x00", "bad_frame"),
    ("above_maximum", struct.pack(">I", 1024 * 1024 + 1) + b"{}", "frame_too_large"),
    ("max_uint32", b"\xff\xff\xff\xff", "frame_too_large"),
]


@pytest.mark.parametrize(("name", "data", "code"), FATAL, ids=[f[0] for f in FATAL])
def test_untrustworthy_stream_is_answered_then_closed(edge, name, data, code):
    with WireClient(edge.port) as c:
        c.send_raw(data)
        frames = c.wait_closed()
        assert frames and frames[0]["ok"] is False and frames[0]["error"]["code"] == code
    assert_edge_still_serves(edge)


RECOVERABLE = [
    ("invalid_utf8", b'\xff\xfe{"op":"ping"}'),
    ("json_array", b"[1,2,3]"),
    ("json_string", b'"ping"'),
    ("json_number", b"42"),
    ("json_null", b"null"),
    ("not_json", b"{op: ping}"),
    ("nan", b'{"op":"ping","id":NaN}'),
    # 9,000 levels: far beyond any parser's depth limit, within a pre-login frame.
    ("deep_nesting", b"[" * 9_000 + b"]" * 9_000),
    ("trailing_garbage", b'{"op":"ping","id":1} {}'),
]


@pytest.mark.parametrize(("name", "payload"), RECOVERABLE, ids=[r[0] for r in RECOVERABLE])
def test_bad_frame_gets_error_and_connection_stays(edge, name, payload):
    with WireClient(edge.port) as c:
        c.send_raw(frame(payload))
        reply = c.read_frame()
        assert reply["id"] is None and reply["ok"] is False
        assert reply["error"]["code"] == "bad_frame" and reply["error"]["message"]
        assert c.call("ping")["ok"]
    assert_edge_still_serves(edge)


def test_truncated_frame_then_close(make_stack, sqlite_url):
    # One connection per address: the next one is admitted only once the edge has let
    # go of the truncated one.
    stack = make_stack(sqlite_url, max_conns_per_ip=1)
    s = socket.create_connection(("127.0.0.1", stack.port), timeout=5)
    s.sendall(struct.pack(">I", 100) + b'{"op":"pi')
    s.close()
    assert_edge_still_serves(stack)


def test_ten_thousand_frames_in_one_write(edge):
    with WireClient(edge.port, timeout=30) as c:
        c.send_raw(b"".join(encode_frame({"op": "ping", "id": i}) for i in range(10_000)))
        ids = [c.read_frame()["id"] for _ in range(10_000)]
        assert ids == list(range(10_000))
    assert_edge_still_serves(edge)


def test_many_service_requests_in_one_write_respect_inflight_limit(edge):
    with WireClient(edge.port, timeout=30) as c:
        c.register_and_login("burst")
        n = 300
        c.send_raw(
            b"".join(
                encode_frame({"op": "room.history", "id": 1000 + i, "room": "lobby", "limit": 1})
                for i in range(n)
            )
        )
        replies = [c.read_frame() for _ in range(n)]
        assert sorted(r["id"] for r in replies) == [1000 + i for i in range(n)]
        assert all(r["ok"] for r in replies)
    assert_edge_still_serves(edge)


def test_frame_split_into_single_bytes(edge):
    with WireClient(edge.port) as c:
        request = {"op": "register", "id": 5, "username": "字节", "password": "pw-123456"}
        data = encode_frame(request)
        for i in range(len(data)):
            c.send_raw(data[i : i + 1])
        reply = c.read_frame()
        assert reply["id"] == 5 and reply["ok"] and reply["user"]["username"] == "字节"
    assert_edge_still_serves(edge)


def test_pre_login_timeout(make_stack, sqlite_url):
    stack = make_stack(sqlite_url, login_timeout_s=1)
    with WireClient(stack.port) as c:
        started = time.monotonic()
        frames = c.wait_closed(timeout=10)
        assert frames[-1]["event"] == "closing" and frames[-1]["code"] == "login_timeout"
        assert time.monotonic() - started < 5


def test_logout_then_login_again_on_an_old_connection(make_stack, sqlite_url):
    """Found by the presence benchmark: after a logout the login timeout starts again,
    it does not count from when the socket was opened."""
    stack = make_stack(sqlite_url, login_timeout_s=2)
    with WireClient(stack.port) as c:
        c.register_and_login("again")
        # Deliberate waits, the subject of the test: the socket outlives the login
        # timeout while logged in, then stays logged out while the sweeper (every
        # second) looks at it at least once. Nothing happens that a condition could see.
        time.sleep(3)
        c.call("logout")
        time.sleep(1.2)
        c.login("again", "correct horse")
        assert c.call("ping")["ok"]


def test_idle_timeout(make_stack, sqlite_url):
    stack = make_stack(sqlite_url, idle_timeout_s=2)
    with WireClient(stack.port) as idle, WireClient(stack.port) as active:
        idle.register_and_login("idler")
        active.register_and_login("pinger")
        deadline = time.monotonic() + 3.5
        while time.monotonic() < deadline:  # longer than the idle timeout
            active.call("ping")
            time.sleep(0.5)  # the pinger's period (a deliberate pace, not a wait)
        frames = idle.wait_closed(timeout=5)
        assert any(f.get("code") == "idle_timeout" for f in frames)
        assert active.call("ping")["ok"]  # pinging keeps a connection open


def test_slow_reader_is_disconnected(make_stack, sqlite_url):
    stack = make_stack(
        sqlite_url,
        outbound_queue_bytes=256 * 1024,
        max_frame_bytes=128 * 1024,
        max_reply_bytes=64 * 1024,
    )
    with WireClient(stack.port, timeout=30) as writer:
        writer.register_and_login("writer")
        for i in range(100):
            writer.call("room.send", room="lobby", text=f"{i:04d}" + "x" * 3996)
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.settimeout(10)
        slow.connect(("127.0.0.1", stack.port))
        token = writer.token
        slow.sendall(encode_frame({"op": "login", "id": 1, "token": token}))
        # Ask for ~40 MB of history and never read it.
        for i in range(100):
            slow.sendall(
                encode_frame({"op": "room.history", "id": 2 + i, "room": "lobby", "limit": 100})
            )
        wait_until(
            lambda: "disconnecting slow reader" in stack.logs("edge#0"), 20, "slow reader cut"
        )
        with pytest.raises((ConnectionClosed, ConnectionResetError)):
            while True:
                if not slow.recv(1 << 20):
                    raise ConnectionClosed
        slow.close()
        assert writer.call("ping")["ok"]
