"""Social handlers: sessions and presence, friends, rooms, messages and sync.

Every handler takes the validated args and the caller's context (who is asking, set by
the edge), works in one transaction, and queues its pushes with ctx.publish; the runtime
publishes them after the commit.
"""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from loguru import logger
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from chatroom.bus_contract import AdminOp, Control, InternalOp, room_topic, user_topic
from chatroom.config import Settings
from chatroom.errors import ServiceError, bad_request
from chatroom.protocol import INT64_MAX, ErrorCode
from chatroom.runtime import Job, RequestContext, Service
from chatroom.storage.db import now_ms
from services.social import direct, friends, presence, rooms
from services.social.batch_sql import NotFriends
from services.social.friends import UserEvents, user_ref
from services.social.reply_budget import ReplyBudget
from services.social.sessions import SessionOpener
from services.social.writer import GroupWriter


def _me(ctx: RequestContext) -> SimpleNamespace:
    return SimpleNamespace(id=ctx.require_user(), username=ctx.username)


def _publish_to_users(ctx: RequestContext, events: UserEvents) -> None:
    for user_id, event in events:
        ctx.publish(user_topic(user_id), event)


PROFILE_CACHE_MAX = 1_000_000  # user ids (a few tens of MB at most)


class SocialHandlers:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.writer = GroupWriter(engine)
        self.writer.start()
        self.sessions = SessionOpener(engine)
        self._profiles_seen: set[int] = set()
        self._reap_gate = presence.ReapGate(
            settings.edge_heartbeat_s, settings.edge_dead_after_s, time.monotonic()
        )

    def service(self) -> Service:
        handlers = {
            InternalOp.SESSION_OPEN: self.session_open,
            InternalOp.SESSION_CLOSE: self.session_close,
            InternalOp.EDGE_HEARTBEAT: self.edge_heartbeat,
            InternalOp.EDGE_GONE: self.edge_gone,
            InternalOp.EDGE_RESYNC: self.edge_resync,
            "presence.set": self.presence_set,
            "friend.request": self.friend_request,
            "friend.accept": self.friend_accept,
            "friend.reject": self.friend_reject,
            "friend.remove": self.friend_remove,
            "friend.list": self.friend_list,
            InternalOp.NOTICE_DELIVERED: self.notice_delivered,
            "room.create": self.room_create,
            "room.join": self.room_join,
            "room.leave": self.room_leave,
            "room.list": self.room_list,
            "room.members": self.room_members,
            "room.send": self.room_send,
            "room.history": self.room_history,
            "dm.send": self.dm_send,
            "dm.history": self.dm_history,
            "sync": self.sync,
            # Operators only (chatroom admin; not in the client protocol, so the edge
            # never forwards it).
            AdminOp.ONLINE: self.admin_online,
        }
        reaper = Job("reap-dead-edges", self.settings.edge_heartbeat_s, self.reap_dead_edges)
        return Service(handlers, [reaper])

    # ------------------------------------------------------------------ presence

    def _announce(
        self, ctx: RequestContext, conn: Any, user_id: int, online: bool, to_self: bool = False
    ) -> None:
        event = presence.presence_event(conn, user_id, online)
        for friend_id in presence.friend_ids(conn, user_id):
            ctx.publish(user_topic(friend_id), event)
        if to_self:  # a status set on one device shows on the others
            ctx.publish(user_topic(user_id), event)

    async def session_open(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """After a login: record the session, tell friends, return the starting snapshot.
        Logins arriving together are opened in one transaction (sessions.py)."""
        user_id = ctx.require_user()
        if user_id not in self._profiles_seen:
            await asyncio.to_thread(self._ensure_profile, user_id)
        opened = await self.sessions.submit(user_id, ctx.edge, ctx.conn)
        snapshot = opened.snapshot
        if opened.came_online:  # the friend list and the status at hand: no more queries
            event = presence.event(user_id, ctx.username, True, snapshot["status"])
            for friend in snapshot["friends"]:
                ctx.publish(user_topic(friend["id"]), event)
        return snapshot

    def _ensure_profile(self, user_id: int) -> None:
        # Profiles are never deleted: once seen here, no need to look again.
        if user_id not in self._profiles_seen:
            presence.ensure_profile(self.engine, user_id)
            if len(self._profiles_seen) < PROFILE_CACHE_MAX:
                self._profiles_seen.add(user_id)

    def session_close(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        user_id = ctx.require_user()
        with self.engine.begin() as conn:
            if presence.close_session(conn, user_id, ctx.conn):
                self._announce(ctx, conn, user_id, False)
        return {}

    def admin_online(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return {"online": presence.online_users(conn)}

    def edge_heartbeat(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """An edge is alive. Returns how many sessions we hold for it so that an edge
        that was wrongly declared dead (paused, partitioned) notices and re-registers."""
        with self.engine.begin() as conn:
            presence.touch_edge(conn, ctx.edge)
            return {"sessions": presence.edge_session_count(conn, ctx.edge)}

    def edge_resync(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """An edge's full list of sessions, [[conn_id, user_id, username], ...]: add the
        ones we lost and drop the ones it no longer has (unless just opened: their login
        may still be on its way). Only the difference is written, so a resync after a
        few lost closes costs a few transactions, not one per session of the edge."""
        listed = {conn_id: (user_id, name) for conn_id, user_id, name in args["sessions"]}
        with self.engine.connect() as conn:
            known = presence.edge_sessions(conn, ctx.edge)
        settled = now_ms() - 30_000
        removed = added = 0
        for conn_id, (user_id, opened_at) in known.items():
            if conn_id in listed or opened_at >= settled:
                continue
            with self.engine.begin() as conn:
                if presence.close_session(conn, user_id, conn_id):
                    self._announce(ctx, conn, user_id, False)
            removed += 1
        for conn_id, (user_id, username) in listed.items():
            if conn_id in known:
                continue
            session_ctx = RequestContext(
                op=InternalOp.SESSION_OPEN,
                rid=ctx.rid,
                user_id=user_id,
                username=username,
                edge=ctx.edge,
                conn=conn_id,
            )
            self._ensure_profile(user_id)
            with self.engine.begin() as conn:
                presence.lock_profile(conn, user_id)
                if presence.open_session(conn, user_id, ctx.edge, conn_id):
                    self._announce(session_ctx, conn, user_id, True)
            ctx.events.extend(session_ctx.events)
            added += 1
        if added or removed:
            logger.warning(
                "edge {} resync: {} sessions added, {} removed", ctx.edge, added, removed
            )
        return {"sessions": len(listed), "added": added, "removed": removed}

    def edge_gone(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """An edge is shutting down cleanly: its users go offline now, not after the
        heartbeat timeout."""
        return {"offline": self._drop_edge(ctx, ctx.edge)}

    def _drop_edge(self, ctx: RequestContext, edge_id: str) -> int:
        with self.engine.begin() as conn:
            offline = presence.drop_edge(conn, edge_id)
            for user_id in offline:
                self._announce(ctx, conn, user_id, False)
        return len(offline)

    def reap_dead_edges(self, ctx: RequestContext) -> None:
        started = time.monotonic()
        if not self._reap_gate.may_reap(started):
            return  # just back from a stall: heartbeats first
        dead_after_ms = int(self.settings.edge_dead_after_s * 1000)
        with self.engine.connect() as conn:
            stale = presence.stale_edges(conn, dead_after_ms)
        if stale and not self._reap_gate.still_may_reap(started, time.monotonic()):
            return
        for edge_id in stale:
            offline = self._drop_edge(ctx, edge_id)
            logger.warning("edge {} stopped heartbeating: {} users now offline", edge_id, offline)

    def presence_set(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        user_id = ctx.require_user()
        status = args["status"].strip()
        if len(status) > self.settings.max_status_chars:
            raise bad_request(
                "status", f"a status is at most {self.settings.max_status_chars} characters"
            )
        self._ensure_profile(user_id)
        with self.engine.begin() as conn:
            presence.lock_profile(conn, user_id)
            presence.set_status(conn, user_id, status)
            online = bool(presence.online(conn, [user_id]))
            self._announce(ctx, conn, user_id, online, to_self=True)
        return {"status": status}

    # ------------------------------------------------------------------ friends

    def _friend_op(
        self, ctx: RequestContext, action: Any, username: str, *extra: Any
    ) -> dict[str, Any]:
        """Run a friend action on (me, the named user) holding both users' profile
        locks, taken in id order, so concurrent operations on a pair run one by one."""
        me = _me(ctx)
        with self.engine.connect() as conn:
            other = friends.find_user(conn, username)
        for user_id in (me.id, other.id):
            self._ensure_profile(user_id)
        with self.engine.begin() as conn:
            presence.lock_profiles(conn, {me.id, other.id})
            result, events = action(conn, me, other, *extra)
        _publish_to_users(ctx, events)
        return result

    def friend_request(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        limit = self.settings.max_pending_friend_requests
        return self._friend_op(ctx, friends.request, args["username"], limit)

    def friend_accept(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        return self._friend_op(ctx, friends.accept, args["username"])

    def friend_reject(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        return self._friend_op(ctx, friends.reject, args["username"])

    def friend_remove(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        return self._friend_op(ctx, friends.remove, args["username"])

    def notice_delivered(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """From the edge: a friend.rejected push reached one of the requester's sockets."""
        with self.engine.begin() as conn:
            friends.mark_told(conn, ctx.require_user(), int(args["request_id"]))
        return {}

    def friend_list(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return friends.friend_list(conn, ctx.require_user())

    # ------------------------------------------------------------------ rooms

    def _membership_changed(
        self, ctx: RequestContext, room: Any, user_id: int, joined: bool
    ) -> None:
        # Control fields (_join/_leave) tell every edge holding a session of this user
        # to start or stop delivering the room's messages to it.
        control = {Control.JOIN: room.id} if joined else {Control.LEAVE: room.id}
        name = "room.joined" if joined else "room.left"
        ctx.publish(user_topic(user_id), {"event": name, "room": rooms.room_ref(room), **control})
        ctx.publish(
            room_topic(room.id),
            {
                "event": "room.member",
                "room": room.name,
                "user": {"id": user_id, "username": ctx.username},
                "joined": joined,
            },
        )

    def room_create(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        user_id = ctx.require_user()
        try:
            with self.engine.begin() as conn:
                room = rooms.create_room(conn, args["room"], user_id)
        except IntegrityError:  # created by someone else between our check and insert
            raise ServiceError(
                ErrorCode.CONFLICT, f"a room called '{args['room'][:64]}' exists; join it"
            ) from None
        logger.info("user {} created room {}", user_id, room.id)
        self._membership_changed(ctx, room, user_id, True)
        return {"room": rooms.room_ref(room)}

    def room_join(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        user_id = ctx.require_user()
        with self.engine.begin() as conn:
            room, is_new = rooms.join_room(conn, args["room"], user_id)
        if is_new:
            self._membership_changed(ctx, room, user_id, True)
        return {"room": rooms.room_ref(room)}

    def room_leave(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        user_id = ctx.require_user()
        with self.engine.begin() as conn:
            room = rooms.leave_room(conn, args["room"], user_id)
        self._membership_changed(ctx, room, user_id, False)
        return {"room": rooms.room_ref(room)}

    def room_list(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return {"rooms": rooms.list_rooms(conn, ctx.require_user())}

    def room_members(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        user_id = ctx.require_user()
        room = rooms.member_room(args["room"], user_id)(self.engine)
        with self.engine.connect() as conn:
            ids = rooms.member_ids(conn, room, self.settings.room_members_max)
            members = friends.user_entries(conn, ids)
            if self.settings.status_visibility == "friends":
                members = friends.hide_status_from_strangers(conn, user_id, members)
        return {"room": room.name, "members": members}

    # ------------------------------------------------------------------ messages

    async def room_send(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        user_id = ctx.require_user()
        rooms.check_text(args["text"], self.settings.max_text_chars)
        message, is_new = await rooms.store_message(
            self.engine,
            self.writer,
            rooms.member_room(args["room"], user_id),
            user_id,
            args["text"],
            args.get("client_id"),
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
                {"event": "message", **message, Control.ORIGIN: ctx.conn},
            )
        return {"message": message}

    def room_history(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        user_id = ctx.require_user()
        limit = min(args.get("limit", 50), self.settings.history_page_max)
        resolve = rooms.member_room(args["room"], user_id)
        return rooms.history(
            self.engine, resolve, args.get("before"), limit, self.settings.max_reply_bytes
        )

    async def dm_send(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        me = _me(ctx)
        rooms.check_text(args["text"], self.settings.max_text_chars)
        peer = direct.cached_user(args["to"])
        room = direct.cached_direct_room(me.id, peer.id) if peer is not None else None
        if room is None:
            # First message of this pair seen by this process: check the friendship
            # before the conversation is created.
            peer, room = await asyncio.to_thread(
                direct.friend_and_conversation, self.engine, me.id, args["to"]
            )
        try:
            message, is_new = await rooms.store_message(
                self.engine,
                self.writer,
                rooms.known_room(room),
                me.id,
                args["text"],
                args.get("client_id"),
                friend_of_sender=peer.id,
            )
        except NotFriends:
            raise direct.not_friends(peer) from None
        message = {**message, "to": user_ref(peer)}
        if is_new:
            logger.info("stored direct message {} ({} chars)", message["id"], len(args["text"]))
            event = {"event": "message", **message, "direct": True, Control.ORIGIN: ctx.conn}
            ctx.publish(user_topic(peer.id), event)
            ctx.publish(user_topic(me.id), event)  # the sender's other sessions
        return {"message": message}

    def dm_history(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        me = _me(ctx)
        limit = min(args.get("limit", 50), self.settings.history_page_max)
        with self.engine.connect() as conn:
            peer = friends.find_user(conn, args["with"])

        def resolve(engine: Engine) -> Any:
            try:
                return direct.direct_room(engine, me.id, peer.id)
            except ServiceError:
                raise ServiceError(
                    ErrorCode.NOT_FOUND, f"no messages with {peer.username} yet"
                ) from None

        result = rooms.history(
            self.engine, resolve, args.get("before"), limit, self.settings.max_reply_bytes
        )
        return {**result, "with": user_ref(peer)}

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
        with self.engine.connect() as conn:
            convs = rooms.conversations_of(conn, user_id)
            peers = direct.peers_of(conn, user_id, [r.id for r in convs if r.kind == rooms.DIRECT])
            for room in convs:
                since = cursors.get(room.id, 0)
                if room.last_seq <= since:
                    continue
                # Once the reply is full, later conversations are not even read.
                entry = None
                if not budget.refused:
                    entry = rooms.sync_entry(conn, room, since, limit, budget, peers.get(room.id))
                if entry is None:
                    left_out = True
                    continue
                out.append(entry)
        has_more = left_out or any(entry["has_more"] for entry in out)
        return {"conversations": out, "has_more": has_more}


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
