"""Media handlers: set and fetch avatars."""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
from typing import Any

from loguru import logger
from sqlalchemy import Connection, Engine, insert, or_, select
from sqlalchemy.exc import IntegrityError

from chatroom.bus_contract import user_topic
from chatroom.config import Settings
from chatroom.errors import ServiceError, bad_request
from chatroom.protocol import ErrorCode
from chatroom.runtime import RequestContext, Service
from chatroom.storage.db import now_ms, upsert
from chatroom.storage.schema import avatar_images, avatars, friendships
from services.media import images
from services.media.decoding import DecodePool

DEFAULT = "default"
NO_SUCH_AVATAR = "no avatar with this hash that you may see (only your own and your friends')"


def store_images(engine: Engine, avatar: images.Avatar) -> None:
    """Content-addressed: an image already stored (same hash) is not stored again."""
    with engine.connect() as conn:
        if conn.execute(
            select(avatar_images.c.hash).where(avatar_images.c.hash == avatar.hash)
        ).first():
            return
    try:
        with engine.begin() as conn:
            conn.execute(
                insert(avatar_images),
                [
                    {"hash": avatar.hash, "size": size, "data": png, "created_at": now_ms()}
                    for size, png in avatar.pngs.items()
                ],
            )
    except IntegrityError:
        pass  # the same picture was stored concurrently


class MediaHandlers:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.default = images.default_avatar()
        self.decodes = DecodePool(settings.avatar_decode_workers)
        store_images(engine, self.default)

    def service(self) -> Service:
        return Service({"avatar.set": self.avatar_set, "avatar.get": self.avatar_get})

    async def avatar_set(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        # On the event loop: the upload waits for a decode slot without holding a worker
        # thread; decoding runs on the decode pool, storing on the worker threads.
        user_id = ctx.require_user()
        avatar, uploaded = await self.decodes.run(
            user_id, ctx.deadline_ms, functools.partial(self._decode, args["image"])
        )
        await asyncio.to_thread(self._store, ctx, user_id, avatar)
        logger.info(
            "user {} set avatar {} ({} bytes uploaded)", user_id, avatar.hash[:12], uploaded
        )
        return {"hash": avatar.hash, "sizes": list(images.SIZES)}

    def _decode(self, image_b64: str) -> tuple[images.Avatar, int]:
        try:
            data = base64.b64decode(image_b64, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request("image", "image must be base64-encoded bytes") from None
        avatar = images.normalise(
            data, self.settings.avatar_max_bytes, self.settings.avatar_max_pixels
        )
        return avatar, len(data)

    def _store(self, ctx: RequestContext, user_id: int, avatar: images.Avatar) -> None:
        store_images(self.engine, avatar)
        with self.engine.begin() as conn:
            upsert(
                conn,
                avatars,
                {"user_id": user_id, "hash": avatar.hash, "updated_at": now_ms()},
                ("hash", "updated_at"),
            )
            friend_ids = [
                r.friend_id
                for r in conn.execute(
                    select(friendships.c.friend_id).where(friendships.c.user_id == user_id)
                )
            ]
        event = {
            "event": "avatar",
            "user": {"id": user_id, "username": ctx.username},
            "hash": avatar.hash,
        }
        for uid in [user_id, *friend_ids]:
            ctx.publish(user_topic(uid), event)

    def avatar_get(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        user_id = ctx.require_user()
        wanted = args["hash"]
        size = args.get("size", images.SIZES[0])
        if size not in images.SIZES:
            raise bad_request("size", f"size must be one of {list(images.SIZES)}")
        key = self.default.hash if wanted == DEFAULT else wanted
        with self.engine.connect() as conn:
            if key != self.default.hash and not self._may_see(conn, user_id, key):
                # The same answer as for a hash that does not exist: a stranger learns
                # nothing about whose picture it is.
                raise ServiceError(ErrorCode.NOT_FOUND, NO_SUCH_AVATAR)
            data = conn.execute(
                select(avatar_images.c.data).where(
                    avatar_images.c.hash == key, avatar_images.c.size == size
                )
            ).scalar()
        if data is None:
            raise ServiceError(ErrorCode.NOT_FOUND, NO_SUCH_AVATAR)
        return {
            "hash": key,
            "size": size,
            "mime": "image/png",
            "image": base64.b64encode(data).decode("ascii"),
        }

    def _may_see(self, conn: Connection, user_id: int, avatar_hash: str) -> bool:
        """Whether the picture is the current avatar of the user or of a friend (or
        anyone's, with CHAT_AVATAR_VISIBILITY=everyone)."""
        if self.settings.avatar_visibility == "everyone":
            return True
        friends = select(friendships.c.friend_id).where(friendships.c.user_id == user_id)
        owner = conn.execute(
            select(avatars.c.user_id)
            .where(
                avatars.c.hash == avatar_hash,
                or_(avatars.c.user_id == user_id, avatars.c.user_id.in_(friends)),
            )
            .limit(1)
        ).first()
        return owner is not None
