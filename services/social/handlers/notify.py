"""Notification levels: room.notify (docs/protocol.md, Mentions and notification levels).

A user's level in a room says what their clients notify about there: every message
("all", the default), only messages that @mention them ("mentions"), or nothing
("none"). The server keeps it so every device of the user agrees (login snapshot and
sync carry it as each room's `notify`); it does not change what is delivered or
counted. Set by a member of the room (anyone for the lobby), checked in the write's
transaction; the user's other connections get a `room.notify` push.
"""

from __future__ import annotations

from typing import Any

from chatroom.bus_contract import Control, user_topic
from chatroom.config import Settings
from chatroom.errors import bad_request
from chatroom.protocol import NOTIFY_LEVELS, Event
from chatroom.service import Handler, RequestContext
from services.social.handlers.access import existing_room, not_direct, not_member
from services.social.store import SocialStore


class NotifyHandlers:
    def __init__(self, store: SocialStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def ops(self) -> dict[str, Handler]:
        return {"room.notify": self.room_notify}

    def room_notify(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        user_id = ctx.require_user()
        level = args["level"]
        if level not in NOTIFY_LEVELS:
            raise bad_request("level", f"choose a level: one of {', '.join(NOTIFY_LEVELS)}")
        name = args["room"]
        with self.store.transaction() as tx:
            room = not_direct(existing_room(tx.room_named(name), name), name)
            if not tx.is_member(room, user_id):
                raise not_member(room)
            changed = tx.set_notify_level(user_id, room.id, level)
        reply = {"room": room.name, "room_id": room.id, "level": level}
        if changed:
            event = {"event": Event.ROOM_NOTIFY, **reply, Control.ORIGIN: ctx.conn}
            ctx.publish(user_topic(user_id), event)
        return reply
