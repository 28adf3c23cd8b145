"""Messages: sending to rooms and friends (persist, then acknowledge), history, sync.

Sends run on the event loop: the room is looked up in the thread pool only the first
time, and the write (with its checks) waits for the group commit without a thread.
"""

from __future__ import annotations

import asyncio
from typing import Any, NamedTuple

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
    direct_with_id,
    existing_user,
    find_user,
    known_room,
    me_of,
    member_room,
    not_friends,
    peer_named,
    refusal_of,
    user_ref,
)
from services.social.reply_budget import ReplyBudget, encoded_size
from services.social.store import SocialStore
from services.social.store.batch_sql import (
    AlreadyStored,
    Banned,
    NoSuchReply,
    NotFriends,
    NotMember,
    ReadOnly,
)
from services.social.store.edits import CHANGES
from services.social.store.reads import read_list
from services.social.store.rooms import (
    DIRECT,
    EVENT,
    PUBLIC,
    RoomIdentity,
    change_dict,
    direct_name,
    event_dict,
    message_dict,
    room_ref,
)

HIDDEN = "hidden"  # a sync event: a blocked user's row, only its seq


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
            # _sender: edges skip the connections of users who block the sender.
            event = {"event": Event.MESSAGE, **message, Control.ORIGIN: ctx.conn}
            ctx.publish(room_topic(message["room_id"]), {**event, Control.SENDER: user_id})
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
        if room is None:
            room = await asyncio.to_thread(resolve_room, self.store)
        # Checked again in the write's transaction (membership, bans, announcement mode).
        member_check = resolve_room.must_be_member
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
                room.kind == PUBLIC,
            )
        except (NotMember, Banned):
            # Rare (a cached room): what the sender may know of it, looked up once.
            raise await asyncio.to_thread(self._refusal, room.name, sender_id) from None
        except ReadOnly:
            raise ServiceError(
                ErrorCode.READ_ONLY,
                f"'{room.name}' is in announcement mode: only its moderators and owners post",
            ) from None
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

    def _refusal(self, name: str, user_id: int) -> ServiceError:
        with self.store.reading() as tx:
            return refusal_of(tx, name, user_id)

    def room_history(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        user_id = ctx.require_user()
        limit = min(args.get("limit", 50), self.settings.history_page_max)
        room = member_room(args["room"], user_id)(self.store)
        return self._history(room, args.get("before"), limit, user_id)

    def dm_history(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        me = me_of(ctx)
        limit = min(args.get("limit", 50), self.settings.history_page_max)
        if peer_named(args) == "with_id":
            room, peer = direct_with_id(self.store, me.id, args["with_id"])
        else:
            with self.store.reading() as tx:
                peer = find_user(tx, args["with"])
            found = self.store.direct_room(me.id, peer.id)
            if found is None:
                raise ServiceError(ErrorCode.NOT_FOUND, f"no messages with {peer.username} yet")
            room = found
        return {**self._history(room, args.get("before"), limit), "with": user_ref(peer)}

    def _history(
        self, room: RoomIdentity, before: int | None, limit: int, reader: int | None = None
    ) -> dict[str, Any]:
        """The newest messages before `before` (at most `limit`, within the reply's byte
        budget), oldest first; has_more when older ones were left for the next page.
        With `reader` (a room's): without the messages of users the reader blocks."""
        with self.store.reading() as tx:
            hidden = tx.blocked_ids(reader) if reader is not None else set()
            rows = tx.messages_before(room.id, before, limit + 1, hidden)
        page = rows[:limit]
        # Newest first into the budget: what does not fit is older, on the next page.
        budget = ReplyBudget(self.settings.max_reply_bytes)
        kept = budget.take_leading(_history_item(r, room.name) for r in page)
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
            hidden = tx.blocked_ids(user_id)  # their room messages are not sent
            budget.left -= encoded_size({"read": read})
            for room in convs:
                since = cursors.get(room.id, 0)
                if room.last_seq <= since:
                    continue
                # Once the reply is full, later conversations are not even read.
                entry = None
                if not budget.refused:
                    rows = tx.messages_after(room.id, since, limit + 1)
                    if hidden and room.kind != DIRECT:
                        rows = [_hidden(r) if r.sender_id in hidden else r for r in rows]
                    changed = [r.target_id for r in rows[:limit] if r.kind in CHANGES]
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
    newest = {r.target_id: r.seq for r in page if r.kind in CHANGES}
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


class _HiddenRow(NamedTuple):
    """A row of a user the reader blocks: sync sends only its seq (so the client's
    cursor moves over it), as an event of kind "hidden"."""

    room_id: int
    seq: int
    kind: str = HIDDEN


def _hidden(row: Any) -> _HiddenRow:
    return _HiddenRow(row.room_id, row.seq)


def _sync_item(
    row: Any, room_name: str, newest: dict[int, int], now: dict[int, tuple[str, int | None, bool]]
) -> dict[str, Any]:
    if row.kind == HIDDEN:
        # target null: a client that does not know this kind finds nothing to change.
        return {
            "room": room_name,
            "room_id": row.room_id,
            "seq": row.seq,
            "kind": HIDDEN,
            "target": None,
        }
    if row.kind not in CHANGES:  # a message, or a moderation event
        return _history_item(row, room_name)
    item = change_dict(row, room_name)
    if newest[row.target_id] == row.seq and row.target_id in now:
        text, edited_at, deleted = now[row.target_id]
        item.update({"deleted": True} if deleted else {"text": text, "edited_at": edited_at})
    return item


def _history_item(row: Any, room_name: str) -> dict[str, Any]:
    """A message, or a moderation event ("alice banned bob"), as history lists it."""
    return event_dict(row, room_name) if row.kind == EVENT else message_dict(row, room_name)


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
