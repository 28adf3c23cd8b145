"""The asyncio adapter of one client socket: it moves bytes between the socket and the
connection's sans-IO core (core.py) and carries out the core's actions.

It knows nothing of services: it hands each request the core starts to the edge's
dispatcher (as a task) and writes back whatever it is given. Everything the edge needs
of a connection is a method or a read-only property here.
"""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from loguru import logger

from chatroom.framing import encode_frame
from chatroom.ratelimit import address_key
from services.tcp_edge.core import (
    CLOSE_FLUSH_S,
    Abort,
    Action,
    Close,
    ConnectionCore,
    PauseReading,
    PreloginRead,
    Request,
    ResumeReading,
    Send,
    Session,
    Start,
    Subscribe,
    Unsubscribe,
)

if TYPE_CHECKING:
    from services.tcp_edge.server import Edge


class Connection(asyncio.Protocol):
    __slots__ = ("edge", "conn_id", "ip", "ip_key", "core", "transport", "tasks", "_open", "_lost")

    def __init__(self, edge: Edge, conn_id: str) -> None:
        self.edge = edge
        self.conn_id = conn_id
        self.ip = self.ip_key = "?"
        self.core = ConnectionCore(edge.limits, time.monotonic())
        self.transport: asyncio.Transport | None = None
        self.tasks: set[asyncio.Task] = set()
        self._open = False
        self._lost = False

    # ------------------------------------------------------------------ what the edge reads

    @property
    def session(self) -> Session | None:
        return self.core.session

    @property
    def is_open(self) -> bool:
        return self._open

    @property
    def queued_bytes(self) -> int:
        """Written to the socket and not yet sent."""
        return self.transport.get_write_buffer_size() if self._open and self.transport else 0

    @property
    def busy(self) -> bool:
        """A request is in progress."""
        return self.core.inflight > 0

    # ------------------------------------------------------------------ asyncio hooks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._open = True
        peer = transport.get_extra_info("peername")
        self.ip = peer[0] if peer else "?"
        self.ip_key = address_key(self.ip)
        self.edge.connection_opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._open = False
        self._lost = True
        self.core.lost()
        for task in self.tasks:
            task.cancel()
        self.edge.connection_closed(self)

    def data_received(self, data: bytes) -> None:
        self._apply(self.core.receive(data, time.monotonic()))
        if self._open:
            self._apply(self.core.pump())

    # ------------------------------------------------------------------ what the edge asks

    def send_frame(self, frame: bytes) -> bool:
        """Queue encoded frames (a fan-out push) for the client. False when they will not
        reach it: the connection is closing, or this write made it a slow reader."""
        if self._open and self.transport is not None:
            self.transport.write(frame)
            cut = self.core.wrote(self.transport.get_write_buffer_size())
            if cut:
                self.edge.slow_reader_cuts.inc()
                self._apply(cut)
                return False
            return True
        return False

    def say_goodbye(self, code: str, message: str) -> None:
        """Tell the client why it is being disconnected, then close after the flush."""
        self._apply(self.core.goodbye(code, message))

    def close(self) -> None:
        self._apply(self.core.close())

    def check_timeouts(self, now: float) -> None:
        self._apply(self.core.expired(now))

    def stop_reading(self) -> None:
        self._apply(self.core.stop_reading())

    def log_in(self, session: Session) -> None:
        self._apply(self.core.log_in(session))

    def end_session(self) -> Session | None:
        """End the session (it hears nothing more); return it, if there was one."""
        session = self.core.session
        self._apply(self.core.end_session())
        return session

    def log_out(self) -> None:
        unsent = self.transport.get_write_buffer_size() if self.transport else 0
        self._apply(self.core.log_out(time.monotonic(), unsent))

    def join_room(self, room_id: int) -> None:
        self._apply(self.core.join_room(room_id))

    def leave_room(self, room_id: int) -> None:
        self._apply(self.core.leave_room(room_id))

    # ------------------------------------------------------------------ actions

    def _apply(self, actions: list[Action]) -> None:
        # (Looked at only when something waits: _apply runs for every reply and read.)
        if (
            self._open
            and self.edge.delivery.has_waiting(self)
            and any(type(action) is Close for action in actions)
        ):
            # What waits for the next burst (the replies nobody waits for) goes first,
            # before a goodbye these actions send and before the close.
            self.edge.delivery.write_now(self)
        for action in actions:
            match action:
                case Send(frame):
                    self.send_frame(frame)
                case Close(reason):
                    if reason is not None:
                        logger.info("closing {} from {}: {}", self.conn_id, self.ip, reason)
                    if self._open and self.transport is not None:
                        self._open = False
                        self.transport.close()
                        if self.transport.get_write_buffer_size():
                            loop = asyncio.get_running_loop()
                            loop.call_later(CLOSE_FLUSH_S, self._abort_unflushed)
                case Abort(reason):
                    logger.warning("disconnecting {} {} from {}", reason, self.conn_id, self.ip)
                    if self.transport is not None:
                        self._open = False
                        self.transport.abort()
                case Start(request):
                    task = asyncio.get_running_loop().create_task(self._run(request))
                    self.tasks.add(task)
                    task.add_done_callback(partial(self._finished, request))
                case PauseReading():
                    if self._open and self.transport is not None:
                        self.transport.pause_reading()
                case ResumeReading():
                    if self._open and self.transport is not None:
                        self.transport.resume_reading()
                case Subscribe(topic):
                    self.edge.subscribe(topic, self)
                case Unsubscribe(topic):
                    self.edge.unsubscribe(topic, self)
                case PreloginRead(held_bytes, completed):
                    if self._open:
                        self.edge.prelogin_activity(self, held_bytes, completed)

    def _abort_unflushed(self) -> None:
        if not self._lost and self.transport is not None:
            logger.info(
                "aborting {} from {}: its last replies were never read", self.conn_id, self.ip
            )
            self.transport.abort()

    async def _run(self, request: Request) -> None:
        # The reply, then any pushes that must follow it (e.g. news saved for a login).
        replies = await self.edge.dispatch(self, request)
        if request.op.reply_may_wait and self._open:
            self.edge.delivery.write_soon(self, [encode_frame(reply) for reply in replies])
            return
        for frame in replies:
            self.send(frame)

    def send(self, obj: dict[str, Any]) -> None:
        self._apply([Send(encode_frame(obj))])

    def _finished(self, request: Request, task: asyncio.Task) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.opt(exception=task.exception()).error("request task failed")
        self._apply(self.core.finished(request))
