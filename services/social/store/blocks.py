"""Blocks' SQL: who blocked whom (docs/security.md, Blocking)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, or_, select

from chatroom.storage.schema import blocks, friend_requests, users

PENDING = "pending"  # friend_requests.status (store/friends.py)


class BlockQueries:
    """Methods of a transaction (store.Tx) on its connection."""

    conn: Connection

    def block(self, blocker_id: int, blocked_id: int, now: int) -> bool:
        """Record the block; False if it was there already. The caller holds both
        users' profile locks, so the check and the insert see no other writer."""
        if self.blocks_user(blocker_id, blocked_id):
            return False
        self.conn.execute(
            insert(blocks).values(blocker_id=blocker_id, blocked_id=blocked_id, since=now)
        )
        return True

    def unblock(self, blocker_id: int, blocked_id: int) -> bool:
        """Drop the block; False if there was none."""
        removed = self.conn.execute(
            delete(blocks).where(
                blocks.c.blocker_id == blocker_id, blocks.c.blocked_id == blocked_id
            )
        ).rowcount
        return bool(removed)

    def blocks_user(self, blocker_id: int, blocked_id: int) -> bool:
        found = self.conn.execute(
            select(blocks.c.since).where(
                blocks.c.blocker_id == blocker_id, blocks.c.blocked_id == blocked_id
            )
        ).first()
        return found is not None

    def block_count(self, blocker_id: int) -> int:
        return self.conn.execute(
            select(func.count()).select_from(blocks).where(blocks.c.blocker_id == blocker_id)
        ).scalar_one()

    def blocked_ids(self, blocker_id: int) -> set[int]:
        """Whom the user blocks (their ids): what history and sync hide from them."""
        rows = self.conn.execute(
            select(blocks.c.blocked_id).where(blocks.c.blocker_id == blocker_id)
        )
        return {r[0] for r in rows}

    def blocked_lists(self, blocker_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
        """Each user's blocked users (id, username, since), oldest block first; one query
        for any number of users (a login batch)."""
        rows = self.conn.execute(
            select(blocks.c.blocker_id, users.c.id, users.c.username, blocks.c.since)
            .join(users, users.c.id == blocks.c.blocked_id)
            .where(blocks.c.blocker_id.in_(sorted(set(blocker_ids))))
            .order_by(blocks.c.since, users.c.id)
        )
        lists: dict[int, list[dict[str, Any]]] = {user_id: [] for user_id in blocker_ids}
        for r in rows:
            lists[r.blocker_id].append({"id": r.id, "username": r.username, "since": r.since})
        return lists

    def blockers_among(self, viewer_id: int, user_ids: list[int]) -> set[int]:
        """Which of `user_ids` block the viewer (what they are shown of those is
        blanked: room.members)."""
        if not user_ids:
            return set()
        rows = self.conn.execute(
            select(blocks.c.blocker_id).where(
                blocks.c.blocked_id == viewer_id, blocks.c.blocker_id.in_(user_ids)
            )
        )
        return {r[0] for r in rows}

    def drop_pending_requests(self, a: int, b: int) -> int:
        """Pending friend requests between the two, either way, deleted (a block drops
        them; an unblock drops the ones the blocked user sent meanwhile, unseen)."""
        return self.conn.execute(
            delete(friend_requests).where(
                friend_requests.c.status == PENDING,
                or_(
                    and_(friend_requests.c.from_id == a, friend_requests.c.to_id == b),
                    and_(friend_requests.c.from_id == b, friend_requests.c.to_id == a),
                ),
            )
        ).rowcount
