"""Friend requests and friendships.

Each action runs in one transaction holding both users' profile locks (taken in id
order), so concurrent operations on a pair run one by one; it returns its reply and the
events to publish as (user_id, event) pairs, published after the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chatroom.bus_contract import Control, InternalOp, user_topic
from chatroom.config import Settings
from chatroom.errors import ServiceError, bad_request
from chatroom.protocol import ErrorCode, Event
from chatroom.service import Handler, RequestContext
from chatroom.storage.db import now_ms
from services.social.handlers.access import find_user, me_of, user_ref
from services.social.store import SocialStore
from services.social.store.friends import ACCEPTED, PENDING, REJECTED
from services.social.store.queries import Tx

UserEvents = list[tuple[int, dict[str, Any]]]
FriendAction = Callable[..., tuple[dict[str, Any], UserEvents]]


class FriendHandlers:
    def __init__(self, store: SocialStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings

    def ops(self) -> dict[str, Handler]:
        return {
            "friend.request": self.friend_request,
            "friend.accept": self.friend_accept,
            "friend.reject": self.friend_reject,
            "friend.remove": self.friend_remove,
            "friend.list": self.friend_list,
            InternalOp.NOTICE_DELIVERED: self.notice_delivered,
        }

    def _friend_op(
        self, ctx: RequestContext, action: FriendAction, username: str, *extra: Any
    ) -> dict[str, Any]:
        return run_pair_action(self.store, ctx, action, username, *extra)

    def friend_request(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        limit = self.settings.max_pending_friend_requests
        return self._friend_op(ctx, request, args["username"], limit)

    def friend_accept(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        return self._friend_op(ctx, accept, args["username"])

    def friend_reject(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        return self._friend_op(ctx, reject, args["username"])

    def friend_remove(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        return self._friend_op(ctx, remove, args["username"])

    def notice_delivered(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """From the edge: a friend.rejected push reached one of the requester's sockets."""
        with self.store.transaction() as tx:
            tx.mark_told(ctx.require_user(), int(args["request_id"]))
        return {}

    def friend_list(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        with self.store.reading() as tx:
            return tx.friend_list(ctx.require_user())


def run_pair_action(
    store: SocialStore, ctx: RequestContext, action: FriendAction, username: str, *extra: Any
) -> dict[str, Any]:
    """Run an action on (me, the named user) holding both users' profile locks, taken
    in id order, so concurrent operations on a pair (friend ops, blocks) run one by one;
    then publish its events."""
    me = me_of(ctx)
    with store.reading() as tx:
        other = find_user(tx, username)
    for user_id in (me.id, other.id):
        store.ensure_profile(user_id)
    with store.transaction() as tx:
        tx.lock_profiles({me.id, other.id})
        if tx.erased_among({other.id}):  # erased since it was looked up
            raise ServiceError(ErrorCode.NOT_FOUND, f"there is no user called '{username[:64]}'")
        result, events = action(tx, me, other, *extra)
    for user_id, event in events:
        ctx.publish(user_topic(user_id), event)
    return result


def request(tx: Tx, me: Any, target: Any, max_pending: int) -> tuple[dict, UserEvents]:
    if target.id == me.id:
        raise bad_request("username", "you cannot send a friend request to yourself")
    if tx.are_friends(me.id, target.id):
        raise ServiceError(ErrorCode.CONFLICT, f"you and {target.username} are already friends")
    if tx.blocks_user(me.id, target.id):
        raise ServiceError(ErrorCode.CONFLICT, f"you blocked {target.username}; unblock them first")
    # Blocked by them: answered as any stranger's request (stored, pending, counted in
    # the cap), but never shown or pushed to them (docs/security.md, Blocking).
    unseen = tx.blocks_user(target.id, me.id)
    theirs = tx.friend_request(target.id, me.id)
    if theirs is not None and theirs.status == PENDING:
        # They asked first: asking back is saying yes.
        return accept(tx, me, target)
    mine = tx.friend_request(me.id, target.id)
    if mine is not None and mine.status == PENDING:
        return {"status": PENDING, "to": user_ref(target)}, []  # asking twice is one request
    outstanding = tx.pending_requests_from(me.id)
    if outstanding >= max_pending:
        raise ServiceError(
            ErrorCode.LIMIT_REACHED,
            f"you have {outstanding} unanswered friend requests; wait for some answers",
        )
    now = now_ms()
    tx.ask(me.id, target.id, None if mine is None else mine.id, now)
    event = {"event": Event.FRIEND_REQUEST, "from": user_ref(me), "ts": now}
    return {"status": PENDING, "to": user_ref(target)}, [] if unseen else [(target.id, event)]


def _pending_from(tx: Tx, requester: Any, me_id: int) -> Any:
    row = tx.friend_request(requester.id, me_id)
    # One from a user I block was never shown to me: there is none to answer.
    if row is None or row.status != PENDING or tx.blocks_user(me_id, requester.id):
        raise ServiceError(
            ErrorCode.NOT_FOUND, f"{requester.username} has no pending friend request to you"
        )
    return row


def accept(tx: Tx, me: Any, requester: Any) -> tuple[dict, UserEvents]:
    row = _pending_from(tx, requester, me.id)
    # A crossing request the other way is answered by this too.
    tx.accept_requests(row.id, me.id, requester.id, now_ms())
    tx.befriend(me.id, requester.id)
    me_entry, requester_entry = tx.friend_entry(me.id), tx.friend_entry(requester.id)
    events = [
        (requester.id, {"event": Event.FRIEND_ACCEPTED, "friend": me_entry}),
        (me.id, {"event": Event.FRIEND_ACCEPTED, "friend": requester_entry}),
    ]
    return {"status": ACCEPTED, "friend": requester_entry}, events


def reject(tx: Tx, me: Any, requester: Any) -> tuple[dict, UserEvents]:
    row = _pending_from(tx, requester, me.id)
    tx.reject_request(row.id)
    # The requester must learn of it exactly once, online or not. The push carries an
    # acknowledgement the edge sends back once it has written it to one of their
    # sockets; until then it stays untold and goes out with their next login.
    event = {
        "event": Event.FRIEND_REJECTED,
        "request_id": row.id,
        "by": user_ref(me),
        Control.ACK: {
            "service": "social",
            "op": InternalOp.NOTICE_DELIVERED,
            "args": {"request_id": row.id},
        },
    }
    closed = {"event": Event.FRIEND_REQUEST_CLOSED, "from": user_ref(requester)}
    return {"status": REJECTED}, [(requester.id, event), (me.id, closed)]


def remove(tx: Tx, me: Any, other: Any) -> tuple[dict, UserEvents]:
    if not tx.unfriend(me.id, other.id):
        raise ServiceError(ErrorCode.NOT_FOUND, f"{other.username} is not your friend")
    return {}, [
        (other.id, {"event": Event.FRIEND_REMOVED, "user": user_ref(me)}),
        (me.id, {"event": Event.FRIEND_REMOVED, "user": user_ref(other)}),
    ]
