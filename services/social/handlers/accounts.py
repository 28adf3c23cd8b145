"""One user's data in social: the handlers over the store's AccountQueries
(store/accounts.py). Operators (chatroom admin export / erase) name the user by id, the
one auth's reply gave; the user themselves (account.export / account.delete, through
the edge: self.export, self.erase) is the request's own user, and their export comes in
pages within the reply budget."""

from __future__ import annotations

from typing import Any

from loguru import logger

from chatroom.bus_contract import AdminOp, InternalOp, room_topic, user_topic
from chatroom.config import Settings
from chatroom.errors import ServiceError, bad_request, user_id_arg
from chatroom.protocol import ErrorCode, Event
from chatroom.service import Handler, RequestContext
from chatroom.storage.db import now_ms
from services.social.handlers.access import member_event
from services.social.handlers.edits import change_of, publish_change
from services.social.reply_budget import ReplyBudget
from services.social.store import SocialStore
from services.social.store.edits import DELETE
from services.social.store.queries import Tx
from services.social.store.rooms import DIRECT

EXPORT_PAGE = 1000  # messages in one export reply, by default
EXPORT_PAGE_MAX = 5000
# Messages deleted in one transaction when an erased user's messages are removed: the
# rooms' rows stay locked (their sends wait) for one batch, not the whole history.
REMOVE_BATCH = 200


def not_being_erased(user_id: int) -> ServiceError:
    return ServiceError(
        ErrorCode.CONFLICT,
        f"user {user_id} is not marked erased: run admin.erase at auth first",
    )


def no_user(user_id: int) -> ServiceError:
    return ServiceError(ErrorCode.NOT_FOUND, f"no user with id {user_id}")


class AccountHandlers:
    def __init__(self, store: SocialStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def ops(self) -> dict[str, Handler]:
        return {
            AdminOp.EXPORT: self.admin_export,
            AdminOp.ERASE: self.admin_erase,
            InternalOp.SELF_EXPORT: self.self_export,
            InternalOp.SELF_ERASE: self.self_erase,
        }

    def admin_export(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """What social keeps about the user, with one page of the messages they sent
        (ids after `messages_after`, at most `limit`; has_more: ask for the next)."""
        user_id = user_id_arg(args)
        after = args.get("messages_after", 0)
        limit = args.get("limit", EXPORT_PAGE)
        if not isinstance(after, int) or isinstance(after, bool) or not 0 <= after < 2**63:
            raise bad_request(
                "messages_after", "messages_after is a message id (0: from the start)"
            )
        if (
            not isinstance(limit, int)
            or isinstance(limit, bool)
            or not 1 <= limit <= EXPORT_PAGE_MAX
        ):
            raise bad_request("limit", f"limit must be 1..{EXPORT_PAGE_MAX}")
        with self.store.reading() as tx:
            _exported_user(tx, user_id)
            found = tx.export_of(user_id)
            page = _messages_page(tx, user_id, after, limit, None)
        return {"user_id": user_id, **found, **page}

    def self_export(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """The asker's own: part "account" (what admin.export gives but the messages) or
        "messages" (ids after `after`, as many as fit the reply budget; has_more)."""
        user_id = ctx.require_user()
        with self.store.reading() as tx:
            _exported_user(tx, user_id)
            if args.get("part") == "messages":
                budget = ReplyBudget(self.settings.max_reply_bytes)
                return _messages_page(tx, user_id, args.get("after", 0), EXPORT_PAGE, budget)
            return tx.export_of(user_id)

    def self_erase(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """admin_erase for the asker's own account (auth's account.delete marked it)."""
        return self.admin_erase(ctx, {"user_id": ctx.require_user()})

    def admin_erase(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """Delete what social keeps about a user auth has marked erased (admin.erase),
        keeping their messages (author: the tombstone) and direct conversations for the
        other person. Friends, and users who asked them, get friend.removed (the client
        drops them from friends and outgoing requests), users they asked
        friend.request.closed, the groups they were in room.member (left). Safe to run
        again."""
        user_id = user_id_arg(args)
        with self.store.transaction() as tx:
            state = tx.account_state(user_id)
            if state is None:
                raise no_user(user_id)
            if state.erased_at is None:
                raise not_being_erased(user_id)
            tx.lock_profiles({user_id})
            erased = tx.erase_of(user_id)
        them = {"id": user_id, "username": state.username}
        # "deleted": their chat with each friend is reached by the id from now on.
        removed = {"event": Event.FRIEND_REMOVED, "user": them, "deleted": True}
        for friend_id in sorted({*erased["friends"], *erased["askers"]}):
            ctx.publish(user_topic(friend_id), removed)
        for asked_id in erased["asked"]:
            ctx.publish(user_topic(asked_id), {"event": Event.FRIEND_REQUEST_CLOSED, "from": them})
        for room in erased["groups"]:
            ctx.publish(room_topic(room.id), member_event(room.name, them, joined=False))
        done = {
            "user_id": user_id,
            "friendships_deleted": len(erased["friends"]),
            "requests_deleted": erased["requests_deleted"],
            "rooms_left": len(erased["groups"]),
        }
        if self.settings.delete_messages_on_account_delete:
            done["messages_deleted"] = self._delete_messages(ctx, user_id, them)
        logger.info("admin: erased social data of user {} ({})", user_id, done)
        return done

    def _delete_messages(self, ctx: RequestContext, user_id: int, them: dict[str, Any]) -> int:
        """CHAT_DELETE_MESSAGES_ON_ACCOUNT_DELETE: every message the erased user sent is
        deleted as message.delete does it (a delete event with the conversation's next
        seq, the text cleared), in batches, each pushed to whoever sees it. A batch cut
        short leaves the rest for the erase run again. How many were deleted."""
        deleted = 0
        while True:
            with self.store.transaction() as tx:
                batch = tx.live_messages_of(user_id, REMOVE_BATCH)
                direct = [t.room_id for t in batch if t.room_kind == DIRECT]
                peers = tx.peers_of(user_id, sorted(set(direct)))
                now = now_ms()
                changes = []
                for target in batch:  # by room id: rooms are locked in one order
                    seq = tx.next_seq(target.room_id)
                    event_id = tx.change_message(target, DELETE, user_id, seq, now)
                    changes.append(change_of(target, DELETE, event_id, seq, them, now))
            for change in changes:
                publish_change(ctx, change, peers.get(change["room_id"]), user_id)
            deleted += len(batch)
            if len(batch) < REMOVE_BATCH:
                return deleted


def _messages_page(
    tx: Tx, user_id: int, after: int, limit: int, budget: ReplyBudget | None
) -> dict[str, Any]:
    """The messages the user sent after id `after`: at most `limit`, and those that fit
    `budget`; has_more: there are others."""
    sent = tx.messages_of(user_id, after, limit + 1)
    page = sent[:limit]
    if budget is not None:
        page = budget.take_leading(page)
    return {"messages": page, "has_more": len(page) < len(sent)}


def _exported_user(tx: Tx, user_id: int) -> None:
    state = tx.account_state(user_id)
    if state is None or state.erased_at is not None:
        raise no_user(user_id)
