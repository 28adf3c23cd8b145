"""Typing indicators: checked like a message to the same conversation, pushed to whoever
would receive that message, never stored. The edge has already dropped renewals that
would change nothing for the others (services/tcp_edge/typing_hints.py)."""

from __future__ import annotations

from typing import Any

from chatroom.bus_contract import Control, room_topic, user_topic
from chatroom.config import Settings
from chatroom.errors import bad_request
from chatroom.protocol import TYPING_EXPIRES_MS, Event
from chatroom.service import Handler, RequestContext
from services.social.handlers.access import find_user, me_of, member_room, not_friends
from services.social.store import SocialStore


class TypingHandlers:
    def __init__(self, store: SocialStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def ops(self) -> dict[str, Handler]:
        return {"typing": self.typing}

    def typing(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        me = me_of(ctx)
        if ("room" in args) == ("to" in args):
            raise bad_request("room", "name either a room ('room') or a friend ('to'), not both")
        hint = {
            "event": Event.TYPING,
            # One hint; the edge merges a busy room's into one push (Control.HINT).
            "hints": [{"user": {"id": me.id, "username": me.username}, "on": args["on"]}],
            "expires_ms": TYPING_EXPIRES_MS,
            Control.ORIGIN: ctx.conn,
        }
        if "room" in args:
            room = member_room(args["room"], me.id)(self.store)
            where = {"room": room.name, "room_id": room.id}
            # SENDER: whoever blocks me does not see me typing either.
            control = {Control.SENDER: me.id, Control.HINT: me.id}
            ctx.publish(room_topic(room.id), {**hint, **where, **control})
        else:
            with self.store.reading() as tx:
                peer = find_user(tx, args["to"])
                if peer.id == me.id or not tx.are_friends(me.id, peer.id):
                    raise not_friends(peer)
            ctx.publish(user_topic(peer.id), {**hint, "direct": True})
        return {"forwarded": True}
