"""All of media's SQL: stored pictures (content-addressed) and who uses which.

Plain values in and out; each method is one transaction (or one read). The rules (who
may see a picture, what an upload must be) are the handlers'.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, delete, func, insert, or_, select
from sqlalchemy.exc import IntegrityError

from chatroom.storage.db import now_ms, upsert
from chatroom.storage.schema import avatar_images, avatars, blocks, friendships, users


class MediaStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def store_images(self, avatar_hash: str, pngs: dict[int, bytes]) -> None:
        """Content-addressed: an image already stored (same hash) is not stored again."""
        with self.engine.connect() as conn:
            if conn.execute(
                select(avatar_images.c.hash).where(avatar_images.c.hash == avatar_hash)
            ).first():
                return
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(avatar_images),
                    [
                        {"hash": avatar_hash, "size": size, "data": png, "created_at": now_ms()}
                        for size, png in pngs.items()
                    ],
                )
        except IntegrityError:
            pass  # the same picture was stored concurrently

    def set_avatar(self, user_id: int, avatar_hash: str) -> list[int]:
        """Make the picture the user's avatar; returns the user's friends' ids, read in
        the same transaction (they are told)."""
        with self.engine.begin() as conn:
            upsert(
                conn,
                avatars,
                {"user_id": user_id, "hash": avatar_hash, "updated_at": now_ms()},
                ("hash", "updated_at"),
            )
            return [
                r.friend_id
                for r in conn.execute(
                    select(friendships.c.friend_id).where(friendships.c.user_id == user_id)
                )
            ]

    def avatar_png(
        self, avatar_hash: str, size: int, shown_to: int | None, viewer: int | None = None
    ) -> bytes | None:
        """The picture's PNG at that size, or None if there is none. With `shown_to` (a
        user id), also None unless the picture is the current avatar of that user or of
        one of their friends (both read on one connection). With `viewer` (pictures shown
        to anyone), None if every user whose avatar it is blocks the viewer (social's
        blocks table: this database is shared, as friendships are)."""
        with self.engine.connect() as conn:
            if viewer is not None:
                owners = select(avatars.c.user_id).where(avatars.c.hash == avatar_hash)
                unblocked = conn.execute(
                    select(avatars.c.user_id)
                    .where(
                        avatars.c.hash == avatar_hash,
                        avatars.c.user_id.not_in(
                            select(blocks.c.blocker_id).where(blocks.c.blocked_id == viewer)
                        ),
                    )
                    .limit(1)
                ).first()
                if unblocked is None and conn.execute(owners.limit(1)).first() is not None:
                    return None
            if shown_to is not None:
                friends = select(friendships.c.friend_id).where(friendships.c.user_id == shown_to)
                owner = conn.execute(
                    select(avatars.c.user_id)
                    .where(
                        avatars.c.hash == avatar_hash,
                        or_(avatars.c.user_id == shown_to, avatars.c.user_id.in_(friends)),
                    )
                    .limit(1)
                ).first()
                if owner is None:
                    return None
            return conn.execute(
                select(avatar_images.c.data).where(
                    avatar_images.c.hash == avatar_hash, avatar_images.c.size == size
                )
            ).scalar()

    # ------------------------------------------------------------------ one user's data

    def user_state(self, user_id: int) -> Any:
        """The user's (erased_at) row, or None if there is no such user."""
        with self.engine.connect() as conn:
            return conn.execute(select(users.c.erased_at).where(users.c.id == user_id)).first()

    def export_avatar(self, user_id: int) -> dict[str, Any] | None:
        """The user's avatar: its hash, when it was set, and the stored PNG of each size;
        None with the default picture."""
        with self.engine.connect() as conn:
            row = conn.execute(
                select(avatars.c.hash, avatars.c.updated_at).where(avatars.c.user_id == user_id)
            ).first()
            if row is None:
                return None
            pngs = conn.execute(
                select(avatar_images.c.size, avatar_images.c.data)
                .where(avatar_images.c.hash == row.hash)
                .order_by(avatar_images.c.size)
            ).all()
        return {
            "hash": row.hash,
            "updated_at": row.updated_at,
            "pngs": {p.size: p.data for p in pngs},
        }

    def erase_avatar(self, user_id: int, keep_hash: str) -> dict[str, int]:
        """Forget the user's avatar and, unless another user has the same picture (or it
        is `keep_hash`, the default), its stored images. Safe to run again."""
        with self.engine.begin() as conn:
            row = conn.execute(
                select(avatars.c.hash).where(avatars.c.user_id == user_id).with_for_update()
            ).first()
            if row is None:
                return {"avatars_deleted": 0, "images_deleted": 0}
            conn.execute(delete(avatars).where(avatars.c.user_id == user_id))
            shared = conn.execute(
                select(func.count()).select_from(avatars).where(avatars.c.hash == row.hash)
            ).scalar_one()
            images = 0
            if not shared and row.hash != keep_hash:
                images = conn.execute(
                    delete(avatar_images).where(avatar_images.c.hash == row.hash)
                ).rowcount
        return {"avatars_deleted": 1, "images_deleted": images}
