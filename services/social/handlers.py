"""Social handlers: sessions (what a logged-in connection hears), rooms and messages."""

from __future__ import annotations

from typing import Any

from chatroom.services.social import rooms
from loguru import logger
from sqlalchemy import Engine

from chatroom.config import Settings
from chatroom.runtime import RequestContext, room_topic


class SocialHandlers:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    def table(self) -> dict[str, Any]:
        return {
            "session.open": self.session_open,
            "session.close": self.session_close,
            "room.send": self.room_send,
            "room.history": self.room_history,
        }

    def session_open(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """Called by the edge after a login: the snapshot a new session starts from."""
        user_id = ctx.require_user()
        with self.engine.connect() as conn:
            return {"rooms": rooms.rooms_of(conn, user_id)}

    def session_close(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        ctx.require_user()
        return {}

    def room_send(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        user_id = ctx.require_user()
        rooms.check_text(args["text"], self.settings.max_text_chars)
        message, is_new = rooms.store_message(
            self.engine, args["room"], user_id, args["text"], args.get("client_id")
        )
        if is_new:
            logger.info(
                "stored message {} seq {} in room {} ({} chars)",
                message["id"],
                message["seq"],
                message["room_id"],
                len(message["text"]),
            )
            ctx.publish(
                room_topic(message["room_id"]),
                {"event": "message", **message, "_origin": ctx.conn},
            )
        return {"message": message}

    def room_history(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        user_id = ctx.require_user()
        limit = min(args.get("limit", 50), self.settings.history_page_max)
        return rooms.history(self.engine, args["room"], user_id, args.get("before"), limit)
