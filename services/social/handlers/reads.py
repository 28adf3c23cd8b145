"""Read markers and read receipts: read.mark, read.receipts (docs/protocol.md, Read
markers).

A marker is the seq of the last message a user has read in a conversation; it only
moves forward. Marking is authorised in the write's transaction: a room's member (anyone
for the lobby), or one of the two people of a direct chat (an ex-friend too: they still
read what was said). The user's other connections get a `read` push; in a direct chat
whose two people both share receipts, the other person gets a `read.receipt`.
"""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

from loguru import logger
from sqlalchemy.exc import OperationalError

from chatroom.bus_contract import Control, InternalOp, user_topic
from chatroom.config import Settings
from chatroom.errors import ServiceError, bad_request, database_unavailable, internal_error
from chatroom.protocol import ErrorCode, Event
from chatroom.service import Handler, RequestContext, in_thread
from services.social.handlers.access import (
    direct_with_id,
    existing_room,
    existing_user,
    me_of,
    no_such_room,
    not_direct,
    not_member,
    user_ref,
)
from services.social.store import SocialStore
from services.social.store.batch_sql import NotMember
from services.social.store.marks import Marked, MarkRequest, RoomGone, SeqAhead
from services.social.store.rooms import RoomIdentity, direct_name


def no_conversation_with(peer: Any) -> ServiceError:
    """dm.history's answer for a pair that never wrote (a stranger, or yourself)."""
    return ServiceError(ErrorCode.NOT_FOUND, f"no messages with {peer.username} yet")


class Target(NamedTuple):
    """The conversation a read.mark names: its room, and the other person of a direct
    chat (None for a room)."""

    room: RoomIdentity
    peer: Any


class ReadHandlers:
    def __init__(self, store: SocialStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def ops(self) -> dict[str, Handler]:
        return {
            "read.mark": self.read_mark,
            InternalOp.READ_MARKS: self.read_marks,
            "read.receipts": self.read_receipts,
        }

    async def read_mark(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        me = me_of(ctx)
        room, peer = target = await self._target(ctx, me.id, args)
        # Authorised, moved and counted in the batch's transaction (store/marks.py).
        try:
            marked = await self.store.mark_read(
                me.id, room.id, args["seq"], None if peer is None else peer.id
            )
        except (NotMember, RoomGone, SeqAhead) as exc:
            raise _refusal(exc, room, args["seq"]) from None
        return self._answer(ctx, me, target, marked)

    async def read_marks(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """Many users' read.marks from one edge (services/tcp_edge/read_marks.py), each
        answered as read_mark answers it, its own error included, all queued as one
        database batch. The edge filled each one's ctx from its connection's session, as
        for any op. Never raises for one mark: the others' commits and pushes stand."""
        items = args["marks"]
        asks = [
            RequestContext.from_envelope({"op": "read.mark", "rid": ctx.rid, "ctx": item["ctx"]})
            for item in items
        ]
        found = await asyncio.gather(
            *(
                self._who_and_where(ask, item["args"])
                for ask, item in zip(asks, items, strict=True)
            ),
            return_exceptions=True,
        )
        ready = {i: f for i, f in enumerate(found) if not isinstance(f, BaseException)}
        queued = self.store.marks.submit_many(
            [
                MarkRequest(me.id, target.room.id, items[i]["args"]["seq"], _id_of(target.peer))
                for i, (me, target) in ready.items()
            ]
        )
        outcomes = await asyncio.gather(*queued, return_exceptions=True)
        marked = dict(zip(ready, outcomes, strict=True))
        answers: list[dict[str, Any]] = []
        for i, ask in enumerate(asks):
            looked_up = found[i]
            if isinstance(looked_up, BaseException):
                answers.append({"ok": False, "error": _as_service_error(looked_up).to_dict()})
                continue
            me, target = looked_up
            outcome = marked[i]
            if isinstance(outcome, (NotMember, RoomGone, SeqAhead)):
                outcome = _refusal(outcome, target.room, items[i]["args"]["seq"])
            if isinstance(outcome, BaseException):
                answers.append({"ok": False, "error": _as_service_error(outcome).to_dict()})
                continue
            answers.append({"ok": True, "result": self._answer(ask, me, target, outcome)})
            ctx.events.extend(ask.events)
        return {"marks": answers}

    async def _who_and_where(self, ctx: RequestContext, args: dict[str, Any]) -> tuple[Any, Target]:
        me = me_of(ctx)
        return me, await self._target(ctx, me.id, args)

    async def _target(self, ctx: RequestContext, me_id: int, args: dict[str, Any]) -> Target:
        """The conversation a mark names, from memory or else the database."""
        named = [field for field in ("room", "with", "with_id") if field in args]
        if len(named) != 1:
            raise bad_request(
                "room", "name the conversation: one of 'room', 'with' or 'with_id', no more"
            )
        if named == ["with_id"]:  # rare (an erased account's chat): no memory for it
            return Target(*await in_thread(ctx, direct_with_id, self.store, me_id, args["with_id"]))
        room_name, peer_name = args.get("room"), args.get("with")
        target = self._remembered(me_id, room_name, peer_name)
        if target is None:
            target = await in_thread(ctx, self._look_up, me_id, room_name, peer_name)
        return target

    def _answer(self, ctx: RequestContext, me: Any, target: Target, marked: Marked) -> dict:
        """The reply to one mark; the pushes it causes, queued on `ctx`."""
        room, peer = target
        reply: dict[str, Any] = {"room": marked.room_name, "room_id": room.id, "seq": marked.marker}
        if peer is not None:
            reply["with"] = user_ref(peer)
        reply.update(marked.unread.fields())
        del reply["read_seq"]  # it is `seq` here
        if marked.moved and marked.elsewhere:  # the user's other sessions, if any
            ctx.publish(user_topic(me.id), {"event": Event.READ, **reply, Control.ORIGIN: ctx.conn})
        if marked.receipts:
            receipt = {
                "event": Event.READ_RECEIPT,
                "room": marked.room_name,
                "room_id": room.id,
                "user": user_ref(me),
                "seq": marked.marker,
            }
            ctx.publish(user_topic(peer.id), receipt)
        return reply

    def _remembered(
        self, me_id: int, room_name: str | None, peer_name: str | None
    ) -> Target | None:
        """The conversation from this process's memory, without the database (None:
        not all of it is remembered). Rooms and users are never renamed; a room deleted
        since is caught in the batch."""
        if room_name is not None:
            room = self.store.cached_room(room_name)
            return None if room is None else Target(not_direct(room, room_name), None)
        peer = self.store.cached_user(str(peer_name))
        if peer is None or peer.id == me_id:
            return None
        room = self.store.cached_direct_room(me_id, peer.id)
        return None if room is None else Target(room, peer)

    def _look_up(self, me_id: int, room_name: str | None, peer_name: str | None) -> Target:
        """The conversation from the database (remembered for the next time); raises
        not_found for a room or person that does not exist, or a pair that never wrote."""
        with self.store.reading() as tx:
            if room_name is not None:
                room = self.store.room_identity_on(tx, room_name)
                return Target(not_direct(existing_room(room, room_name), room_name), None)
            peer = existing_user(self.store.user_named(tx, str(peer_name)), str(peer_name))
            found = (
                self.store.room_identity_on(tx, direct_name(me_id, peer.id))
                if peer.id != me_id
                else None
            )
        if found is None:
            raise no_conversation_with(peer)
        return Target(found, peer)

    def read_receipts(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """Turn sharing one's read markers in direct chats on or off. Turned on, the
        reply lists the markers of the people who share theirs too (the client shows
        them at once); they see this user's at their next sync or login, or when it
        moves."""
        user_id = ctx.require_user()
        enabled = args["enabled"]
        with self.store.transaction() as tx:
            changed = tx.set_receipts(user_id, enabled)
            shown = []
            if enabled:
                direct = tx.direct_conversations_of_many([user_id])[user_id]
                convs = {user_id: [(d["id"], d["last_seq"], d["with"]["id"]) for d in direct]}
                states = tx.read_states(convs)[user_id]
                shown = [
                    {"room_id": d["id"], "with": d["with"], "seq": states[d["id"]]["peer_read_seq"]}
                    for d in direct
                    if "peer_read_seq" in states[d["id"]]
                ]
        if changed:
            event = {"event": Event.READ_RECEIPTS, "enabled": enabled, Control.ORIGIN: ctx.conn}
            ctx.publish(user_topic(user_id), event)
        return {"enabled": enabled, "receipts": shown}


def _id_of(peer: Any) -> int | None:
    return None if peer is None else int(peer.id)


def _refusal(exc: Exception, room: RoomIdentity, seq: int) -> ServiceError:
    """What a mark the batch refused tells its client."""
    if isinstance(exc, NotMember):
        return not_member(room)
    if isinstance(exc, RoomGone):
        return no_such_room(room.name)
    assert isinstance(exc, SeqAhead)
    return bad_request("seq", f"there is no message {seq} here yet (the last is {exc.last_seq})")


def _as_service_error(exc: BaseException) -> ServiceError:
    """One mark's failure for its client: a refusal as it is, the database as
    service_unavailable (the next mark carries a later seq anyway), else internal."""
    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, OperationalError):
        logger.warning("a read mark failed: database unavailable ({})", exc.orig)
        return database_unavailable()
    logger.opt(exception=exc).error("a read mark failed")
    return internal_error()
