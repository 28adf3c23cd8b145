"""Auth handlers: register, login (password or resume token), logout."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from loguru import logger

from chatroom.bus_contract import user_topic
from chatroom.config import Settings
from chatroom.errors import ServiceError, bad_request
from chatroom.protocol import ErrorCode
from chatroom.runtime import Handler, Job, RequestContext
from chatroom.storage.db import now_ms
from services.auth.accounts import check_password, normalise_username, username_key
from services.auth.admin import AdminHandlers, logout_event
from services.auth.resume import TokenResumer, token_hash
from services.auth.retention import RETENTION_PASS_S, forget_old_sessions
from services.auth.store import AuthStore
from services.auth.throttle import Throttle, known_address

BAD_CREDENTIALS = "wrong username or password"


class AuthHandlers:
    def __init__(self, store: AuthStore, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )
        # Verified against when the username is unknown, so that answer takes as long
        # as a wrong password and does not reveal which accounts exist.
        self._dummy_hash = self.hasher.hash(secrets.token_hex(16))
        self.throttle = Throttle(store.buckets, settings)
        self.resumer = TokenResumer(store)
        self.admin = AdminHandlers(store, self.hasher.hash, settings.min_password_chars)

    def ops(self) -> dict[str, Handler]:
        return {
            "register": self.register,
            "login": self.login,
            "logout": self.logout,
            **self.admin.ops(),
        }

    def jobs(self) -> list[Job]:
        def retention(_ctx: RequestContext) -> None:
            forget_old_sessions(self.store, now_ms(), self.settings.session_retention_days)

        return [Job("forget-old-sessions", RETENTION_PASS_S, retention)]

    def register(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        name = normalise_username(args["username"], self.settings.max_username_chars)
        check_password(args["password"], self.settings.min_password_chars)
        self.throttle.before_register(ctx.ip or "?")
        password_hash = self.hasher.hash(args["password"])
        user_id = self.store.create_user(name, username_key(name), password_hash)
        if user_id is None:
            raise ServiceError(
                ErrorCode.USERNAME_TAKEN, f"the username '{name}' is taken; choose another"
            )
        logger.info("registered user {} from {}", user_id, ctx.ip)
        return {"user": {"id": user_id, "username": name}}

    async def login(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        # On the event loop: a resume waits for its batch without a thread; a password
        # login (argon2) takes a worker thread.
        if args.get("token"):
            return await self._resume(ctx, args["token"])
        if not args.get("username") or "password" not in args:
            raise bad_request("password", "give username and password, or a token")
        return await asyncio.to_thread(
            self._password_login, ctx, args["username"], args["password"]
        )

    def _password_login(self, ctx: RequestContext, username: str, password: str) -> dict:
        ip, key = ctx.ip or "?", username_key(username)
        since = now_ms() - self.settings.token_ttl_s * 1000
        row, recent_addresses = self.store.account_for_login(key, since)
        known = row is not None and known_address(recent_addresses, ip)
        reserved = self.throttle.reserve_login(ip, key, known)
        stored = row.password_hash if row else self._dummy_hash
        try:
            self.hasher.verify(stored, password)
            verified = row is not None
        except (VerificationError, InvalidHashError):
            verified = False
        if not verified:
            logger.info("login refused from {}: bad credentials", ip)
            raise ServiceError(ErrorCode.BAD_CREDENTIALS, BAD_CREDENTIALS)
        self.throttle.login_succeeded(reserved)
        if row.disabled:
            raise ServiceError(ErrorCode.ACCOUNT_DISABLED, "this account is disabled")
        if self.hasher.check_needs_rehash(row.password_hash):
            self.store.set_password_hash(row.id, self.hasher.hash(password))
        return self._new_session(ctx, row.id, row.username)

    def _new_session(self, ctx: RequestContext, user_id: int, username: str) -> dict:
        token = secrets.token_urlsafe(32)
        now = now_ms()
        expires = now + self.settings.token_ttl_s * 1000
        session_id = self.store.create_session(
            user_id, token_hash(token), now, expires, ctx.ip or ""
        )
        logger.info("user {} logged in from {} (session {})", user_id, ctx.ip, session_id)
        return {
            "user": {"id": user_id, "username": username},
            "token": token,
            "session_id": session_id,
            "expires_at": expires,
        }

    async def _resume(self, ctx: RequestContext, token: str) -> dict:
        try:
            row = await self.resumer.submit(token)
        except ServiceError as exc:
            if exc.code == ErrorCode.BAD_CREDENTIALS:
                logger.info("token resume refused from {}", ctx.ip)
            raise
        logger.info("user {} resumed session {} from {}", row.user_id, row.id, ctx.ip)
        return {
            "user": {"id": row.user_id, "username": row.username},
            "token": token,
            "session_id": row.id,
            "expires_at": row.expires_at,
        }

    def logout(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        user_id, session_id = ctx.require_user(), ctx.require_session()
        self.store.revoke_session(session_id, user_id)
        # Every connection resumed with the same token loses its login too.
        ctx.publish(user_topic(user_id), logout_event(session_id, ctx.conn))
        logger.info("user {} logged out of session {}", user_id, session_id)
        return {}
