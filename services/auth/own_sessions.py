"""The SQL of a user's own sessions (account.sessions, account.logout_others,
account.password): a part of AuthStore, one transaction a method."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select, update

from chatroom.storage.db import now_ms
from chatroom.storage.schema import sessions, users

# What a user is shown of each session (never its token hash).
LISTED = ("id", "created_at", "last_used_at", "expires_at", "ip", "device")


class OwnSessions:
    engine: Engine

    def sessions_of(self, user_id: int) -> list[dict[str, Any]]:
        """The user's live sessions (not logged out, not expired), newest first: when
        each signed in, was last used (a resume, its connection's close, and while it
        stays connected every CHAT_SESSION_IN_USE_S: touch_sessions), expires, its
        address and the device name its login gave (None: none given)."""
        now = now_ms()
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(*(sessions.c[name] for name in LISTED))
                .where(
                    sessions.c.user_id == user_id,
                    sessions.c.revoked_at.is_(None),
                    sessions.c.expires_at > now,
                )
                .order_by(sessions.c.last_used_at.desc(), sessions.c.id.desc())
            ).all()
        return [{name: getattr(r, name) for name in LISTED} for r in rows]

    def touch_sessions(self, session_ids: list[int]) -> int:
        """These sessions were in use until now (an edge's report): their last_used_at
        moves forward; ended sessions are left alone. How many moved."""
        now = now_ms()
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(sessions)
                .where(
                    sessions.c.id.in_(sorted(set(session_ids))),
                    sessions.c.revoked_at.is_(None),
                    sessions.c.last_used_at < now,
                )
                .values(last_used_at=now)
            )
            return int(moved.rowcount)

    def end_sessions(
        self, user_id: int, keep: int, only: int | None = None, password_hash: str | None = None
    ) -> int:
        """In one transaction: with `password_hash`, the user's new password; then their
        live sessions logged out, all but `keep` (or only `only`, if it is theirs and
        not `keep`). How many were ended: 0 for another user's session id."""
        now = now_ms()
        with self.engine.begin() as conn:
            if password_hash is not None:
                conn.execute(
                    update(users).where(users.c.id == user_id).values(password_hash=password_hash)
                )
            ended = (
                update(sessions)
                .where(
                    sessions.c.user_id == user_id,
                    sessions.c.id != keep,
                    sessions.c.revoked_at.is_(None),
                    sessions.c.expires_at > now,
                )
                .values(revoked_at=now)
            )
            if only is not None:
                ended = ended.where(sessions.c.id == only)
            return int(conn.execute(ended).rowcount)
