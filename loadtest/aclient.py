"""Asyncio clients for the load generator: ours (through chatroom.framing) and IRC."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from chatroom import event_loop
from chatroom.framing import FrameDecoder, encode_frame, parse_payload

T = TypeVar("T")
EventHandler = Callable[[dict[str, Any], int], None]  # event, receive time (ns)


def run_async(main: Coroutine[Any, Any, T]) -> T:
    """On uvloop when it is installed (the servers run on it too): the generator shares
    the two cores with the servers it measures, so every cycle it spends on its own
    event loop is one the servers do not get. Same for both systems."""
    return event_loop.run(main)


class ChatError(Exception):
    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.retry_after_ms = error.get("retry_after_ms")


class AsyncChat:
    """One connection. Replies resolve futures by id; pushes go to `on_event`."""

    def __init__(self, on_event: EventHandler | None = None) -> None:
        self.on_event = on_event
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self._decoder = FrameDecoder(64 << 20)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task | None = None
        self.token: str | None = None
        # From the login reply: the server closes a connection silent for this long.
        self.idle_timeout_s: float | None = None

    @property
    def closed(self) -> bool:
        """The server closed the connection (or it was never opened)."""
        return self._task is None or self._task.done()

    async def connect(self, host: str, port: int, source: str | None = None) -> AsyncChat:
        """`source`: a local address to connect from (127.0.0.2, ...): one source address
        has only ~28,000 ephemeral ports towards one server port."""
        self.reader, self.writer = await asyncio.open_connection(
            host, port, limit=1 << 20, local_addr=(source, 0) if source else None
        )
        self._task = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.reader is not None
        while True:
            data = await self.reader.read(1 << 18)
            if not data:
                break
            now = time.monotonic_ns()
            for payload in self._decoder.feed(data):
                frame = parse_payload(payload)
                if "event" in frame:
                    if self.on_event:
                        self.on_event(frame, now)
                else:
                    fut = self._pending.pop(frame.get("id"), None)
                    if fut is not None and not fut.done():
                        fut.set_result(frame)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError("connection closed"))

    def send_nowait(self, op: str, **fields: Any) -> asyncio.Future:
        assert self.writer is not None
        request_id = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[request_id] = fut
        self.writer.write(encode_frame({"op": op, "id": request_id, **fields}))
        return fut

    async def call(self, op: str, timeout: float = 30, **fields: Any) -> dict[str, Any]:
        reply = await asyncio.wait_for(self.send_nowait(op, **fields), timeout)
        if not reply.get("ok"):
            raise ChatError(reply.get("error", {}))
        return reply

    async def register_login(
        self, username: str, password: str, timeout: float = 30
    ) -> dict[str, Any]:
        try:
            await self.call("register", timeout, username=username, password=password)
        except ChatError as exc:
            if exc.code != "username_taken":
                raise
        reply = await self.call("login", timeout, username=username, password=password)
        self.token = reply["token"]
        self.idle_timeout_s = reply["limits"]["idle_timeout_s"]
        return reply

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await self.writer.wait_closed()
        if self._task is not None:
            self._task.cancel()


class AsyncIrc:
    """A minimal IRC client for the ngIRCd comparison: register, join, PRIVMSG."""

    def __init__(self, nick: str, on_message: Callable[[str, int], None] | None = None) -> None:
        self.nick = nick
        self.on_message = on_message
        self.joined = asyncio.Event()
        self.welcome = asyncio.Event()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task | None = None

    async def connect(self, host: str, port: int) -> AsyncIrc:
        self.reader, self.writer = await asyncio.open_connection(host, port, limit=1 << 20)
        self._task = asyncio.create_task(self._read())
        self.writer.write(f"NICK {self.nick}\r\nUSER {self.nick} 0 * :{self.nick}\r\n".encode())
        await asyncio.wait_for(self.welcome.wait(), 30)
        return self

    async def join(self, channel: str) -> None:
        assert self.writer is not None
        self.writer.write(f"JOIN {channel}\r\n".encode())
        await asyncio.wait_for(self.joined.wait(), 30)

    def privmsg(self, channel: str, text: str) -> None:
        assert self.writer is not None
        self.writer.write(f"PRIVMSG {channel} :{text}\r\n".encode())

    async def _read(self) -> None:
        assert self.reader is not None
        buffer = b""
        while True:
            data = await self.reader.read(1 << 18)
            if not data:
                return
            now = time.monotonic_ns()
            buffer += data
            *lines, buffer = buffer.split(b"\r\n")
            for raw in lines:
                line = raw.decode("utf-8", "replace")
                if line.startswith("PING"):
                    self.writer.write(("PONG" + line[4:] + "\r\n").encode())
                    continue
                parts = line.split(" ", 3)
                if len(parts) >= 2 and parts[1] == "001":
                    self.welcome.set()
                elif len(parts) >= 2 and parts[1] == "366":  # end of NAMES: joined
                    self.joined.set()
                elif len(parts) >= 4 and parts[1] == "PRIVMSG" and self.on_message:
                    self.on_message(parts[3][1:], now)

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        if self._task is not None:
            self._task.cancel()
