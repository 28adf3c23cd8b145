"""Read markers and read receipts: read.mark, read.receipts (docs/protocol.md, Read
markers).

A marker is the seq of the last message a user has read in a conversation; it only
moves forward. Marking is authorised in the write's transaction: a room's member (anyone
for the lobby), or one of the two people of a direct chat (an ex-friend too: they still
read what was said). The user's other connections get a `read` push; in a direct chat
whose two people both share receipts, the other person gets a `read.receipt`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from chatroom.bus_contract import Control, user_topic
from chatroom.config import Settings
from chatroom.errors import ServiceError, bad_request
from chatroom.protocol import ErrorCode, Event
from chatroom.service import Handler, RequestContext
from services.social.handlers.access import (
    existing_room,
    find_user,
    me_of,
    not_direct,
    not_member,
    user_ref,
)
from services.social.store import SocialStore
from services.social.store.queries import Tx
from services.social.store.rooms import direct_name


class Conversation(NamedTuple):
    id: int
    name: str
    last_seq: int
    peer: Any  # the other person (id, username) of a direct chat; None for a room


def no_conversation_with(peer: Any) -> ServiceError:
    """dm.history's answer for a pair that never wrote (a stranger, or yourself)."""
    return ServiceError(ErrorCode.NOT_FOUND, f"no messages with {peer.username} yet")


def conversation_to_mark(tx: Tx, user_id: int, args: dict[str, Any]) -> Conversation:
    """The conversation `room` or `with` names, if the user may mark it (on the write's
    transaction). A non-member is refused before the seq is looked at, so nothing about
    a room they are not in (how many messages it has) can be learned by marking."""
    room_name, peer_name = args.get("room"), args.get("with")
    if (room_name is None) == (peer_name is None):
        raise bad_request("room", "name the conversation: either 'room' or 'with', not both")
    if room_name is not None:
        room = not_direct(existing_room(tx.room_named(room_name), room_name), room_name)
        if not tx.is_member(room, user_id):
            raise not_member(room)
        return Conversation(room.id, room.name, room.last_seq, None)
    peer = find_user(tx, str(peer_name))
    room = tx.room_named(direct_name(user_id, peer.id)) if peer.id != user_id else None
    if room is None:
        raise no_conversation_with(peer)
    return Conversation(room.id, room.name, room.last_seq, peer)


class ReadHandlers:
    def __init__(self, store: SocialStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def ops(self) -> dict[str, Handler]:
        return {"read.mark": self.read_mark, "read.receipts": self.read_receipts}

    def read_mark(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        me = me_of(ctx)
        seq = args["seq"]
        with self.store.transaction() as tx:
            conv = conversation_to_mark(tx, me.id, args)
            if seq > conv.last_seq:
                raise bad_request(
                    "seq", f"there is no message {seq} here yet (the last is {conv.last_seq})"
                )
            marker, moved = tx.advance_marker(me.id, conv.id, seq)
            unread = tx.unread_of(
                me.id, conv.id, marker, conv.last_seq, direct=conv.peer is not None
            )
            receipts = (
                moved and conv.peer is not None and len(tx.receipts_on([me.id, conv.peer.id])) == 2
            )
        reply: dict[str, Any] = {"room": conv.name, "room_id": conv.id, "seq": marker}
        if conv.peer is not None:
            reply["with"] = user_ref(conv.peer)
        reply.update(unread.fields())
        del reply["read_seq"]  # it is `seq` here
        if moved:
            ctx.publish(user_topic(me.id), {"event": Event.READ, **reply, Control.ORIGIN: ctx.conn})
        if receipts:
            receipt = {
                "event": Event.READ_RECEIPT,
                "room": conv.name,
                "room_id": conv.id,
                "user": user_ref(me),
                "seq": marker,
            }
            ctx.publish(user_topic(conv.peer.id), receipt)
        return reply

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
