"""A user's own account (account.*): change the password, list and end sessions, and
auth's steps of their own export and delete (the edge runs the whole chain,
chatroom/account_steps.py). The export and the erase are the operators' handlers
(admin.py) for the asker's own account: the same store methods, the same rules.

Every op that needs the password checks it as a login does (AuthHandlers.
check_own_password: the failed-login throttle, then the argon2 gate), so holding a
session does not help to guess it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from loguru import logger

from chatroom.bus_contract import SESSIONS_USED_MAX, Control, InternalOp, user_topic
from chatroom.config import Settings
from chatroom.errors import ServiceError, bad_request
from chatroom.protocol import INT64_MAX, ErrorCode
from chatroom.service import Handler, RequestContext, in_thread
from services.auth.accounts import check_password, username_key
from services.auth.admin import (
    PASSWORD_CHANGED,
    SIGNED_OUT_ELSEWHERE,
    AdminHandlers,
    kick_event,
    logout_event,
    others_out_event,
)
from services.auth.store import AuthStore

CheckPassword = Callable[..., Awaitable[Any]]


class OwnAccountHandlers:
    def __init__(
        self,
        store: AuthStore,
        admin: AdminHandlers,
        check_own_password: CheckPassword,
        hash_password: Callable[[str], str],
        settings: Settings,
    ) -> None:
        self.store = store
        self.admin = admin
        self.check_own_password = check_own_password
        self.hash_password = hash_password
        self.settings = settings

    def ops(self) -> dict[str, Handler]:
        return {
            "account.password": self.change_password,
            "account.sessions": self.sessions,
            "account.logout_others": self.logout_others,
            "account.delete": self.delete,
            InternalOp.SELF_EXPORT: self.export,
            InternalOp.SELF_ERASE_FINISH: self.erase_finish,
            InternalOp.SESSIONS_USED: self.sessions_used,
        }

    async def change_password(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """The old password (checked like a login's), then the new one: stored, and every
        other session of the user logged out (a thief's too); this one stays."""
        user_id, session_id = ctx.require_user(), ctx.require_session()
        new = args["new_password"]
        check_password(new, self.settings.min_password_chars)
        if new == args["old_password"]:
            raise ServiceError(
                ErrorCode.INVALID_PASSWORD, "the new password is the old one", field="new_password"
            )
        new_hash = await self.check_own_password(
            ctx, args["old_password"], lambda: self.hash_password(new)
        )
        ended = await in_thread(ctx, self.store.end_sessions, user_id, session_id, None, new_hash)
        ctx.publish(user_topic(user_id), others_out_event(session_id, PASSWORD_CHANGED))
        logger.info("user {} changed their password ({} other sessions ended)", user_id, ended)
        return {"sessions_ended": ended}

    def sessions(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """The user's live sessions; `current`: the one asking."""
        user_id, session_id = ctx.require_user(), ctx.require_session()
        rows = self.store.sessions_of(user_id)
        return {"sessions": [{**r, "current": r["id"] == session_id} for r in rows]}

    def sessions_used(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """An edge's report of sessions in use until now (tcp_edge/session_use.py)."""
        ids = args.get("sessions")
        if not isinstance(ids, list) or not ids or len(ids) > SESSIONS_USED_MAX:
            raise bad_request("sessions", f"a list of 1 to {SESSIONS_USED_MAX} session ids")
        if not all(type(i) is int and 0 < i <= INT64_MAX for i in ids):
            raise bad_request("sessions", "session ids are positive integers")
        return {"moved": self.store.touch_sessions(ids)}

    def logout_others(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """Every other session of the user logged out, or just `session` (one of theirs;
        another user's id is not_found, as one that does not exist)."""
        user_id, session_id = ctx.require_user(), ctx.require_session()
        only = args.get("session")
        if only == session_id:
            raise bad_request("session", "that is this session: use logout")
        ended = self.store.end_sessions(user_id, session_id, only)
        if only is not None:
            if not ended:
                raise ServiceError(ErrorCode.NOT_FOUND, "you have no such session signed in")
            ctx.publish(user_topic(user_id), logout_event(only, None))
        elif ended:
            ctx.publish(user_topic(user_id), others_out_event(session_id, SIGNED_OUT_ELSEWHERE))
        logger.info("user {} signed out {} other sessions", user_id, ended)
        return {"sessions_ended": ended}

    async def delete(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        """The first step of deleting one's account: the password (checked like a
        login's), then what admin.erase does: marked erased, disabled, every token
        revoked, every other connection closed (account_deleted). The edge then runs
        social's, media's and auth's last steps."""
        user_id = ctx.require_user()
        await self.check_own_password(ctx, args["password"])
        begun = await in_thread(ctx, self.store.begin_erase, username_key(ctx.username or ""))
        if begun is None or begun["user_id"] != user_id:
            raise ServiceError(ErrorCode.NOT_FOUND, "this account no longer exists")
        event = {**kick_event(ErrorCode.ACCOUNT_DELETED), Control.ORIGIN: ctx.conn}
        ctx.publish(user_topic(user_id), event)
        logger.info("user {} is deleting their account", user_id)
        return begun

    def export(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        ctx.require_user()
        return self.admin.export(ctx, {"username": ctx.username})

    def erase_finish(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        return self.admin.erase_finish(ctx, {"user_id": ctx.require_user()})
