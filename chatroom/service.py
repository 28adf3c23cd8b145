"""What a backend service is made of, as its handlers see it (no ZeroMQ here).

A handler is ``handler(ctx, args) -> dict`` (or a coroutine function returning one):
``ctx`` is the RequestContext the edge filled in (who is asking, the deadline) and where
the handler queues its events. A Service is a service's table of handlers, its repeated
Jobs and its health check; chatroom.runtime runs it on the bus. The deadline rule: a
request whose deadline has passed is not started (DeadlinePassed), whether it waited for
a worker thread (start_unless_expired) or is an async handler's blocking step (in_thread).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from chatroom.errors import ServiceError
from chatroom.protocol import ErrorCode


@dataclass
class RequestContext:
    """Who is asking. The edge fills it from the connection's session, never from the
    client's request, so a client cannot act as another user."""

    op: str
    rid: str
    user_id: int | None = None
    username: str | None = None
    session_id: int | None = None
    ip: str | None = None
    edge: str | None = None
    conn: str | None = None
    deadline_ms: int | None = None  # when the edge stops waiting (wall clock, ms)
    events: list[tuple[bytes, dict[str, Any]]] = field(default_factory=list)

    @classmethod
    def from_envelope(cls, body: dict[str, Any]) -> RequestContext:
        ctx = body.get("ctx") or {}
        deadline = body.get("deadline_ms")
        return cls(
            op=body["op"],
            rid=str(body.get("rid")),
            user_id=ctx.get("user_id"),
            username=ctx.get("username"),
            session_id=ctx.get("session_id"),
            ip=ctx.get("ip"),
            edge=ctx.get("edge"),
            conn=ctx.get("conn"),
            deadline_ms=deadline if isinstance(deadline, int) else None,
        )

    def publish(self, topic: bytes, event: dict[str, Any]) -> None:
        """Queue an event; the runtime publishes it after the handler has returned,
        i.e. after its transaction committed."""
        self.events.append((topic, event))

    def require_user(self) -> int:
        if self.user_id is None:
            raise ServiceError(ErrorCode.NOT_AUTHENTICATED, "log in first")
        return self.user_id

    def require_session(self) -> int:
        if self.session_id is None:
            raise ServiceError(ErrorCode.NOT_AUTHENTICATED, "log in first")
        return self.session_id

    def require_edge(self) -> str:
        """The edge an internal op came from (only edges send those)."""
        if self.edge is None:
            raise ServiceError(ErrorCode.BAD_REQUEST, "an edge's op without its edge")
        return self.edge

    def require_conn(self) -> str:
        """The client connection an edge's per-session op is about."""
        if self.conn is None:
            raise ServiceError(ErrorCode.BAD_REQUEST, "an edge's op without its connection")
        return self.conn


T = TypeVar("T")
Handler = Callable[[RequestContext, dict[str, Any]], Any]  # a dict, or a coroutine of one


@dataclass
class Job:
    """Background work a service repeats, e.g. expiring the sessions of a dead edge."""

    name: str
    interval_s: float
    run: Callable[[RequestContext], None]


@dataclass
class Service:
    handlers: dict[str, Handler]
    jobs: list[Job] = field(default_factory=list)
    # Blocking check run for each health ping (e.g. SELECT 1): raises if unhealthy.
    health_check: Callable[[], None] | None = None


class DeadlinePassed(Exception):
    """A request waited for a worker thread until after its deadline."""


def start_unless_expired(handler: Handler, ctx: RequestContext | None, args: dict) -> Any:
    # The deadline is checked on receipt, but a request can then wait in the thread
    # pool's queue behind slow ones (e.g. while the database hangs). By the time a
    # thread is free the edge has answered service_unavailable: doing it now could only
    # surprise the user (an account they were told was not created, a late duplicate).
    if ctx is None:  # a health check
        return handler(ctx, args)  # type: ignore[arg-type]
    if ctx.deadline_ms is not None and ctx.deadline_ms < time.time() * 1000:
        raise DeadlinePassed
    return handler(ctx, args)


async def in_thread(ctx: RequestContext, fn: Callable[..., T], *args: Any) -> T:
    """An async handler's blocking step (asyncio.to_thread, on the runtime's pool), not
    started once the request's deadline has passed: the same rule as a plain handler
    waiting in the pool's queue (start_unless_expired)."""

    def unless_expired() -> T:
        if ctx.deadline_ms is not None and ctx.deadline_ms < time.time() * 1000:
            raise DeadlinePassed
        return fn(*args)

    return await asyncio.to_thread(unless_expired)
