"""Typing indicators: checked like a message to the same conversation, pushed to whoever
would receive that message, never stored. The edge has already dropped renewals that
would change nothing for the others (services/tcp_edge/typing_hints.py).

A room member's hints skip the database for `typing_member_trust_s` (10 s) after their
membership was last checked here: a hint that was checked cost social ~650 µs of CPU (a
worker thread, a pooled connection and its ping, the select), more than storing a
message, and a typist renews every 3 s. The checks that are made go together, on a
connection of their own (store/members.py). Nothing is stored and a hint expires by itself,
so the most a member removed meanwhile can do is show as typing there that long
(docs/security.md).
"""

from __future__ import annotations

import time
from typing import Any

from chatroom.bus_contract import Control, room_topic, user_topic
from chatroom.config import Settings
from chatroom.errors import bad_request
from chatroom.protocol import TYPING_EXPIRES_MS, Event
from chatroom.service import Handler, RequestContext, in_thread
from services.social.handlers.access import find_user, me_of, member_room, not_direct, not_friends
from services.social.store import SocialStore
from services.social.store.rooms import RoomIdentity

# (room, user) pairs remembered at most; past it the memory starts afresh (each pair
# then costs one check again).
MEMBERSHIPS_REMEMBERED = 100_000


class TypingHandlers:
    def __init__(self, store: SocialStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self._checked: dict[tuple[int, int], float] = {}  # (room, user) -> trusted until

    def ops(self) -> dict[str, Handler]:
        return {"typing": self.typing}

    async def typing(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
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
            room = await self._member_room(ctx, args["room"], me.id)
            where = {"room": room.name, "room_id": room.id}
            # SENDER: whoever blocks me does not see me typing either.
            control = {Control.SENDER: me.id, Control.HINT: True}
            ctx.publish(room_topic(room.id), {**hint, **where, **control})
        else:
            peer_id = await in_thread(ctx, self._friend_id, me.id, args["to"])
            ctx.publish(user_topic(peer_id), {**hint, "direct": True})
        return {"forwarded": True}

    async def _member_room(self, ctx: RequestContext, name: str, user_id: int) -> RoomIdentity:
        """The room, if the user is a member (checked in the database at most every
        typing_member_trust_s per room and user); raises as room.send would."""
        room = self.store.cached_room(name)
        now = time.monotonic()
        member = False
        if room is not None:
            room = not_direct(room, name)
            if self._checked.get((room.id, user_id), 0.0) > now:
                return room
            # A room this process knows: checked together with the other hints'
            # checks, one statement on the checker's own connection (store/members.py).
            member = await self.store.member_checks.submit(room, user_id)
        if room is None or not member:
            # Not known here, or refused: the full check, which also says why not.
            room = await in_thread(ctx, member_room(name, user_id), self.store)
        if len(self._checked) >= MEMBERSHIPS_REMEMBERED:
            self._checked.clear()
        self._checked[(room.id, user_id)] = now + self.settings.typing_member_trust_s
        return room

    def _friend_id(self, me_id: int, name: str) -> int:
        """The friend's id; raises as dm.send would for anyone else."""
        with self.store.reading() as tx:
            peer = find_user(tx, name)
            if peer.id == me_id or not tx.are_friends(me_id, peer.id):
                raise not_friends(peer)
        return int(peer.id)
