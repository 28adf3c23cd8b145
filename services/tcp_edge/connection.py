"""One client socket: framing, limits, and the session of whoever logged in on it.

The connection knows nothing of services: it hands each valid request to the edge's
dispatcher and writes back whatever it is given. Requests run concurrently up to a
per-connection limit; beyond it, reading from the socket pauses (backpressure).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

from loguru import logger

from chatroom.protocol import (
    PRELOGIN_MAX_FRAME_BYTES,
    ErrorCode,
    FrameDecoder,
    FrameError,
    MessageError,
    Op,
    encode_frame,
    parse_payload,
    push,
    reply_error,
    request_id_of,
    validate_request,
)
from chatroom.ratelimit import address_key

SESSION_OPS = frozenset({"login", "logout"})
# Unread replies a connection that has not logged in may leave the edge holding before it
# is cut as a slow reader: plenty for its few small replies (a ping's is 40 bytes, an
# error's under 1 KB), where the logged-in limit (CHAT_OUTBOUND_QUEUE_BYTES, 2 MiB) would
# let thousands of hostile connections that never read make the edge hold gigabytes.
PRELOGIN_OUTBOUND_QUEUE_BYTES = 16 * 1024
# How long a closed connection may take to read what is still queued for it; then it is
# aborted, so a peer that never reads cannot keep the memory and its address's slot.
CLOSE_FLUSH_S = 5.0


class Session:
    """Who is logged in on a connection, and what they hear."""

    __slots__ = ("user_id", "username", "session_id", "room_ids")

    def __init__(self, user_id: int, username: str, session_id: int, room_ids: set[int]) -> None:
        self.user_id = user_id
        self.username = username
        self.session_id = session_id
        self.room_ids = room_ids


class Connection(asyncio.Protocol):
    __slots__ = (
        "edge",
        "conn_id",
        "ip",
        "ip_key",
        "transport",
        "decoder",
        "session",
        "opened_at",
        "last_seen",
        "inflight",
        "backlog",
        "paused",
        "closing",
        "tasks",
        "barrier",
        "outbound_limit",
        "lost",
    )

    def __init__(self, edge: Any, conn_id: str) -> None:
        self.edge = edge
        self.conn_id = conn_id
        self.ip = self.ip_key = "?"
        self.transport: asyncio.Transport | None = None
        # Small frames until the connection has logged in (see logged_in / logged_out).
        self.decoder = FrameDecoder(PRELOGIN_MAX_FRAME_BYTES)
        self.session: Session | None = None
        self.opened_at = self.last_seen = time.monotonic()
        self.inflight = 0
        self.backlog: deque[tuple[Any, str, Op, dict[str, Any]]] = deque()
        self.paused = False
        self.barrier = False
        self.closing = False
        self.lost = False
        self.outbound_limit = PRELOGIN_OUTBOUND_QUEUE_BYTES
        self.tasks: set[asyncio.Task] = set()

    # ------------------------------------------------------------------ asyncio hooks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.ip = peer[0] if peer else "?"
        self.ip_key = address_key(self.ip)
        self.edge.connection_opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closing = self.lost = True
        for task in self.tasks:
            task.cancel()
        self.edge.connection_closed(self)

    def data_received(self, data: bytes) -> None:
        self.last_seen = time.monotonic()
        try:
            payloads = self.decoder.feed(data)
        except FrameError as exc:
            logger.info("closing {} from {}: {}", self.conn_id, self.ip, exc.code)
            before_login = " before login" if self.session is None else ""
            self.send(reply_error(None, exc.code, exc.message + before_login))
            self.close()
            return
        if self.session is None:
            self.edge.prelogin_activity(self, bool(payloads))
            if self.closing:
                return
        for payload in payloads:
            self._accept(payload)
            if self.closing:
                return
        self._pump()

    # ------------------------------------------------------------------ login state

    def logged_in(self, session: Session) -> None:
        self.session = session
        self.decoder.max_frame_bytes = self.edge.settings.max_frame_bytes
        self.outbound_limit = self.edge.settings.outbound_queue_bytes

    def logged_out(self) -> None:
        self.session = None
        self.decoder.max_frame_bytes = PRELOGIN_MAX_FRAME_BYTES
        # What was queued while logged in may still drain; nothing more piles up.
        queued = self.transport.get_write_buffer_size() if self.transport else 0
        self.outbound_limit = queued + PRELOGIN_OUTBOUND_QUEUE_BYTES
        # The socket may log in again: it gets the full login timeout from now, not
        # from when it was opened (else the sweeper would close it at once).
        self.opened_at = time.monotonic()

    # ------------------------------------------------------------------ requests

    def _accept(self, payload: bytes) -> None:
        try:
            msg = parse_payload(payload)
        except MessageError as exc:
            self.send(reply_error(None, exc.code, exc.message))
            return
        try:
            op, args = validate_request(msg)
        except MessageError as exc:
            extra = {"field": exc.field} if exc.field and exc.code == ErrorCode.BAD_REQUEST else {}
            self.send(reply_error(request_id_of(msg), exc.code, exc.message, **extra))
            return
        request_id, op_name = msg["id"], msg["op"]
        if op.service == "edge":
            self.send(self.edge.answer_locally(self, request_id, op_name))
            return
        self.backlog.append((request_id, op_name, op, args))

    def _pump(self) -> None:
        """Start queued requests while there is room; pause reading while there is not.

        A login or logout is a barrier: requests sent after it (pipelined) wait until it
        is done, so they run as the user it logged in, not as nobody.
        """
        limit = self.edge.settings.max_inflight_per_conn
        while self.backlog and self.inflight < limit and not self.closing and not self.barrier:
            request_id, op_name, op, args = self.backlog.popleft()
            if op.needs_login and self.session is None:
                self.send(reply_error(request_id, ErrorCode.NOT_AUTHENTICATED, "log in first"))
                continue
            self.barrier = op_name in SESSION_OPS
            self.inflight += 1
            task = asyncio.get_running_loop().create_task(self._run(request_id, op_name, op, args))
            self.tasks.add(task)
            task.add_done_callback(self._finished)
        should_pause = bool(self.backlog)
        if should_pause != self.paused and self.transport and not self.closing:
            self.paused = should_pause
            if should_pause:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    async def _run(self, request_id: Any, op_name: str, op: Op, args: dict[str, Any]) -> None:
        # The reply, then any pushes that must follow it (e.g. news saved for a login).
        for frame in await self.edge.dispatch(self, request_id, op_name, op, args):
            self.send(frame)

    def _finished(self, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        self.inflight -= 1
        if self.inflight == 0:
            self.barrier = False
        if not task.cancelled() and task.exception() is not None:
            logger.opt(exception=task.exception()).error("request task failed")
        self._pump()

    # ------------------------------------------------------------------ output

    def send(self, obj: dict[str, Any]) -> None:
        self.send_frame(encode_frame(obj))

    def send_frame(self, frame: bytes) -> None:
        if self.closing or self.transport is None:
            return
        self.transport.write(frame)
        if self.transport.get_write_buffer_size() > self.outbound_limit:
            # A client that does not read would make us buffer without bound: cut it.
            # It can log in again with its token and sync what it missed.
            logger.warning("disconnecting slow reader {} from {}", self.conn_id, self.ip)
            self.abort()

    def say_goodbye(self, code: str, message: str) -> None:
        """Tell the client why it is being disconnected, then close after the flush."""
        self.send(push("closing", code=code, message=message))
        self.close()

    def close(self) -> None:
        if self.transport and not self.closing:
            self.closing = True
            self.transport.close()
            if self.transport.get_write_buffer_size():
                asyncio.get_running_loop().call_later(CLOSE_FLUSH_S, self._abort_unflushed)

    def _abort_unflushed(self) -> None:
        if not self.lost:
            logger.info(
                "aborting {} from {}: its last replies were never read", self.conn_id, self.ip
            )
            self.abort()

    def abort(self) -> None:
        if self.transport:
            self.closing = True
            self.transport.abort()
