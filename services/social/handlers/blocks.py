"""Blocking: block.add, block.remove, block.list (docs/protocol.md, Blocking; what it
hides and what it cannot: docs/security.md, Blocking).

A block is a row (blocker, blocked) written holding both users' profile locks, like
every friend operation of the pair, so a friend request or an accept racing it runs
before or after it, never between its check and its write. Blocking ends a friendship
(both are told friend.removed, as for friend.remove: the friendship's end is visible
anyway, the block is not) and drops pending requests between the two. The blocker's
sessions get block.added / block.removed, whose control field tells their edges to
start or stop skipping the blocked user's room events for them.
"""

from __future__ import annotations

from typing import Any

from chatroom.bus_contract import Control
from chatroom.config import Settings
from chatroom.errors import ServiceError, bad_request
from chatroom.protocol import ErrorCode, Event
from chatroom.service import Handler, RequestContext
from chatroom.storage.db import now_ms
from services.social.handlers.access import user_ref
from services.social.handlers.friends import UserEvents, run_pair_action
from services.social.store import SocialStore
from services.social.store.queries import Tx


class BlockHandlers:
    def __init__(self, store: SocialStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def ops(self) -> dict[str, Handler]:
        return {
            "block.add": self.block_add,
            "block.remove": self.block_remove,
            "block.list": self.block_list,
        }

    def block_add(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        action = _Block(self.settings.max_blocks, ctx.conn)
        return run_pair_action(self.store, ctx, action, args["username"])

    def block_remove(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        return run_pair_action(self.store, ctx, _Unblock(ctx.conn), args["username"])

    def block_list(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        user_id = ctx.require_user()
        with self.store.reading() as tx:
            return {"blocked": tx.blocked_lists([user_id])[user_id]}


class _Block:
    def __init__(self, max_blocks: int, origin: str | None) -> None:
        self.max_blocks, self.origin = max_blocks, origin

    def __call__(self, tx: Tx, me: Any, other: Any) -> tuple[dict[str, Any], UserEvents]:
        if other.id == me.id:
            raise bad_request("username", "you cannot block yourself")
        if tx.blocks_user(me.id, other.id):
            # Blocking twice is one block: the same answer, nothing pushed again.
            since = next(
                b["since"] for b in tx.blocked_lists([me.id])[me.id] if b["id"] == other.id
            )
            return {"user": user_ref(other), "since": since}, []
        count = tx.block_count(me.id)
        if count >= self.max_blocks:
            raise ServiceError(
                ErrorCode.LIMIT_REACHED,
                f"you have blocked {count} users, the most allowed; unblock some first",
            )
        now = now_ms()
        tx.block(me.id, other.id, now)
        tx.drop_pending_requests(me.id, other.id)
        entry = {"id": other.id, "username": other.username, "since": now}
        events: UserEvents = [
            (
                me.id,
                {
                    "event": Event.BLOCK_ADDED,
                    "user": entry,
                    Control.BLOCK: other.id,
                    Control.ORIGIN: self.origin,
                },
            )
        ]
        if tx.unfriend(me.id, other.id):
            # As friend.remove tells it: the friendship's end shows anyway (the friend
            # list, presence); nothing says it was a block.
            events += [
                (other.id, {"event": Event.FRIEND_REMOVED, "user": user_ref(me)}),
                (me.id, {"event": Event.FRIEND_REMOVED, "user": user_ref(other)}),
            ]
        return {"user": user_ref(other), "since": now}, events


class _Unblock:
    def __init__(self, origin: str | None) -> None:
        self.origin = origin

    def __call__(self, tx: Tx, me: Any, other: Any) -> tuple[dict[str, Any], UserEvents]:
        if not tx.unblock(me.id, other.id):
            raise ServiceError(ErrorCode.NOT_FOUND, f"you have not blocked {other.username}")
        # Requests they sent while blocked were never shown: they go, unseen, rather than
        # surface now as if just sent.
        tx.drop_pending_requests(me.id, other.id)
        event = {
            "event": Event.BLOCK_REMOVED,
            "user": user_ref(other),
            Control.UNBLOCK: other.id,
            Control.ORIGIN: self.origin,
        }
        return {"user": user_ref(other)}, [(me.id, event)]
