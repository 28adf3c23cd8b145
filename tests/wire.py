"""A small blocking client for tests: speaks the protocol through chatroom.framing;
with the few steps many tests share (users logged in, friends made, waiting until
something holds)."""

from __future__ import annotations

import contextlib
import itertools
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from typing import Any

from chatroom.framing import FrameDecoder, encode_frame, parse_payload


class ConnectionClosed(Exception):
    pass


class WireClient:
    def __init__(
        self,
        port: int,
        host: str = "127.0.0.1",
        timeout: float = 10.0,
        source: str | None = None,
        tls_ca: str | None = None,
    ) -> None:
        # `source`: another loopback address (127.0.0.2, ...) to appear as another client IP.
        # `tls_ca`: speak TLS, verifying the server against this CA file.
        self.sock = socket.create_connection(
            (host, port), timeout=timeout, source_address=(source, 0) if source else None
        )
        if tls_ca is not None:
            context = ssl.create_default_context(cafile=tls_ca)
            self.sock = context.wrap_socket(self.sock, server_hostname=host)
        self.timeout = timeout
        self.decoder = FrameDecoder(64 * 1024 * 1024)
        self.inbox: list[dict[str, Any]] = []  # frames read but not yet consumed
        self.ids = itertools.count(1)
        self.token: str | None = None
        self.user: dict[str, Any] | None = None

    # ---------------------------------------------------------------- raw I/O

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send(self, obj: dict[str, Any]) -> None:
        self.sock.sendall(encode_frame(obj))

    def _read_more(self, deadline: float) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no frame arrived in time")
        self.sock.settimeout(remaining)
        data = self.sock.recv(1 << 16)
        if not data:
            raise ConnectionClosed("server closed the connection")
        self.inbox.extend(parse_payload(p) for p in self.decoder.feed(data))

    def next_matching(self, predicate, timeout: float | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            for index, frame in enumerate(self.inbox):
                if predicate(frame):
                    return self.inbox.pop(index)
            self._read_more(deadline)

    def read_frame(self, timeout: float | None = None) -> dict[str, Any]:
        return self.next_matching(lambda _f: True, timeout)

    def wait_closed(self, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Read until the server closes the socket; return what arrived meanwhile."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._read_more(deadline)
        except (ConnectionClosed, ConnectionResetError):
            frames, self.inbox = self.inbox, []
            return frames

    # ---------------------------------------------------------------- requests

    def request(self, op: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        request_id = next(self.ids)
        self.send({"op": op, "id": request_id, **fields})
        return self.next_matching(lambda f: f.get("id") == request_id and "ok" in f, timeout)

    def call(self, op: str, **fields: Any) -> dict[str, Any]:
        reply = self.request(op, **fields)
        assert reply["ok"], f"{op} failed: {reply}"
        return reply

    def error_of(self, op: str, **fields: Any) -> dict[str, Any]:
        reply = self.request(op, **fields)
        assert not reply["ok"], f"{op} unexpectedly succeeded: {reply}"
        return reply["error"]

    def event(self, name: str, timeout: float | None = None, **match: Any) -> dict[str, Any]:
        def wanted(frame: dict[str, Any]) -> bool:
            return frame.get("event") == name and all(frame.get(k) == v for k, v in match.items())

        return self.next_matching(wanted, timeout)

    def no_event(self, name: str, within: float = 0.5) -> None:
        try:
            frame = self.event(name, timeout=within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected {name} event: {frame}")

    def login(self, username: str, password: str) -> dict[str, Any]:
        reply = self.call("login", username=username, password=password)
        self.token, self.user = reply["token"], reply["user"]
        return reply

    def register_and_login(self, username: str, password: str = "correct horse") -> dict:
        self.call("register", username=username, password=password)
        return self.login(username, password)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> WireClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------- shared steps


@contextlib.contextmanager
def users(stack: Any, *names: str) -> Iterator[list[WireClient]]:
    """One registered, logged-in client per name on the stack's first edge; all closed
    at the end of the block."""
    clients = [WireClient(stack.port) for _ in names]
    try:
        for client, name in zip(clients, names, strict=True):
            client.register_and_login(name)
        yield clients
    finally:
        for client in clients:
            client.close()


def befriend(a: WireClient, b: WireClient) -> None:
    """a asks, b accepts, and both have been told."""
    a.call("friend.request", username=b.user["username"])
    b.call("friend.accept", username=a.user["username"])
    a.event("friend.accepted")
    b.event("friend.accepted")


def answers_ping(port: int, source: str | None = None) -> bool:
    """Whether a new connection is admitted and answers a ping within a second (False
    when the edge refuses or closes it)."""
    try:
        with WireClient(port, source=source) as client:
            return client.request("ping", timeout=1).get("ok") is True
    except (ConnectionClosed, OSError):  # OSError: refused, reset, timed out
        return False


def wait_until(condition: Callable[[], Any], timeout_s: float, what: str) -> float:
    """Poll condition() until it is truthy; returns the seconds it took. Fails the test
    with `what` if it does not hold within timeout_s (a sleep of fixed length would
    either wait too long or, on a busy machine, not long enough)."""
    started = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s:g} s")
        time.sleep(0.05)
