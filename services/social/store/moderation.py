"""Roles, bans, moderation events and the audit trail of rooms (issue #17, feature 6).

A moderation action is, in one transaction: the room's row locked by taking its next
seq (`next_seq`, store/edits.py: the same counter as messages, so sync replays the
event in order), the checks, the change, a message row of kind "event" with that seq
(`add_event`: `text` is "<action>:<detail>", target_id the user acted on, sender_id the
actor, 0 for the operator), and a row of room_audit.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from chatroom.storage.db import inserted_id
from chatroom.storage.schema import messages, room_audit, room_bans, room_members, rooms, users
from services.social.store.rooms import EVENT, OWNER

OPERATOR_ID = 0  # sender_id of the operator's events (no user has id 0)


class ModerationQueries:
    """Methods of a transaction (store.Tx) on its connection."""

    conn: Connection

    def role_of(self, room_id: int, user_id: int) -> str | None:
        """The user's role in the room (None: no row, i.e. not a member of a group)."""
        return self.conn.execute(
            select(room_members.c.role).where(
                room_members.c.room_id == room_id, room_members.c.user_id == user_id
            )
        ).scalar()

    def set_role(self, room_id: int, user_id: int, role: str) -> None:
        self.conn.execute(
            update(room_members)
            .where(room_members.c.room_id == room_id, room_members.c.user_id == user_id)
            .values(role=role)
        )

    def owner_count(self, room_id: int) -> int:
        return self.conn.execute(
            select(func.count()).where(
                room_members.c.room_id == room_id, room_members.c.role == OWNER
            )
        ).scalar_one()

    def ban(self, room_id: int, user_id: int, banned_by: int | None, now: int) -> None:
        self.conn.execute(
            insert(room_bans).values(room_id=room_id, user_id=user_id, banned_by=banned_by, at=now)
        )

    def unban(self, room_id: int, user_id: int) -> bool:
        """False if the user was not banned."""
        removed = self.conn.execute(
            delete(room_bans).where(room_bans.c.room_id == room_id, room_bans.c.user_id == user_id)
        ).rowcount
        return bool(removed)

    def bans_of(self, room_id: int) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            select(room_bans.c.user_id, users.c.username, room_bans.c.at)
            .join(users, users.c.id == room_bans.c.user_id)
            .where(room_bans.c.room_id == room_id)
            .order_by(room_bans.c.at)
        )
        return [{"id": r.user_id, "username": r.username, "at": r.at} for r in rows]

    def update_room(self, room_id: int, **values: Any) -> None:
        """Set the room's topic, announce or deleted_at."""
        self.conn.execute(update(rooms).where(rooms.c.id == room_id).values(**values))

    def remove_all_members(self, room_id: int) -> list[int]:
        """Empty the room (it is being deleted); the ids of who was in it."""
        ids = [
            r[0]
            for r in self.conn.execute(
                select(room_members.c.user_id).where(room_members.c.room_id == room_id)
            )
        ]
        self.conn.execute(delete(room_members).where(room_members.c.room_id == room_id))
        return ids

    def add_event(
        self,
        room_id: int,
        seq: int,
        actor_id: int | None,
        action: str,
        target_id: int | None,
        detail: str,
        now: int,
    ) -> int:
        """The event row (kind "event") with `seq`, and the audit row; the event's id."""
        self.audit_only(room_id, actor_id, action, target_id, detail, now)
        return inserted_id(
            self.conn.execute(
                messages.insert().values(
                    room_id=room_id,
                    seq=seq,
                    sender_id=OPERATOR_ID if actor_id is None else actor_id,
                    text=f"{action}:{detail}",
                    created_at=now,
                    kind=EVENT,
                    target_id=target_id,
                )
            )
        )

    def audit_only(
        self,
        room_id: int,
        actor_id: int | None,
        action: str,
        target_id: int | None,
        detail: str,
        now: int,
    ) -> None:
        """An audit row for an action whose event is another row (a moderator's delete
        of someone's message: its "delete" row)."""
        self.conn.execute(
            insert(room_audit).values(
                room_id=room_id,
                actor_id=actor_id,
                action=action,
                target_id=target_id,
                detail=detail,
                at=now,
            )
        )

    def audit_of(self, room_id: int, limit: int) -> list[dict[str, Any]]:
        """The room's newest `limit` audit rows, oldest first, with usernames."""
        actor = users.alias("actor")
        target = users.alias("target")
        rows = self.conn.execute(
            select(
                room_audit.c.id,
                room_audit.c.action,
                room_audit.c.detail,
                room_audit.c.at,
                room_audit.c.actor_id,
                actor.c.username.label("actor"),
                room_audit.c.target_id,
                target.c.username.label("target"),
            )
            .outerjoin(actor, actor.c.id == room_audit.c.actor_id)
            .outerjoin(target, target.c.id == room_audit.c.target_id)
            .where(room_audit.c.room_id == room_id)
            .order_by(room_audit.c.id.desc())
            .limit(limit)
        ).all()
        return [
            {
                "id": r.id,
                "at": r.at,
                "action": r.action,
                "actor": r.actor if r.actor_id is not None else None,
                "target": r.target,
                "detail": r.detail,
            }
            for r in reversed(rows)
        ]
