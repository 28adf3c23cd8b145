"""Mentions' and notification levels' SQL (docs/protocol.md, Mentions).

A mention is a row (user, room, seq) written with the room message that @names a member
(batch_sql.py writes it in the message's transaction). Unread mentions are counted like
unread messages: the rows after the user's read marker, a range of the primary key,
stopping after UNREAD_CAP + 1. A room's notification level is a row only when it is not
the default "all".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, delete, select

from chatroom.storage.db import now_ms
from chatroom.storage.schema import mentions, messages, room_notify, users
from services.social.store.counts import CountTerm, run_counts

DEFAULT_LEVEL = "all"


class MentionQueries:
    """Methods of a transaction (store.Tx) on its connection."""

    conn: Connection

    def users_with_keys(self, keys: Iterable[str]) -> dict[str, Any]:
        """username key -> (id, username) of the existing (not erased) users among them."""
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        rows = self.conn.execute(
            select(users.c.id, users.c.username, users.c.username_key).where(
                users.c.username_key.in_(wanted), users.c.erased_at.is_(None)
            )
        )
        return {_text(r.username_key): r for r in rows}

    def mention_counts(self, wanted: Iterable[tuple[int, int, int]]) -> dict[tuple[int, int], int]:
        """For (user id, room id, marker): (user id, room id) -> mentions of the user after
        the marker, counted to UNREAD_CAP + 1 (only pairs with at least one are listed)."""
        terms = [
            CountTerm(
                user_id,
                room_id,
                "mentions",
                "user_id = {m} AND room_id = {m} AND seq > {m}",  # the primary key's range
                (user_id, room_id, marker),
            )
            for user_id, room_id, marker in wanted
        ]
        return {(u, r): n for u, r, n in run_counts(self.conn, terms) if n}

    def forget_mentions_of(self, room_id: int, message_id: int) -> None:
        """A deleted message mentions no one any more (its text is gone too)."""
        seq = select(messages.c.seq).where(messages.c.id == message_id).scalar_subquery()
        self.conn.execute(
            delete(mentions).where(mentions.c.room_id == room_id, mentions.c.seq == seq)
        )

    # ------------------------------------------------------------------ levels

    def notify_levels(self, user_ids: Iterable[int]) -> dict[tuple[int, int], str]:
        """(user id, room id) -> level, for the rooms where it is not the default."""
        ids = sorted(set(user_ids))
        if not ids:
            return {}
        rows = self.conn.execute(
            select(room_notify.c.user_id, room_notify.c.room_id, room_notify.c.level).where(
                room_notify.c.user_id.in_(ids)
            )
        )
        return {(r.user_id, r.room_id): r.level for r in rows}

    def set_notify_level(self, user_id: int, room_id: int, level: str) -> bool:
        """Set the user's level in the room; whether it changed."""
        where = (room_notify.c.user_id == user_id, room_notify.c.room_id == room_id)
        old = self.conn.execute(
            select(room_notify.c.level).where(*where).with_for_update()
        ).scalar_one_or_none()
        if (old or DEFAULT_LEVEL) == level:
            return False
        self.conn.execute(delete(room_notify).where(*where))
        if level != DEFAULT_LEVEL:
            self.conn.execute(
                room_notify.insert().values(
                    user_id=user_id, room_id=room_id, level=level, updated_at=now_ms()
                )
            )
        return True


def _text(key: Any) -> str:
    # username_key is a binary column: bytes on some drivers.
    return key.decode() if isinstance(key, bytes) else str(key)
