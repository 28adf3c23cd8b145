"""Running a service's handlers in-process: a store on a temp SQLite file, no ZeroMQ.

A handler is called as the runtime calls it, with a RequestContext saying who asks;
the events it queued (ctx.events) are what the runtime would publish after it returns.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, insert, update

from chatroom.config import Settings
from chatroom.config_env import load
from chatroom.service import RequestContext
from chatroom.storage.db import make_engine
from chatroom.storage.migrate import upgrade
from chatroom.storage.schema import users


def sqlite_settings(tmp_path: Path, **env: str) -> Settings:
    """Settings on a fresh SQLite file; `env` as CHAT_* variables (without CHAT_)."""
    environ = {"CHAT_DB_URL": f"sqlite:///{tmp_path}/chat.db"}
    environ.update({f"CHAT_{name.upper()}": value for name, value in env.items()})
    return load(environ)


def sqlite_engine(settings: Settings) -> Engine:
    engine = make_engine(settings)
    upgrade(engine)
    return engine


def as_user(user_id: int | None, username: str | None = None, **fields: Any) -> RequestContext:
    """Who asks, as the edge would say it (no user: before a login)."""
    fields.setdefault("conn", f"conn-{user_id}")
    fields.setdefault("edge", "edge-1")
    fields.setdefault("ip", "192.0.2.1")
    return RequestContext(op="test", rid="t:1", user_id=user_id, username=username, **fields)


def call(handler: Callable[..., Any], ctx: RequestContext, args: dict[str, Any]) -> Any:
    """The handler's reply; a coroutine handler is run on an event loop of its own."""
    ctx.events.clear()
    if inspect.iscoroutinefunction(handler):
        return asyncio.run(handler(ctx, args))
    return handler(ctx, args)


def events_to(ctx: RequestContext, topic: bytes) -> list[dict[str, Any]]:
    return [event for t, event in ctx.events if t == topic]


def add_users(engine: Engine, *names: str) -> list[RequestContext]:
    """Accounts (as auth would have registered them, ids 1, 2, ...), each as the
    context of a logged-in connection of theirs."""
    people = [as_user(user_id, name) for user_id, name in enumerate(names, start=1)]
    with engine.begin() as conn:
        for ctx in people:
            name = ctx.username
            row = {"id": ctx.user_id, "username": name, "username_key": name, "created_at": 0}
            conn.execute(insert(users).values(**row, password_hash="-", disabled=False))
    return people


def mark_erased(engine: Engine, user_id: int) -> None:
    """What auth's admin.erase does first, before social and media erase their data."""
    with engine.begin() as conn:
        conn.execute(update(users).where(users.c.id == user_id).values(erased_at=1, disabled=True))
