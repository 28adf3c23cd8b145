"""Editing and deleting messages (message.edit, message.delete).

Each is a new sequenced event in the message's conversation (store/edits.py): pushed
to the others live (`message.edited`, `message.deleted`) and replayed by `sync`, while
the message itself is changed in the same transaction, so history shows it as it is now.

Who may (docs/security.md, Authorisation), checked in the write's transaction after
the room's row is locked:
- only someone who can read the conversation finds the message: anyone else gets
  not_found, the answer for an id that does not exist (ids are not probed this way);
- only its author changes it (forbidden for the others), but a room's moderators and
  owners delete the messages of those ranked below them (`moderator_may_delete`: a
  moderator a member's, an owner a moderator's too; never an equal's), and the delete
  is also a row of the room's audit trail;
- an edit within CHAT_EDIT_WINDOW_S of sending, and, in a direct chat, only while the
  two are friends (an edit adds words, like a send); a delete at any time, an
  ex-friend's too (taking back one's own words adds nothing);
- a deleted message is gone: editing or deleting it again is not_found.

Mentions (docs/protocol.md, Mentions) are the message's as sent: an edit that adds an
@name neither notifies nor counts (nobody is paged by a correction, and an edit cannot
be used to page a room after the fact); a delete removes the message's mentions.
"""

from __future__ import annotations

from typing import Any

from loguru import logger

from chatroom.bus_contract import Control, room_topic, user_topic
from chatroom.config import Settings
from chatroom.errors import ServiceError
from chatroom.protocol import ErrorCode, Event
from chatroom.service import Handler, RequestContext
from chatroom.storage.db import now_ms
from services.social.handlers.access import RANKS, check_text, me_of, rank_of
from services.social.store import SocialStore
from services.social.store.edits import DELETE, EDIT, Target
from services.social.store.queries import Tx
from services.social.store.rooms import DIRECT, MODERATOR, RoomIdentity


def no_such_message(message_id: int) -> ServiceError:
    return ServiceError(ErrorCode.NOT_FOUND, f"there is no message {message_id} you can see")


def moderator_may_delete(tx: Tx, target: Target, user_id: int) -> bool:
    """Whether `user_id` may delete someone else's message as a moderator of its room:
    they rank moderator or above there, and above its author (direct chats have no
    roles)."""
    if target.room_kind == DIRECT:
        return False
    room = RoomIdentity(target.room_id, target.room_name, target.room_kind)
    mine = rank_of(tx, room, user_id)
    return mine >= RANKS[MODERATOR] and rank_of(tx, room, target.sender_id) < mine


def change_of(
    target: Target, kind: str, event_id: int, seq: int, by: dict[str, Any], now: int
) -> dict[str, Any]:
    """The reply and push fields of an edit or delete event (an edit adds its text)."""
    change: dict[str, Any] = {
        "id": event_id,
        "room": target.room_name,
        "room_id": target.room_id,
        "seq": seq,
        "kind": kind,
        "target": target.id,
        "from": by,
        "ts": now,
    }
    if kind == DELETE:
        change["deleted"] = True
    return change


def publish_change(
    ctx: RequestContext, change: dict[str, Any], peer: dict[str, Any] | None, author_id: int
) -> None:
    """Push an edit or delete to whoever sees its conversation: the room, or in a direct
    chat the other person and the author's other sessions (`change` gains "to")."""
    name = Event.MESSAGE_EDITED if change["kind"] == EDIT else Event.MESSAGE_DELETED
    if peer is None:
        # The sender: connections whose user blocks them do not hear it (blocking).
        event = {"event": name, **change, Control.ORIGIN: ctx.conn, Control.SENDER: author_id}
        ctx.publish(room_topic(change["room_id"]), event)
        return
    change["to"] = peer
    event = {"event": name, **change, "direct": True, Control.ORIGIN: ctx.conn}
    ctx.publish(user_topic(peer["id"]), event)
    ctx.publish(user_topic(author_id), event)


class EditHandlers:
    def __init__(self, store: SocialStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def ops(self) -> dict[str, Handler]:
        return {"message.edit": self.message_edit, "message.delete": self.message_delete}

    def message_edit(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        check_text(args["text"], self.settings.max_text_chars)
        return {"change": self._change(ctx, args["message"], EDIT, args["text"])}

    def message_delete(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        return {"change": self._change(ctx, args["message"], DELETE)}

    def _change(
        self, ctx: RequestContext, message_id: int, kind: str, text: str = ""
    ) -> dict[str, Any]:
        me = me_of(ctx)
        with self.store.reading() as tx:
            found = tx.message_target(message_id)  # which room to lock
        if found is None:
            raise no_such_message(message_id)
        with self.store.transaction() as tx:
            seq = tx.next_seq(found.room_id)  # the room's row is locked from here on
            target = tx.message_target(message_id, lock=True)
            assert target is not None  # messages are never removed, only emptied
            peer = self._authorise(tx, target, me.id, kind)
            now = now_ms()
            event_id = tx.change_message(target, kind, me.id, seq, now, text)
            if target.sender_id != me.id:  # a moderator's: the room's audit trail too
                tx.audit_only(target.room_id, me.id, "delete_message", target.sender_id, "", now)
            if kind == DELETE:
                tx.forget_mentions_of(target.room_id, target.id)
        change = change_of(target, kind, event_id, seq, {"id": me.id, "username": me.username}, now)
        if kind == EDIT:
            change.update(text=text, edited_at=now)
        logger.info(
            "{} of message {} by user {}: event {} seq {} in room {}",
            kind,
            target.id,
            me.id,
            event_id,
            seq,
            target.room_id,
        )
        publish_change(ctx, change, peer, me.id)
        return change

    def _authorise(self, tx: Tx, target: Target, user_id: int, kind: str) -> dict[str, Any] | None:
        """Raise unless `user_id` may make this change; the other person of a direct
        chat (None in a room)."""
        room = RoomIdentity(target.room_id, target.room_name, target.room_kind)
        if not tx.is_member(room, user_id):
            raise no_such_message(target.id)
        peer = tx.peers_of(user_id, [room.id]).get(room.id) if room.kind == DIRECT else None
        if target.sender_id != user_id and not (
            kind == DELETE and moderator_may_delete(tx, target, user_id)
        ):
            raise ServiceError(ErrorCode.FORBIDDEN, f"only its author can {kind} a message")
        if target.deleted_at is not None:
            raise ServiceError(ErrorCode.NOT_FOUND, "this message was deleted")
        if kind == EDIT:
            window_ms = self.settings.edit_window_s * 1000
            if now_ms() - target.created_at > window_ms:
                raise ServiceError(
                    ErrorCode.FORBIDDEN,
                    "this message is too old to edit (messages can be edited for"
                    f" {self.settings.edit_window_s} s after sending)",
                )
            if peer is not None and not tx.are_friends(user_id, peer["id"]):
                raise ServiceError(
                    ErrorCode.FORBIDDEN,
                    f"you can only edit messages to friends; {peer['username']} is not one",
                )
        return peer
