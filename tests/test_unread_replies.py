"""Replies a client never reads: before login they must cost the edge next to nothing
(found by an outside recheck: 400 connections that were not logged in, each sending
200 KB of 5-byte invalid frames and reading nothing, made the edge hold 2 MiB of
`bad_frame` replies apiece, 45 -> 328 MiB; the login timeout's close then waited
forever for the unread bytes to drain, so the memory and the address's connection
slot were never given back)."""

from __future__ import annotations

import json
import socket
import struct
import time
from pathlib import Path

from chatroom.framing import FrameDecoder

from wire import ConnectionClosed, WireClient

# A 5-byte frame ('[', not JSON) whose `bad_frame` reply is 141 bytes: 28 times as much.
INVALID_FRAME = struct.pack(">I", 1) + b"["


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def hostile_socket(port: int, source: str) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # reads nothing anyway
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    s.setblocking(False)
    return s


def pump(socks: list[socket.socket], payload: bytes, seconds: float) -> None:
    """Send `payload` on every socket without ever reading, for at most `seconds`."""
    sent = dict.fromkeys(socks, 0)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and any(v < len(payload) for v in sent.values()):
        for s, done in sent.items():
            if done < len(payload):
                try:
                    sent[s] += s.send(payload[done : done + 65536])
                except BlockingIOError:
                    pass
                except OSError:
                    sent[s] = len(payload)  # the edge cut it
        time.sleep(0.02)


def wait_edge_idle(port: int, timeout: float = 120.0) -> None:
    """Until a ping on a fresh connection is answered at once: the edge has worked
    through what the hostile connections sent."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            start = time.monotonic()
            s.sendall(struct.pack(">I", 20) + b'{"op":"ping","id":1}')
            s.settimeout(5)
            try:
                s.recv(100)
            except TimeoutError:
                pass  # still busy (or the loopback is, under this much unread data)
            else:
                if time.monotonic() - start < 0.2:
                    return
        assert time.monotonic() < deadline, "edge still busy"
        time.sleep(0.2)


def test_unread_replies_before_login_cost_the_edge_little(make_stack, sqlite_url):
    stack = make_stack(sqlite_url)
    edge = stack.procs["edge#0"].pid
    before = rss_mib(edge)
    socks = [hostile_socket(stack.port, f"127.0.{1 + i // 200}.{1 + i % 200}") for i in range(120)]
    try:
        pump(socks, INVALID_FRAME * 30_000, seconds=30)  # 150 KB each: 4.2 MB of replies
        wait_edge_idle(stack.port)
        grown = rss_mib(edge) - before
        # 120 x 2 MiB (the logged-in slow-reader cap) would be 240 MiB.
        assert grown < 32, f"edge grew {grown:.0f} MiB holding replies nobody reads"
    finally:
        for s in socks:
            s.close()


def test_a_closed_connection_that_never_reads_is_let_go(make_stack, sqlite_url):
    """The idle timeout closes a logged-in socket whose peer reads nothing, with replies
    still queued (below the slow-reader cut): the edge must not wait for them forever,
    holding their memory and the address's connection slot."""
    stack = make_stack(sqlite_url, idle_timeout_s=2, max_conns_per_ip=1)
    source = "127.0.9.1"
    with WireClient(stack.port, source=source) as c:
        c.register_and_login("quiet")
        token = c.token
    hostile = socket.socket()
    hostile.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    hostile.bind((source, 0))
    hostile.connect(("127.0.0.1", stack.port))
    try:
        login = json.dumps({"op": "login", "id": 1, "token": token}).encode()
        hostile.sendall(struct.pack(">I", len(login)) + login)
        decoder = FrameDecoder(1 << 20)
        hostile.settimeout(10)
        while not decoder.feed(hostile.recv(65536)):
            pass
        hostile.setblocking(False)
        # About 4 MB of replies: past what the kernel's buffers hold, so the edge keeps
        # the rest (well under the 2 MiB cut) when the idle timeout closes the socket.
        pump([hostile], INVALID_FRAME * 30_000, seconds=10)
        wait_edge_idle(stack.port)
        deadline = time.monotonic() + 20
        while True:
            with WireClient(stack.port, source=source, timeout=5) as other:
                try:
                    reply = other.request("ping")
                except (ConnectionClosed, ConnectionResetError, TimeoutError):
                    reply = {"ok": False}
            if reply.get("ok"):
                break
            assert time.monotonic() < deadline, "the unread connection still holds the slot"
            time.sleep(0.5)
    finally:
        hostile.close()
