"""Presence's SQL: profiles (status, and the row each user's presence changes lock),
live sessions per edge, edge heartbeats, last_seen.

A user is online while they have at least one live_sessions row. Presence changes for
one user are serialised by locking their profiles row, so two sessions opening at once
cannot both decide they were first. When a user's last session goes, the time is kept
in last_seen for their friends.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from chatroom.storage.db import now_ms, upsert
from chatroom.storage.schema import (
    avatars,
    edges,
    friendships,
    last_seen,
    live_sessions,
    profiles,
    users,
)


class PresenceQueries:
    """Methods of a transaction (store.Tx) on its connection."""

    conn: Connection

    def lock_profile(self, user_id: int) -> Any:
        return self.conn.execute(
            select(profiles.c.user_id, profiles.c.status)
            .where(profiles.c.user_id == user_id)
            .with_for_update()
        ).one()

    def lock_profiles(self, user_ids: set[int]) -> dict[int, str]:
        """Lock several users' profiles, always in id order (no deadlock between two
        callers locking overlapping sets); returns each one's status."""
        rows = self.conn.execute(
            select(profiles.c.user_id, profiles.c.status)
            .where(profiles.c.user_id.in_(sorted(user_ids)))
            .order_by(profiles.c.user_id)
            .with_for_update()
        )
        return {row.user_id: row.status for row in rows}

    def avatars_of(self, user_ids: list[int]) -> dict[int, str | None]:
        """Each user's avatar hash (None: the default picture)."""
        rows = self.conn.execute(
            select(avatars.c.user_id, avatars.c.hash).where(avatars.c.user_id.in_(user_ids))
        )
        found = {row.user_id: row.hash for row in rows}
        return {user_id: found.get(user_id) for user_id in user_ids}

    def session_count(self, user_id: int) -> int:
        """The user's live sessions as committed now. A locking read: under MySQL's
        REPEATABLE READ a plain SELECT answers from the transaction's snapshot, taken
        at its first read, so a caller that read something before it waited for the
        user's profile lock would miss a session opened meanwhile, and call a user who
        had just logged in elsewhere offline (tests/test_presence_races.py)."""
        return self.conn.execute(
            select(func.count())
            .select_from(live_sessions)
            .where(live_sessions.c.user_id == user_id)
            .with_for_update()
        ).scalar_one()

    def touch_edge(self, edge_id: str) -> None:
        upsert(self.conn, edges, {"edge_id": edge_id, "last_seen": now_ms()}, ("last_seen",))

    def open_session(self, user_id: int, edge_id: str, conn_id: str) -> int | None:
        """Record a live session (idempotent). If the user has just come online, their
        new presence version (else None).

        The caller holds the user's profile lock. The edge's own row is not touched
        here: every login on that edge would queue on that one row; its heartbeat keeps
        it fresh, and the reaper also finds sessions of an edge that never sent one."""
        return self.open_sessions([(user_id, edge_id, conn_id)])[0]

    def open_sessions(self, openings: list[tuple[int, str, str]]) -> list[int | None]:
        """open_session for several (user_id, edge_id, conn_id) at once, in order (four
        statements for any number); the caller holds the users' profile locks."""
        current: dict[int, set[str]] = {user_id: set() for user_id, _, _ in openings}
        for row in self.conn.execute(
            select(live_sessions.c.user_id, live_sessions.c.conn_id).where(
                live_sessions.c.user_id.in_(list(current))
            )
        ):
            current[row.user_id].add(row.conn_id)
        came_online: list[bool] = []
        rows: list[dict[str, Any]] = []
        now = now_ms()
        for user_id, edge_id, conn_id in openings:
            theirs = current[user_id]
            came_online.append(conn_id not in theirs and not theirs)
            if conn_id not in theirs:
                theirs.add(conn_id)
                rows.append(
                    {"conn_id": conn_id, "edge_id": edge_id, "user_id": user_id, "opened_at": now}
                )
        if rows:
            self.conn.execute(insert(live_sessions), rows)
            self.count_session_changes([row["user_id"] for row in rows])
        versions = self.count_presence_changes(
            [user_id for (user_id, _, _), came in zip(openings, came_online, strict=True) if came]
        )
        return [
            versions[user_id] if came else None
            for (user_id, _, _), came in zip(openings, came_online, strict=True)
        ]

    def count_presence_changes(self, user_ids: list[int]) -> dict[int, int]:
        """These users' presence has changed (online, offline, status): count it in
        their presence_version and return the new versions. The caller holds their
        profile locks, so versions follow the order in which the changes committed,
        whichever replica made them."""
        if not user_ids:
            return {}
        ids = sorted(set(user_ids))
        self.conn.execute(
            update(profiles)
            .where(profiles.c.user_id.in_(ids))
            .values(presence_version=profiles.c.presence_version + 1)
        )
        rows = self.conn.execute(
            select(profiles.c.user_id, profiles.c.presence_version).where(
                profiles.c.user_id.in_(ids)
            )
        )
        return {row.user_id: row.presence_version for row in rows}

    def count_session_changes(self, user_ids: list[int]) -> None:
        """These users' sets of live sessions changed (the caller holds their profile
        locks). Written so that the change touches the profile row: on a Galera cluster
        that has two writers for a while (docs/past-one-host.md), a login on one node
        and an edge's drop on the other each decide presence from the sessions they
        see; certification only makes them conflict if they write a row in common, and
        then runs one again, which sees the other's session (migration 0012)."""
        self.conn.execute(
            update(profiles)
            .where(profiles.c.user_id.in_(sorted(set(user_ids))))
            .values(sessions_version=profiles.c.sessions_version + 1)
        )

    def close_session(self, user_id: int, conn_id: str) -> bool:
        """Forget a live session (under the user's profile lock); True if it was the
        user's last one (now offline, last_seen recorded)."""
        self.lock_profile(user_id)
        removed = self.conn.execute(
            delete(live_sessions).where(
                live_sessions.c.conn_id == conn_id, live_sessions.c.user_id == user_id
            )
        ).rowcount
        if not removed:
            return False
        self.count_session_changes([user_id])
        went_offline = self.session_count(user_id) == 0
        if went_offline:
            self.record_last_seen([user_id])
            self.count_presence_changes([user_id])
        return went_offline

    def record_last_seen(self, user_ids: list[int]) -> None:
        """These users' last sessions have just closed: remember when (one statement)."""
        now = now_ms()
        upsert(self.conn, last_seen, [{"user_id": u, "ts": now} for u in user_ids], ("ts",))

    def online(self, user_ids: list[int]) -> set[int]:
        if not user_ids:
            return set()
        rows = self.conn.execute(
            select(live_sessions.c.user_id).where(live_sessions.c.user_id.in_(user_ids)).distinct()
        )
        return {r.user_id for r in rows}

    def friend_ids(self, user_id: int) -> list[int]:
        rows = self.conn.execute(
            select(friendships.c.friend_id).where(friendships.c.user_id == user_id)
        )
        return [r.friend_id for r in rows]

    def presence_of(self, user_id: int) -> Any:
        """What a presence push says of the user: (username, status, ts of last_seen,
        presence_version)."""
        return self.conn.execute(
            select(users.c.username, profiles.c.status, last_seen.c.ts, profiles.c.presence_version)
            .select_from(
                users.outerjoin(profiles, profiles.c.user_id == users.c.id).outerjoin(
                    last_seen, last_seen.c.user_id == users.c.id
                )
            )
            .where(users.c.id == user_id)
        ).one()

    def set_status(self, user_id: int, status: str) -> None:
        self.conn.execute(
            update(profiles)
            .where(profiles.c.user_id == user_id)
            .values(status=status, updated_at=now_ms())
        )
        self.count_presence_changes([user_id])

    def stale_edges(self, dead_after_ms: int) -> list[str]:
        """Edges that stopped heartbeating, and edges that have sessions but no
        heartbeat row (an edge killed before its first heartbeat)."""
        cutoff = now_ms() - dead_after_ms
        stale = {
            r.edge_id
            for r in self.conn.execute(select(edges.c.edge_id).where(edges.c.last_seen < cutoff))
        }
        orphans = self.conn.execute(
            select(live_sessions.c.edge_id)
            .where(
                live_sessions.c.opened_at < cutoff,
                live_sessions.c.edge_id.not_in(select(edges.c.edge_id)),
            )
            .distinct()
        )
        return sorted(stale | {r.edge_id for r in orphans})

    def drop_edge(self, edge_id: str) -> list[int]:
        """Remove every session of an edge; return the users who are now offline."""
        user_ids = sorted(
            {
                r.user_id
                for r in self.conn.execute(
                    select(live_sessions.c.user_id).where(live_sessions.c.edge_id == edge_id)
                )
            }
        )
        for user_id in user_ids:  # sorted: the same lock order everywhere, so no deadlock
            self.lock_profile(user_id)
        self.conn.execute(delete(live_sessions).where(live_sessions.c.edge_id == edge_id))
        self.conn.execute(delete(edges).where(edges.c.edge_id == edge_id))
        if user_ids:
            self.count_session_changes(user_ids)
        offline = [u for u in user_ids if self.session_count(u) == 0]
        self.record_last_seen(offline)
        self.count_presence_changes(offline)
        return offline

    def edge_sessions(self, edge_id: str) -> dict[str, tuple[int, int]]:
        """The edge's live sessions: conn_id -> (user_id, opened_at)."""
        rows = self.conn.execute(
            select(
                live_sessions.c.conn_id, live_sessions.c.user_id, live_sessions.c.opened_at
            ).where(live_sessions.c.edge_id == edge_id)
        )
        return {r.conn_id: (r.user_id, r.opened_at) for r in rows}

    def edge_session_count(self, edge_id: str) -> int:
        return self.conn.execute(
            select(func.count())
            .select_from(live_sessions)
            .where(live_sessions.c.edge_id == edge_id)
        ).scalar_one()

    def online_users(self) -> list[dict[str, Any]]:
        """Everyone with a live session: connections, edges and since when (oldest
        first)."""
        rows = self.conn.execute(
            select(
                users.c.id,
                users.c.username,
                func.count().label("connections"),
                func.count(func.distinct(live_sessions.c.edge_id)).label("edges"),
                func.min(live_sessions.c.opened_at).label("since"),
            )
            .join(users, users.c.id == live_sessions.c.user_id)
            .group_by(users.c.id, users.c.username)
            .order_by(func.min(live_sessions.c.opened_at))
        ).all()
        return [
            {
                "id": r.id,
                "username": r.username,
                "connections": r.connections,
                "edges": r.edges,
                "since": r.since,
            }
            for r in rows
        ]
