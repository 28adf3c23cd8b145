"""Messages: sending to rooms and friends (persist, then acknowledge), history, sync.

Sends run on the event loop: the room is looked up in the thread pool only the first
time, and the write (with its checks) waits for the group commit without a thread.
"""

from __future__ import annotations

import asyncio
from typing import Any

from loguru import logger
from sqlalchemy.exc import IntegrityError

from chatroom.bus_contract import Control, room_topic, user_topic
from chatroom.config import Settings
from chatroom.errors import ServiceError, bad_request
from chatroom.names import may_mention, mention_keys
from chatroom.protocol import INT64_MAX, MAX_MENTIONS, ErrorCode, Event
from chatroom.service import Handler, RequestContext
from services.social.handlers.access import (
    RoomResolver,
    check_text,
    existing_user,
    find_user,
    known_room,
    me_of,
    member_room,
    not_friends,
    not_member,
    user_ref,
)
from services.social.reply_budget import ReplyBudget, encoded_size
from services.social.store import SocialStore
from services.social.store.batch_sql import AlreadyStored, NoSuchReply, NotFriends, NotMember
from services.social.store.reads import read_list
from services.social.store.rooms import (
    DIRECT,
    MESSAGE,
    PUBLIC,
    RoomIdentity,
    change_dict,
    direct_name,
    message_dict,
    room_ref,
)


class MessageHandlers:
    def __init__(self, store: SocialStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def ops(self) -> dict[str, Handler]:
        return {
            "room.send": self.room_send,
            "room.history": self.room_history,
            "dm.send": self.dm_send,
            "dm.history": self.dm_history,
            "sync": self.sync,
        }

    async def room_send(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        user_id = ctx.require_user()
        check_text(args["text"], self.settings.max_text_chars)
        message, is_new = await self._store_message(
            member_room(args["room"], user_id),
            user_id,
            args["text"],
            args.get("client_id"),
            reply_to=args.get("reply_to"),
            mentioned=await self._mentioned(args["text"], user_id),
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
                {"event": Event.MESSAGE, **message, Control.ORIGIN: ctx.conn},
            )
        return {"message": message}

    async def dm_send(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        me = me_of(ctx)
        check_text(args["text"], self.settings.max_text_chars)
        peer = self.store.cached_user(args["to"])
        room = self.store.cached_direct_room(me.id, peer.id) if peer is not None else None
        if room is None:
            # First message of this pair seen by this process: check the friendship
            # before the conversation is created.
            peer, room = await asyncio.to_thread(self._friend_and_conversation, me.id, args["to"])
        assert room is not None and peer is not None  # found in the cache, or just above
        try:
            message, is_new = await self._store_message(
                known_room(room),
                me.id,
                args["text"],
                args.get("client_id"),
                peer.id,
                args.get("reply_to"),
            )
        except NotFriends:
            raise not_friends(peer) from None
        message = {**message, "to": user_ref(peer)}
        if is_new:
            logger.info("stored direct message {} ({} chars)", message["id"], len(args["text"]))
            event = {"event": Event.MESSAGE, **message, "direct": True, Control.ORIGIN: ctx.conn}
            ctx.publish(user_topic(peer.id), event)
            ctx.publish(user_topic(me.id), event)  # the sender's other sessions
        return {"message": message}

    async def _mentioned(self, text: str, sender_id: int) -> tuple[int, ...]:
        """The users a room message @mentions (chatroom.names.mention_keys: the first
        MAX_MENTIONS names; not the sender). Which of them are members is decided in the
        write's transaction. A message without an '@' costs nothing."""
        if not may_mention(text):
            return ()
        names = mention_keys(text, MAX_MENTIONS)
        if not names:
            return ()
        known = self.store.mentioned_users(names, sender_id, from_memory=True)
        if known is not None:  # everyone named is remembered: no thread, no query
            return known
        found = await asyncio.to_thread(self.store.mentioned_users, names, sender_id)
        return found or ()

    def _friend_and_conversation(self, me_id: int, username: str) -> tuple[Any, RoomIdentity]:
        """The friend called `username` and your conversation with them, created on first
        use; raises not_found or not_friends. What is not cached yet is looked up on one
        connection (a cold start sends many of these at once)."""
        with self.store.reading() as tx:
            peer = existing_user(self.store.user_named(tx, username), username)
            if not tx.are_friends(me_id, peer.id):
                raise not_friends(peer)
            room = self.store.room_identity_on(tx, direct_name(me_id, peer.id))
        if room is None:
            room = self.store.create_direct_room(me_id, peer.id)
        return peer, room

    async def _store_message(
        self,
        resolve_room: RoomResolver,
        sender_id: int,
        text: str,
        client_id: str | None,
        friend_of_sender: int | None = None,
        reply_to: int | None = None,
        mentioned: tuple[int, ...] = (),
    ) -> tuple[dict[str, Any], bool]:
        """Persist a message in the room `resolve_room` finds (and authorises), and
        return it with True; or the earlier copy with False when this client_id was
        already stored (a retried send). `friend_of_sender`: that user must be the
        sender's friend, checked in the write's transaction (raises NotFriends);
        `reply_to` a message of the same conversation (else not_found); `mentioned`
        users get a mention if they are members (the message's `mentions`)."""
        room = resolve_room.cached(self.store)
        member_check = room is not None and resolve_room.must_be_member and room.kind != PUBLIC
        if room is None:
            room = await asyncio.to_thread(resolve_room, self.store)
        try:
            row = await self.store.add_message(
                room.id,
                sender_id,
                text,
                client_id,
                friend_of_sender,
                member_check,
                reply_to,
                mentioned,
            )
        except NotMember:
            raise not_member(room) from None
        except NoSuchReply:
            # Another conversation's message gets the answer of one that does not exist.
            raise ServiceError(
                ErrorCode.NOT_FOUND, f"reply_to: no message {reply_to} in this conversation"
            ) from None
        except (AlreadyStored, IntegrityError):
            # A retried send (IntegrityError: its original committed in another
            # replica's batch at the same moment): answer with the stored copy.
            if client_id is None:
                raise
            earlier = await asyncio.to_thread(
                self.store.message_by_client_id, sender_id, room.id, client_id
            )
            if earlier is None:
                # Only a database made before client_ids were per conversation (its
                # constraint is still per sender) gets here.
                raise ServiceError(
                    ErrorCode.CONFLICT, "this client_id names another message; use a new one"
                ) from None
            return earlier, False
        return message_dict(row, room.name), True

    def room_history(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        user_id = ctx.require_user()
        limit = min(args.get("limit", 50), self.settings.history_page_max)
        room = member_room(args["room"], user_id)(self.store)
        return self._history(room, args.get("before"), limit)

    def dm_history(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        me = me_of(ctx)
        limit = min(args.get("limit", 50), self.settings.history_page_max)
        with self.store.reading() as tx:
            peer = find_user(tx, args["with"])
        room = self.store.direct_room(me.id, peer.id)
        if room is None:
            raise ServiceError(ErrorCode.NOT_FOUND, f"no messages with {peer.username} yet")
        return {**self._history(room, args.get("before"), limit), "with": user_ref(peer)}

    def _history(self, room: RoomIdentity, before: int | None, limit: int) -> dict[str, Any]:
        """The newest messages before `before` (at most `limit`, within the reply's byte
        budget), oldest first; has_more when older ones were left for the next page."""
        with self.store.reading() as tx:
            rows = tx.messages_before(room.id, before, limit + 1)
        page = rows[:limit]
        # Newest first into the budget: what does not fit is older, on the next page.
        budget = ReplyBudget(self.settings.max_reply_bytes)
        kept = budget.take_leading(message_dict(r, room.name) for r in page)
        kept.reverse()
        return {
            "room": room.name,
            "messages": kept,
            "has_more": len(rows) > limit or len(kept) < len(page),
        }

    def sync(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """Everything after the client's per-conversation cursors, oldest first.

        `cursors` maps room id (as a string) to the last seq the client has; a room
        missing from it starts at 0. A conversation with more than `limit` new messages,
        or more than fit in the reply's byte budget, says has_more; conversations that
        did not fit at all are left out. Either way the reply's own has_more is true:
        call again with the advanced cursors."""
        user_id = ctx.require_user()
        cursors = _parse_cursors(args.get("cursors") or {})
        limit = min(args.get("limit", 200), self.settings.sync_page_max)
        budget = ReplyBudget(self.settings.max_reply_bytes)
        out, left_out = [], False
        with self.store.reading() as tx:
            convs = tx.conversations_of(user_id)
            peers = tx.peers_of(user_id, [r.id for r in convs if r.kind == DIRECT])
            # Every conversation's marker and unread count, as they are now (the same on
            # every device), and whether the user shares receipts. Their bytes count
            # against the reply's budget (the first message still always fits).
            read = read_list(tx, user_id, convs, peers)
            receipts = bool(tx.receipts_on([user_id]))
            budget.left -= encoded_size({"read": read})
            for room in convs:
                since = cursors.get(room.id, 0)
                if room.last_seq <= since:
                    continue
                # Once the reply is full, later conversations are not even read.
                entry = None
                if not budget.refused:
                    rows = tx.messages_after(room.id, since, limit + 1)
                    changed = [r.target_id for r in rows[:limit] if r.kind != MESSAGE]
                    now = tx.current_texts(changed) if changed else {}
                    entry = _sync_entry(room, rows, limit, budget, peers.get(room.id), now)
                if entry is None:
                    left_out = True
                    continue
                out.append(entry)
        has_more = left_out or any(entry["has_more"] for entry in out)
        return {"conversations": out, "has_more": has_more, "read": read, "read_receipts": receipts}


def _sync_entry(
    room: Any,
    rows: list[Any],
    limit: int,
    budget: ReplyBudget,
    peer: dict[str, Any] | None,
    now: dict[int, tuple[str, int | None, bool]],
) -> dict[str, Any] | None:
    """One conversation of a sync reply: its rows (`rows`, up to limit + 1 after the
    cursor), at most `limit` and as many as fit in `budget`; has_more if any were left.
    None if not even its first row fits (the reply is full). Messages go in `messages`,
    as they are now; edits and deletes in `events`, each a few fixed fields, and the
    message's current text (`now`) only on the newest event of each message, so a
    message edited 10,000 times costs its text once per reply, not 10,000 times."""
    entry: dict[str, Any] = {**room_ref(room), "has_more": False, "messages": [], "events": []}
    if peer is not None:
        entry["with"] = peer
    page = rows[:limit]
    if not page:
        return entry
    newest = {r.target_id: r.seq for r in page if r.kind != MESSAGE}
    batch = (_sync_item(r, room.name, newest, now) for r in page)
    first = next(batch)
    # The conversation's header only goes in with at least one of its rows.
    if not budget.take(encoded_size(entry) + encoded_size(first)):
        return None
    taken = [first, *budget.take_leading(batch)]
    entry["messages"] = [item for item in taken if "kind" not in item]
    entry["events"] = [item for item in taken if "kind" in item]
    entry["has_more"] = len(rows) > limit or len(taken) < len(page)
    return entry


def _sync_item(
    row: Any, room_name: str, newest: dict[int, int], now: dict[int, tuple[str, int | None, bool]]
) -> dict[str, Any]:
    if row.kind == MESSAGE:
        return message_dict(row, room_name)
    item = change_dict(row, room_name)
    if newest[row.target_id] == row.seq and row.target_id in now:
        text, edited_at, deleted = now[row.target_id]
        item.update({"deleted": True} if deleted else {"text": text, "edited_at": edited_at})
    return item


def _parse_cursors(raw: dict[str, Any]) -> dict[int, int]:
    """Room id (ASCII digits) -> seq, both 0 .. 2^63-1; anything else is bad_request."""
    cursors = {}
    for key, value in raw.items():
        if not (_is_int64_digits(key) and _is_seq(value)):
            raise bad_request(
                "cursors", 'cursors maps room ids to the last seq you have, e.g. {"1": 42}'
            )
        cursors[int(key)] = value
    return cursors


def _is_int64_digits(key: Any) -> bool:
    # Not str.isdigit alone: it accepts '²' and '٣', which int() refuses or reads.
    return (
        isinstance(key, str)
        and 0 < len(key) <= 19
        and key.isascii()
        and key.isdigit()
        and int(key) <= INT64_MAX
    )


def _is_seq(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INT64_MAX
