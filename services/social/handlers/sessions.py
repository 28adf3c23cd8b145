"""Sessions and presence: logins opening, connections closing, edges heartbeating,
resyncing or going away, statuses; who is told when someone comes or goes."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from loguru import logger

from chatroom.bus_contract import AdminOp, InternalOp, user_topic
from chatroom.config import Settings
from chatroom.errors import bad_request
from chatroom.service import Handler, RequestContext
from chatroom.storage.db import now_ms
from services.social import presence
from services.social.store import SocialStore
from services.social.store.queries import Tx

# A session the edge no longer lists is kept this long after it opened: its login may
# still be on its way.
RESYNC_SETTLED_MS = 30_000


class SessionHandlers:
    def __init__(self, store: SocialStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self._reap_gate = presence.ReapGate(
            settings.edge_heartbeat_s, settings.edge_dead_after_s, time.monotonic()
        )

    def ops(self) -> dict[str, Handler]:
        return {
            InternalOp.SESSION_OPEN: self.session_open,
            InternalOp.SESSION_CLOSE: self.session_close,
            InternalOp.EDGE_HEARTBEAT: self.edge_heartbeat,
            InternalOp.EDGE_GONE: self.edge_gone,
            InternalOp.EDGE_RESYNC: self.edge_resync,
            "presence.set": self.presence_set,
            # Operators only (chatroom admin; not in the client protocol, so the edge
            # never forwards it).
            AdminOp.ONLINE: self.admin_online,
        }

    def _announce(
        self, ctx: RequestContext, tx: Tx, user_id: int, online: bool, to_self: bool = False
    ) -> None:
        row = tx.presence_of(user_id)
        event = presence.event(
            user_id, row.username, online, row.status, row.presence_version, row.ts
        )
        for friend_id in tx.friend_ids(user_id):
            ctx.publish(user_topic(friend_id), event)
        if to_self:  # a status set on one device shows on the others
            ctx.publish(user_topic(user_id), event)

    async def session_open(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """After a login: record the session, tell friends, return the starting snapshot.
        Logins arriving together are opened in one transaction (store/sessions.py)."""
        user_id = ctx.require_user()
        if not self.store.profile_known(user_id):
            await asyncio.to_thread(self.store.ensure_profile, user_id)
        opened = await self.store.open_session(user_id, ctx.require_edge(), ctx.require_conn())
        snapshot = opened.snapshot
        if opened.came_online_as is not None:  # the friends and status at hand: no queries
            event = presence.event(
                user_id, ctx.username or "", True, snapshot["status"], opened.came_online_as
            )
            for friend in snapshot["friends"]:
                ctx.publish(user_topic(friend["id"]), event)
        return snapshot

    def session_close(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        user_id = ctx.require_user()
        with self.store.transaction() as tx:
            if tx.close_session(user_id, ctx.require_conn()):
                self._announce(ctx, tx, user_id, False)
        return {}

    def admin_online(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        with self.store.reading() as tx:
            return {"online": tx.online_users()}

    def edge_heartbeat(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """An edge is alive. Returns how many sessions we hold for it so that an edge
        that was wrongly declared dead (paused, partitioned) notices and re-registers."""
        with self.store.transaction() as tx:
            tx.touch_edge(ctx.require_edge())
            return {"sessions": tx.edge_session_count(ctx.require_edge())}

    def edge_resync(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """An edge's full list of sessions, [[conn_id, user_id, username], ...]: add the
        ones we lost and drop the ones it no longer has (unless just opened: their login
        may still be on its way). Only the difference is written, so a resync after a
        few lost closes costs a few transactions, not one per session of the edge."""
        listed = {conn_id: (user_id, name) for conn_id, user_id, name in args["sessions"]}
        with self.store.reading() as tx:
            known = tx.edge_sessions(ctx.require_edge())
        settled = now_ms() - RESYNC_SETTLED_MS
        removed = added = 0
        for conn_id, (user_id, opened_at) in known.items():
            if conn_id in listed or opened_at >= settled:
                continue
            with self.store.transaction() as tx:
                if tx.close_session(user_id, conn_id):
                    self._announce(ctx, tx, user_id, False)
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
            self.store.ensure_profile(user_id)
            with self.store.transaction() as tx:
                tx.lock_profile(user_id)
                if tx.open_session(user_id, ctx.require_edge(), conn_id) is not None:
                    self._announce(session_ctx, tx, user_id, True)
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
        return {"offline": self._drop_edge(ctx, ctx.require_edge())}

    def _drop_edge(self, ctx: RequestContext, edge_id: str) -> int:
        with self.store.transaction() as tx:
            offline = tx.drop_edge(edge_id)
            for user_id in offline:
                self._announce(ctx, tx, user_id, False)
        return len(offline)

    def reap_dead_edges(self, ctx: RequestContext) -> None:
        started = time.monotonic()
        if not self._reap_gate.may_reap(started):
            return  # just back from a stall: heartbeats first
        dead_after_ms = int(self.settings.edge_dead_after_s * 1000)
        with self.store.reading() as tx:
            stale = tx.stale_edges(dead_after_ms)
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
        self.store.ensure_profile(user_id)
        with self.store.transaction() as tx:
            tx.lock_profile(user_id)
            tx.set_status(user_id, status)
            online = bool(tx.online([user_id]))
            self._announce(ctx, tx, user_id, online, to_self=True)
        return {"status": status}
