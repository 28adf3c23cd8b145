"""One user's data in social, for an operator (chatroom admin export / erase) and later
for the user themselves: what is kept about them, and erasing it.

Erasing keeps what belongs to others' conversations: the messages the user sent (their
author is the account's row, which auth leaves as the tombstone "deleted user") and
their membership of direct conversations (the other person's conversation keeps its
peer). Their profile row stays too, blanked: it is the lock presence changes take, and a
connection closing after the erase still takes it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, or_, select, update

from chatroom.protocol import DELETED_USER
from chatroom.storage.schema import (
    blocks,
    friend_requests,
    friendships,
    last_seen,
    live_sessions,
    mentions,
    messages,
    profiles,
    room_members,
    room_notify,
    rooms,
    users,
)
from services.social.store.edits import Target, select_targets
from services.social.store.friends import PENDING
from services.social.store.rooms import DIRECT, change_marks


class AccountQueries:
    """Methods of a transaction (store.Tx) on its connection."""

    conn: Connection

    def account_state(self, user_id: int) -> Any:
        """The user's (username, erased_at), or None if there is no such user."""
        return self.conn.execute(
            select(users.c.username, users.c.erased_at).where(users.c.id == user_id)
        ).first()

    def erased_among(self, user_ids: set[int]) -> set[int]:
        rows = self.conn.execute(
            select(users.c.id).where(
                users.c.id.in_(sorted(user_ids)), users.c.erased_at.is_not(None)
            )
        )
        return {r.id for r in rows}

    def _names(self, user_ids: set[int]) -> dict[int, str]:
        if not user_ids:
            return {}
        rows = self.conn.execute(
            select(users.c.id, users.c.username).where(users.c.id.in_(sorted(user_ids)))
        )
        return {r.id: r.username for r in rows}

    def _peer_names(self, user_id: int, room_ids: list[int]) -> dict[int, str]:
        """Direct room id -> 'direct with <the other person>'."""
        if not room_ids:
            return {}
        rows = self.conn.execute(
            select(room_members.c.room_id, users.c.username)
            .join(users, users.c.id == room_members.c.user_id)
            .where(room_members.c.room_id.in_(room_ids), room_members.c.user_id != user_id)
        )
        return {r.room_id: f"direct with {r.username}" for r in rows}

    def _rows(self, where: Any, order: Any, *columns: Any) -> list[Any]:
        """`columns` (and `order`) of the rows matching `where`, in `order`."""
        return list(self.conn.execute(select(*columns, order).where(where).order_by(order)))

    def export_of(self, user_id: int) -> dict[str, Any]:
        """Everything social keeps about the user but their messages (messages_of):
        status, last seen, friends, friend requests both ways, the conversations they
        are in, the rooms they created, their live connections."""
        profile = self.conn.execute(
            select(profiles.c.status, profiles.c.updated_at).where(profiles.c.user_id == user_id)
        ).first()
        seen = self.conn.execute(
            select(last_seen.c.ts).where(last_seen.c.user_id == user_id)
        ).scalar()
        friend_rows = self._rows(
            friendships.c.user_id == user_id, friendships.c.since, friendships.c.friend_id
        )
        request_rows = self.conn.execute(
            select(friend_requests)
            .where(or_(friend_requests.c.from_id == user_id, friend_requests.c.to_id == user_id))
            .order_by(friend_requests.c.created_at, friend_requests.c.id)
        ).all()
        block_rows = self._rows(blocks.c.blocker_id == user_id, blocks.c.since, blocks.c.blocked_id)
        others = {r.friend_id for r in friend_rows} | {r.blocked_id for r in block_rows}
        others |= {r.to_id if r.from_id == user_id else r.from_id for r in request_rows}
        names = self._names(others)
        member_rows = self.conn.execute(
            select(rooms.c.id, rooms.c.name, rooms.c.kind, room_members.c.joined_at)
            .join(rooms, rooms.c.id == room_members.c.room_id)
            .where(room_members.c.user_id == user_id)
            .order_by(rooms.c.id)
        ).all()
        peers = self._peer_names(user_id, [r.id for r in member_rows if r.kind == DIRECT])
        created = self._rows(
            rooms.c.created_by == user_id, rooms.c.id, rooms.c.name, rooms.c.created_at
        )
        connections = self._rows(
            live_sessions.c.user_id == user_id, live_sessions.c.opened_at, live_sessions.c.edge_id
        )

        def request(r: Any) -> dict[str, Any]:
            other = r.to_id if r.from_id == user_id else r.from_id
            return {
                "user": names.get(other, DELETED_USER),
                "status": r.status,
                "created_at": r.created_at,
                "decided_at": r.decided_at,
            }

        return {
            "profile": {
                "status": profile.status if profile else "",
                "updated_at": profile.updated_at if profile else None,
                "last_seen": seen,
            },
            "friends": [
                {"username": names.get(r.friend_id, DELETED_USER), "since": r.since}
                for r in friend_rows
            ],
            "friend_requests_sent": [request(r) for r in request_rows if r.from_id == user_id],
            "friend_requests_received": [request(r) for r in request_rows if r.to_id == user_id],
            "conversations": [
                {"name": peers.get(r.id, r.name), "kind": r.kind, "joined_at": r.joined_at}
                for r in member_rows
            ],
            "rooms_created": [{"name": r.name, "created_at": r.created_at} for r in created],
            "blocked": [
                {"username": names.get(r.blocked_id, DELETED_USER), "since": r.since}
                for r in block_rows
            ],
            "connections": [{"edge": r.edge_id, "opened_at": r.opened_at} for r in connections],
        }

    def messages_of(self, user_id: int, after_id: int, limit: int) -> list[dict[str, Any]]:
        """The messages the user sent, by id after `after_id`, at most `limit`, each with
        its conversation's name ('direct with bob' for a direct one) and time; an edited
        one with `edited_at`, a deleted one (its text is gone: '') with `deleted` true
        and `deleted_at`, marked as clients get messages (rooms.change_marks)."""
        rows = self.conn.execute(
            select(
                messages.c.id,
                messages.c.room_id,
                messages.c.seq,
                messages.c.text,
                messages.c.created_at,
                messages.c.edited_at,
                messages.c.deleted_at,
                rooms.c.name,
                rooms.c.kind,
            )
            .join(rooms, rooms.c.id == messages.c.room_id)
            .where(
                messages.c.sender_id == user_id,
                messages.c.id > after_id,
                messages.c.kind == "message",
            )
            .order_by(messages.c.id)
            .limit(limit)
        ).all()
        direct = sorted({r.room_id for r in rows if r.kind == DIRECT})
        peers = self._peer_names(user_id, direct)
        return [
            {
                "id": r.id,
                "conversation": peers.get(r.room_id, r.name),
                "seq": r.seq,
                "ts": r.created_at,
                "text": r.text,
                **change_marks(r.edited_at, r.deleted_at),
            }
            for r in rows
        ]

    def live_messages_of(self, user_id: int, limit: int) -> list[Target]:
        """At most `limit` of the messages the user sent that are not deleted, with
        their rooms, by room then id (the order their rooms' rows are locked in)."""
        rows = self.conn.execute(
            select_targets()
            .where(messages.c.sender_id == user_id, messages.c.deleted_at.is_(None))
            .order_by(messages.c.room_id, messages.c.id)
            .limit(limit)
        ).all()
        return [Target(*row) for row in rows]

    def erase_of(self, user_id: int) -> dict[str, Any]:
        """Delete what social keeps about the user, but what others' conversations need
        (see the module). The caller holds the user's profile lock. Returns who must be
        told: `friends` (ids), `asked` (ids of users their pending requests went to),
        `askers` (ids of users whose pending requests came to them), `groups` (rows of
        the group rooms they left), with counts. Safe to run again."""
        friends = [
            r.friend_id
            for r in self.conn.execute(
                select(friendships.c.friend_id).where(friendships.c.user_id == user_id)
            )
        ]
        self.conn.execute(
            delete(friendships).where(
                or_(friendships.c.user_id == user_id, friendships.c.friend_id == user_id)
            )
        )
        pending = self.conn.execute(
            select(friend_requests.c.from_id, friend_requests.c.to_id).where(
                or_(friend_requests.c.from_id == user_id, friend_requests.c.to_id == user_id),
                friend_requests.c.status == PENDING,
            )
        ).all()
        asked = sorted({r.to_id for r in pending if r.from_id == user_id})
        askers = sorted({r.from_id for r in pending if r.to_id == user_id})
        requests = self.conn.execute(
            delete(friend_requests).where(
                or_(friend_requests.c.from_id == user_id, friend_requests.c.to_id == user_id)
            )
        ).rowcount
        groups = self.conn.execute(
            select(rooms.c.id, rooms.c.name, rooms.c.kind, rooms.c.last_seq)
            .join(room_members, room_members.c.room_id == rooms.c.id)
            .where(room_members.c.user_id == user_id, rooms.c.kind != DIRECT)
            .order_by(rooms.c.id)
        ).all()
        if groups:
            self.conn.execute(
                delete(room_members).where(
                    room_members.c.user_id == user_id,
                    room_members.c.room_id.in_([g.id for g in groups]),
                )
            )
        self.conn.execute(
            update(rooms).where(rooms.c.created_by == user_id).values(created_by=None)
        )
        self.conn.execute(delete(live_sessions).where(live_sessions.c.user_id == user_id))
        # Whom they blocked goes; others' blocks of them are those users' own data.
        self.conn.execute(delete(blocks).where(blocks.c.blocker_id == user_id))
        self.conn.execute(delete(last_seen).where(last_seen.c.user_id == user_id))
        # Who mentioned them where, and their notification levels (feature 4).
        self.conn.execute(delete(mentions).where(mentions.c.user_id == user_id))
        self.conn.execute(delete(room_notify).where(room_notify.c.user_id == user_id))
        self.conn.execute(
            update(profiles).where(profiles.c.user_id == user_id).values(status="", updated_at=0)
        )
        return {
            "friends": friends,
            "asked": asked,
            "askers": askers,
            "groups": list(groups),
            "requests_deleted": requests,
        }
