"""Who is online: one live_sessions row per logged-in connection, per edge.

A user is online while they have at least one row. Presence changes for one user are
serialised by locking their profiles row, so two sessions opening at once cannot both
decide they were first. Edges heartbeat; the rows of an edge that stops (crash, kill -9)
are removed by the reaper job, which tells the friends of users left with no session.
When a user's last session goes, the time is kept in last_seen for their friends.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

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


def ensure_profile(engine: Engine, user_id: int) -> None:
    with engine.connect() as conn:
        if conn.execute(select(profiles.c.user_id).where(profiles.c.user_id == user_id)).first():
            return
    try:
        with engine.begin() as conn:
            conn.execute(insert(profiles).values(user_id=user_id, status="", updated_at=now_ms()))
    except IntegrityError:
        pass  # created concurrently by another session of the same user


def lock_profile(conn: Connection, user_id: int) -> Any:
    return conn.execute(
        select(profiles.c.user_id, profiles.c.status)
        .where(profiles.c.user_id == user_id)
        .with_for_update()
    ).one()


def lock_profiles(conn: Connection, user_ids: set[int]) -> dict[int, str]:
    """Lock several users' profiles, always in id order (no deadlock between two
    callers locking overlapping sets); returns each one's status."""
    rows = conn.execute(
        select(profiles.c.user_id, profiles.c.status)
        .where(profiles.c.user_id.in_(sorted(user_ids)))
        .order_by(profiles.c.user_id)
        .with_for_update()
    )
    return {row.user_id: row.status for row in rows}


def avatars_of(conn: Connection, user_ids: list[int]) -> dict[int, str | None]:
    """Each user's avatar hash (None: the default picture), for their own login reply:
    a client shows its user's picture from the first frame on, on every device."""
    rows = conn.execute(
        select(avatars.c.user_id, avatars.c.hash).where(avatars.c.user_id.in_(user_ids))
    )
    found = {row.user_id: row.hash for row in rows}
    return {user_id: found.get(user_id) for user_id in user_ids}


def session_count(conn: Connection, user_id: int) -> int:
    return conn.execute(
        select(func.count()).select_from(live_sessions).where(live_sessions.c.user_id == user_id)
    ).scalar_one()


def touch_edge(conn: Connection, edge_id: str) -> None:
    upsert(conn, edges, {"edge_id": edge_id, "last_seen": now_ms()}, ("last_seen",))


def open_session(conn: Connection, user_id: int, edge_id: str, conn_id: str) -> bool:
    """Record a live session (idempotent); True if the user has just come online.

    The caller holds the user's profile lock. The edge's own row is not touched here:
    every login on that edge would queue on that one row; its heartbeat keeps it fresh,
    and the reaper also finds sessions of an edge that never sent one."""
    return open_sessions(conn, [(user_id, edge_id, conn_id)])[0]


def open_sessions(conn: Connection, openings: list[tuple[int, str, str]]) -> list[bool]:
    """open_session for several (user_id, edge_id, conn_id) at once, in order (two
    statements for any number); the caller holds the users' profile locks."""
    current: dict[int, set[str]] = {user_id: set() for user_id, _, _ in openings}
    for row in conn.execute(
        select(live_sessions.c.user_id, live_sessions.c.conn_id).where(
            live_sessions.c.user_id.in_(list(current))
        )
    ):
        current[row.user_id].add(row.conn_id)
    came_online, rows, now = [], [], now_ms()
    for user_id, edge_id, conn_id in openings:
        theirs = current[user_id]
        came_online.append(conn_id not in theirs and not theirs)
        if conn_id not in theirs:
            theirs.add(conn_id)
            rows.append(
                {"conn_id": conn_id, "edge_id": edge_id, "user_id": user_id, "opened_at": now}
            )
    if rows:
        conn.execute(insert(live_sessions), rows)
    return came_online


def close_session(conn: Connection, user_id: int, conn_id: str) -> bool:
    """Forget a live session; True if it was the user's last one (now offline)."""
    lock_profile(conn, user_id)
    removed = conn.execute(
        delete(live_sessions).where(
            live_sessions.c.conn_id == conn_id, live_sessions.c.user_id == user_id
        )
    ).rowcount
    went_offline = bool(removed) and session_count(conn, user_id) == 0
    if went_offline:
        record_last_seen(conn, [user_id])
    return went_offline


def record_last_seen(conn: Connection, user_ids: list[int]) -> None:
    """These users' last sessions have just closed: remember when (one statement)."""
    now = now_ms()
    upsert(conn, last_seen, [{"user_id": u, "ts": now} for u in user_ids], ("ts",))


def online(conn: Connection, user_ids: list[int]) -> set[int]:
    if not user_ids:
        return set()
    rows = conn.execute(
        select(live_sessions.c.user_id).where(live_sessions.c.user_id.in_(user_ids)).distinct()
    )
    return {r.user_id for r in rows}


def friend_ids(conn: Connection, user_id: int) -> list[int]:
    rows = conn.execute(select(friendships.c.friend_id).where(friendships.c.user_id == user_id))
    return [r.friend_id for r in rows]


def presence_event(conn: Connection, user_id: int, is_online: bool) -> dict[str, Any]:
    row = conn.execute(
        select(users.c.username, profiles.c.status, last_seen.c.ts)
        .select_from(
            users.outerjoin(profiles, profiles.c.user_id == users.c.id).outerjoin(
                last_seen, last_seen.c.user_id == users.c.id
            )
        )
        .where(users.c.id == user_id)
    ).one()
    return event(user_id, row.username, is_online, row.status, row.ts)


def event(
    user_id: int, username: str, is_online: bool, status: str | None, seen_at: int | None = None
) -> dict[str, Any]:
    return {
        "event": "presence",
        "user": {"id": user_id, "username": username},
        "online": is_online,
        "status": status or "",
        "last_seen": shown_last_seen(is_online, seen_at),
    }


def shown_last_seen(is_online: bool, seen_at: int | None) -> int | None:
    """What friends see as last_seen: nothing while the user is online."""
    return None if is_online else seen_at


def set_status(conn: Connection, user_id: int, status: str) -> None:
    conn.execute(
        update(profiles)
        .where(profiles.c.user_id == user_id)
        .values(status=status, updated_at=now_ms())
    )


class ReapGate:
    """Whether the reaper may judge edges by their heartbeats now.

    After this process was frozen (SIGSTOP, swapping, a paused VM) past the dead-edge
    timeout, the heartbeats that queued meanwhile are dropped as expired, so every edge
    looks dead and all their users would flap offline and back. A reaper run that comes
    much later than its period means we were the ones stalled: wait one dead-edge
    timeout for fresh heartbeats before judging again. `now` is time.monotonic()."""

    STALL_FACTOR = 3  # a run this many periods late means we were stalled

    def __init__(self, period_s: float, dead_after_s: float) -> None:
        self.period_s = period_s
        self.dead_after_s = dead_after_s
        self.last_run: float | None = None
        self.not_before = 0.0

    def may_reap(self, now: float) -> bool:
        if self.last_run is not None and now - self.last_run > self.STALL_FACTOR * self.period_s:
            self.not_before = now + self.dead_after_s
        self.last_run = now
        return now >= self.not_before


def stale_edges(conn: Connection, dead_after_ms: int) -> list[str]:
    """Edges that stopped heartbeating, and edges that have sessions but no heartbeat row
    (an edge killed before its first heartbeat)."""
    cutoff = now_ms() - dead_after_ms
    stale = {
        r.edge_id for r in conn.execute(select(edges.c.edge_id).where(edges.c.last_seen < cutoff))
    }
    orphans = conn.execute(
        select(live_sessions.c.edge_id)
        .where(
            live_sessions.c.opened_at < cutoff,
            live_sessions.c.edge_id.not_in(select(edges.c.edge_id)),
        )
        .distinct()
    )
    return sorted(stale | {r.edge_id for r in orphans})


def drop_edge(conn: Connection, edge_id: str) -> list[int]:
    """Remove every session of an edge; return the users who are now offline."""
    user_ids = sorted(
        {
            r.user_id
            for r in conn.execute(
                select(live_sessions.c.user_id).where(live_sessions.c.edge_id == edge_id)
            )
        }
    )
    for user_id in user_ids:  # sorted: the same lock order everywhere, so no deadlock
        lock_profile(conn, user_id)
    conn.execute(delete(live_sessions).where(live_sessions.c.edge_id == edge_id))
    conn.execute(delete(edges).where(edges.c.edge_id == edge_id))
    offline = [u for u in user_ids if session_count(conn, u) == 0]
    record_last_seen(conn, offline)
    return offline


def edge_sessions(conn: Connection, edge_id: str) -> dict[str, tuple[int, int]]:
    """The edge's live sessions: conn_id -> (user_id, opened_at)."""
    rows = conn.execute(
        select(live_sessions.c.conn_id, live_sessions.c.user_id, live_sessions.c.opened_at).where(
            live_sessions.c.edge_id == edge_id
        )
    )
    return {r.conn_id: (r.user_id, r.opened_at) for r in rows}


def edge_session_count(conn: Connection, edge_id: str) -> int:
    return conn.execute(
        select(func.count()).select_from(live_sessions).where(live_sessions.c.edge_id == edge_id)
    ).scalar_one()


def online_users(conn: Connection) -> list[dict[str, Any]]:
    """Everyone with a live session: connections, edges and since when (oldest first)."""
    rows = conn.execute(
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
