"""One client connection as a state machine without I/O: bytes and clock readings in,
actions out.

The core decodes frames, checks requests against the protocol, answers `ping` itself,
queues the rest and decides when each may start (a per-connection limit; a login or
logout is a barrier; a send waits for the one before it to the same conversation),
enforces the per-connection limits (frame sizes before and after
login, the login and idle timeouts, the slow-reader cap) and knows who is logged in and
which topics that session hears. What it decides comes back as actions (frozen
dataclasses, below) that the asyncio adapter (connection.py) carries out in order.
Nothing here touches a socket or a clock: tests/test_edge_core.py drives it with bytes
and numbers.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chatroom.bus_contract import room_topic, user_topic
from chatroom.config import Settings
from chatroom.framing import FrameDecoder, FrameError, encode_frame, parse_payload
from chatroom.names import name_key
from chatroom.protocol import (
    PRELOGIN_MAX_FRAME_BYTES,
    ErrorCode,
    MessageError,
    Op,
    closing_push,
    reply_error,
    reply_ok,
    request_id_of,
    validate_request,
)

# Unread replies a connection that has not logged in may leave the edge holding before it
# is cut as a slow reader: plenty for its few small replies (a ping's is 40 bytes, an
# error's under 1 KB), where the logged-in limit (CHAT_OUTBOUND_QUEUE_BYTES, 2 MiB) would
# let thousands of hostile connections that never read make the edge hold gigabytes.
PRELOGIN_OUTBOUND_QUEUE_BYTES = 16 * 1024
# How long a closed connection may take to read what is still queued for it; then it is
# aborted, so a peer that never reads cannot keep the memory and its address's slot.
CLOSE_FLUSH_S = 5.0


@dataclass(frozen=True)
class Limits:
    """What one connection may do, declared in one place (from Settings)."""

    max_frame_bytes: int  # after login; before it, PRELOGIN_MAX_FRAME_BYTES
    max_inflight: int  # requests running at once; beyond, reading pauses
    outbound_queue_bytes: int  # unsent bytes a client may leave us holding
    login_timeout_s: float
    idle_timeout_s: float

    @classmethod
    def from_settings(cls, s: Settings) -> Limits:
        return cls(
            max_frame_bytes=s.max_frame_bytes,
            max_inflight=s.max_inflight_per_conn,
            outbound_queue_bytes=s.outbound_queue_bytes,
            login_timeout_s=s.login_timeout_s,
            idle_timeout_s=s.idle_timeout_s,
        )


class Session:
    """Who is logged in on a connection, and the rooms they hear."""

    __slots__ = ("user_id", "username", "session_id", "room_ids")

    def __init__(self, user_id: int, username: str, session_id: int, room_ids: set[int]) -> None:
        self.user_id = user_id
        self.username = username
        self.session_id = session_id
        self.room_ids = room_ids

    def topics(self) -> list[bytes]:
        return [user_topic(self.user_id), *(room_topic(r) for r in self.room_ids)]


OrderKey = tuple[str, Any]


@dataclass(frozen=True)
class Request:
    """A valid request, ready for the edge's dispatcher."""

    request_id: Any
    op_name: str
    op: Op
    args: dict[str, Any]
    # Requests of one connection with the same key run one after another (order_key).
    order: OrderKey | None = None


def order_key(op: Op, args: dict[str, Any]) -> OrderKey | None:
    """What a request must stay in order with: its conversation (a room by name, a
    direct chat by the other person's name, as the service would resolve them) or the
    message it edits.

    Why the edge: sends that run at once may be stored in any order — social awaits a
    lookup for some and not others, and with several social replicas or buses they go
    different ways. Holding each until the previous one to the same place is answered
    keeps a connection's order in every topology; sends to different conversations
    still run side by side.
    """
    if op.ordered_by is None:
        return None
    fields = (op.ordered_by,) if isinstance(op.ordered_by, str) else op.ordered_by
    for field in fields:
        value = args.get(field)
        if value is not None:
            return (field, name_key(value.strip()) if isinstance(value, str) else value)
    return None


# --------------------------------------------------------------------------- actions


@dataclass(frozen=True)
class Send:
    frame: bytes  # one or more encoded frames


@dataclass(frozen=True)
class Close:
    """Close once what was sent is flushed. `reason` is for the log (None: the caller
    has logged why)."""

    reason: str | None = None


@dataclass(frozen=True)
class Abort:
    """Drop the socket now, unsent bytes and all."""

    reason: str


@dataclass(frozen=True)
class Start:
    request: Request


@dataclass(frozen=True)
class PauseReading:
    pass


@dataclass(frozen=True)
class ResumeReading:
    pass


@dataclass(frozen=True)
class Subscribe:
    topic: bytes


@dataclass(frozen=True)
class Unsubscribe:
    topic: bytes


@dataclass(frozen=True)
class PreloginRead:
    """A connection not logged in was read from: the edge's pre-login budget must hear
    how much it now holds of unfinished frames, and whether a request completed."""

    held_bytes: int
    completed: bool


Action = (
    Send | Close | Abort | Start | PauseReading | ResumeReading | Subscribe | Unsubscribe
) | PreloginRead


# --------------------------------------------------------------------------- the core


class ConnectionCore:
    __slots__ = (
        "limits",
        "wall_s",
        "decoder",
        "outbound_limit",
        "session",
        "opened_at",
        "last_seen",
        "inflight",
        "backlog",
        "paused",
        "barrier",
        "ordered",
        "closing",
    )

    def __init__(self, limits: Limits, now: float, wall_s: Callable[[], float] = time.time) -> None:
        self.limits = limits
        self.wall_s = wall_s  # the wall clock a ping's reply reports
        # Small frames until the connection has logged in (see log_in / log_out).
        self.decoder = FrameDecoder(PRELOGIN_MAX_FRAME_BYTES)
        # Unsent bytes beyond which the client is cut as a slow reader (see log_in).
        self.outbound_limit = PRELOGIN_OUTBOUND_QUEUE_BYTES
        self.session: Session | None = None
        self.opened_at = self.last_seen = now
        self.inflight = 0
        self.backlog: deque[Request] = deque()
        self.paused = False
        self.barrier = False
        # Conversations with a request running, each with the ones started after it
        # that wait their turn (they count as in flight: the same bound holds).
        self.ordered: dict[OrderKey, deque[Request]] = {}
        self.closing = False

    @property
    def held_bytes(self) -> int:
        """Bytes of unfinished frames held for this connection."""
        return self.decoder.buffered

    # ------------------------------------------------------------------ input

    def receive(self, data: bytes, now: float) -> list[Action]:
        """Bytes from the socket. Requests that may run come out of pump(), which the
        adapter calls next (after acting on these, one of which may close us)."""
        if self.closing:
            return []
        self.last_seen = now
        try:
            payloads = self.decoder.feed(data)
        except FrameError as exc:
            before_login = " before login" if self.session is None else ""
            return [
                Send(encode_frame(reply_error(None, exc.code, exc.message + before_login))),
                *self._close(Close(exc.code)),
            ]
        actions: list[Action] = []
        if self.session is None:
            actions.append(PreloginRead(self.decoder.buffered, bool(payloads)))
        for payload in payloads:
            reply = self._accept(payload)
            if reply is not None:
                actions.append(Send(encode_frame(reply)))
        return actions

    def _accept(self, payload: bytes) -> dict[str, Any] | None:
        """Queue a valid request; return the reply to send at once, if any."""
        try:
            msg = parse_payload(payload)
        except MessageError as exc:
            return reply_error(None, exc.code, exc.message)
        try:
            op, args = validate_request(msg)
        except MessageError as exc:
            extra = {"field": exc.field} if exc.field and exc.code == ErrorCode.BAD_REQUEST else {}
            return reply_error(request_id_of(msg), exc.code, exc.message, **extra)
        if op.service == "edge":  # ping: answered here, ahead of queued requests
            return reply_ok(msg["id"], time=int(self.wall_s() * 1000))
        self.backlog.append(Request(msg["id"], msg["op"], op, args, order_key(op, args)))
        return None

    def pump(self) -> list[Action]:
        """Start queued requests while there is room; pause reading while there is not.

        A login or logout is a barrier: requests sent after it (pipelined) wait until it
        is done, so they run as the user it logged in, not as nobody.
        """
        actions: list[Action] = []
        limit = self.limits.max_inflight
        while self.backlog and self.inflight < limit and not self.closing and not self.barrier:
            request = self.backlog.popleft()
            if request.op.needs_login and self.session is None:
                reply = reply_error(request.request_id, ErrorCode.NOT_AUTHENTICATED, "log in first")
                actions.append(Send(encode_frame(reply)))
                continue
            self.barrier = request.op.changes_session
            self.inflight += 1
            if request.order is not None:
                waiting = self.ordered.get(request.order)
                if waiting is not None:
                    waiting.append(request)  # started when the one before is answered
                    continue
                self.ordered[request.order] = deque()
            actions.append(Start(request))
        should_pause = bool(self.backlog)
        if should_pause != self.paused and not self.closing:
            self.paused = should_pause
            actions.append(PauseReading() if should_pause else ResumeReading())
        return actions

    def finished(self, request: Request) -> list[Action]:
        """A started request is done (its replies were sent)."""
        self.inflight -= 1
        actions: list[Action] = []
        if request.order is not None:
            waiting = self.ordered[request.order]
            if waiting and not self.closing:
                actions.append(Start(waiting.popleft()))
            else:
                self.inflight -= len(waiting)  # a closing connection starts nothing more
                del self.ordered[request.order]
        if self.inflight == 0:
            self.barrier = False
        return actions + self.pump()

    def stop_reading(self) -> list[Action]:
        """Shutting down: drop what was queued and read no more."""
        self.backlog.clear()
        return [] if self.closing else [PauseReading()]

    # ------------------------------------------------------------------ output and time

    def wrote(self, unsent_bytes: int) -> list[Action]:
        """The socket now holds `unsent_bytes`. A client that does not read would make
        us buffer without bound: cut it (it can log in again with its token and sync)."""
        if unsent_bytes > self.outbound_limit and not self.closing:
            return self._close(Abort("slow reader"))
        return []

    def expired(self, now: float) -> list[Action]:
        """The goodbye for a connection that did not log in, or went quiet, in time."""
        limits = self.limits
        if self.session is None and now - self.opened_at > limits.login_timeout_s:
            return self.goodbye(
                ErrorCode.LOGIN_TIMEOUT, f"log in within {limits.login_timeout_s:g} s"
            )
        if now - self.last_seen > limits.idle_timeout_s:
            return self.goodbye(
                ErrorCode.IDLE_TIMEOUT,
                f"nothing received for {limits.idle_timeout_s:g} s; send ping to stay connected",
            )
        return []

    def goodbye(self, code: str, message: str) -> list[Action]:
        """Tell the client why it is being disconnected, then close after the flush."""
        if self.closing:
            return []
        return [Send(encode_frame(closing_push(code, message))), *self._close(Close())]

    def close(self) -> list[Action]:
        return [] if self.closing else self._close(Close())

    def lost(self) -> None:
        """The socket is gone."""
        self.closing = True

    def _close(self, action: Close | Abort) -> list[Action]:
        self.closing = True
        return [action]

    # ------------------------------------------------------------------ session

    def log_in(self, session: Session) -> list[Action]:
        self.session = session
        self.decoder.max_frame_bytes = self.limits.max_frame_bytes
        self.outbound_limit = self.limits.outbound_queue_bytes
        return [Subscribe(topic) for topic in session.topics()]

    def end_session(self) -> list[Action]:
        """The session ends (logout, or the socket closed): it hears nothing more."""
        session, self.session = self.session, None
        return [] if session is None else [Unsubscribe(topic) for topic in session.topics()]

    def log_out(self, now: float, unsent_bytes: int) -> list[Action]:
        """Logged out, the socket stays open and may log in again: small frames again,
        the full login timeout from now, not from when it was opened, and the small
        outbound cap again (what was queued while logged in may still drain)."""
        actions = self.end_session()
        self.decoder.max_frame_bytes = PRELOGIN_MAX_FRAME_BYTES
        self.outbound_limit = unsent_bytes + PRELOGIN_OUTBOUND_QUEUE_BYTES
        self.opened_at = now
        return actions

    def join_room(self, room_id: int) -> list[Action]:
        session = self.session
        if session is None or room_id in session.room_ids:
            return []
        session.room_ids.add(room_id)
        return [Subscribe(room_topic(room_id))]

    def leave_room(self, room_id: int) -> list[Action]:
        session = self.session
        if session is None or room_id not in session.room_ids:
            return []
        session.room_ids.discard(room_id)
        return [Unsubscribe(room_topic(room_id))]
