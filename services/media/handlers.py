"""Media handlers: set and fetch avatars; for operators, export and erase a user's."""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
from typing import Any

from loguru import logger

from chatroom.bus_contract import AdminOp, InternalOp, user_topic
from chatroom.config import Settings
from chatroom.errors import ServiceError, bad_request, user_id_arg
from chatroom.protocol import ErrorCode, Event
from chatroom.service import Handler, RequestContext
from services.media import images
from services.media.decoding import DecodePool
from services.media.store import MediaStore

DEFAULT = "default"
NO_SUCH_AVATAR = "no avatar with this hash that you may see (only your own and your friends')"


class MediaHandlers:
    def __init__(self, store: MediaStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.default = images.default_avatar()
        self.decodes = DecodePool(settings.avatar_decode_workers)
        store.store_images(self.default.hash, self.default.pngs)

    def ops(self) -> dict[str, Handler]:
        return {
            "avatar.set": self.avatar_set,
            "avatar.get": self.avatar_get,
            # Operators only (chatroom admin; served on media's admin path).
            AdminOp.EXPORT: self.admin_export,
            AdminOp.ERASE: self.admin_erase,
            # The user's own, from the edge (account.export, account.delete).
            InternalOp.SELF_EXPORT: self.self_export,
            InternalOp.SELF_ERASE: self.self_erase,
        }

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
        self.store.store_images(avatar.hash, avatar.pngs)
        friend_ids = self.store.set_avatar(user_id, avatar.hash)
        event = {
            "event": Event.AVATAR,
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
        # Anyone may see the default picture, and with CHAT_AVATAR_VISIBILITY=everyone
        # any picture; otherwise only the current avatar of the asker or a friend.
        anyones = key == self.default.hash or self.settings.avatar_visibility == "everyone"
        if key == self.default.hash:
            data = self.store.avatar_png(key, size, shown_to=None)
        elif anyones:  # everyone's, but not the picture of someone who blocks the asker
            data = self.store.avatar_png(key, size, shown_to=None, viewer=user_id)
        else:  # blocking ends the friendship: a blocker's picture is a stranger's
            data = self.store.avatar_png(key, size, shown_to=user_id)
        if data is None:
            # The same answer for a picture one may not see as for one that does not
            # exist: a stranger learns nothing about whose picture it is.
            raise ServiceError(ErrorCode.NOT_FOUND, NO_SUCH_AVATAR)
        return {
            "hash": key,
            "size": size,
            "mime": "image/png",
            "image": base64.b64encode(data).decode("ascii"),
        }

    # ------------------------------------------------------------------ operators

    def admin_export(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """The user's avatar as stored (each size a base64 PNG); null: the default."""
        user_id = user_id_arg(args)
        state = self.store.user_state(user_id)
        if state is None or state.erased_at is not None:
            raise ServiceError(ErrorCode.NOT_FOUND, f"no user with id {user_id}")
        avatar = self.store.export_avatar(user_id)
        if avatar is not None:
            avatar["pngs"] = {
                str(size): base64.b64encode(png).decode("ascii")
                for size, png in avatar["pngs"].items()
            }
        return {"user_id": user_id, "avatar": avatar}

    def admin_erase(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """Forget the avatar of a user auth has marked erased (admin.erase first), and
        its pictures unless someone else uses the same one. Safe to run again."""
        user_id = user_id_arg(args)
        state = self.store.user_state(user_id)
        if state is None:
            raise ServiceError(ErrorCode.NOT_FOUND, f"no user with id {user_id}")
        if state.erased_at is None:
            raise ServiceError(
                ErrorCode.CONFLICT,
                f"user {user_id} is not marked erased: run admin.erase at auth first",
            )
        done = self.store.erase_avatar(user_id, keep_hash=self.default.hash)
        logger.info("admin: erased the avatar of user {} ({})", user_id, done)
        return {"user_id": user_id, **done}

    def self_export(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        return self.admin_export(ctx, {"user_id": ctx.require_user()})

    def self_erase(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        return self.admin_erase(ctx, {"user_id": ctx.require_user()})
