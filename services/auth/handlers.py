"""Auth handlers: register, login (password or resume token), logout."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from loguru import logger
from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError

from chatroom.bus_contract import user_topic
from chatroom.config import Settings
from chatroom.errors import ServiceError, bad_request
from chatroom.protocol import ErrorCode
from chatroom.runtime import RequestContext
from chatroom.storage.db import now_ms
from chatroom.storage.schema import sessions, users
from services.auth.accounts import check_password, normalise_username, username_key
from services.auth.admin import AdminHandlers, logout_event
from services.auth.resume import TokenResumer, token_hash
from services.auth.throttle import Throttle, known_address

BAD_CREDENTIALS = "wrong username or password"


class AuthHandlers:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
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
        self.throttle = Throttle(engine, settings)
        self.resumer = TokenResumer(engine)

    def table(self) -> dict[str, Any]:
        admin = AdminHandlers(self.engine, self.hasher.hash, self.settings.min_password_chars)
        return {
            "register": self.register,
            "login": self.login,
            "logout": self.logout,
            **admin.table(),
        }

    def register(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        name = normalise_username(args["username"], self.settings.max_username_chars)
        check_password(args["password"], self.settings.min_password_chars)
        self.throttle.before_register(ctx.ip or "?")
        password_hash = self.hasher.hash(args["password"])
        try:
            with self.engine.begin() as conn:
                user_id = conn.execute(
                    insert(users).values(
                        username=name,
                        username_key=username_key(name),
                        password_hash=password_hash,
                        disabled=False,
                        created_at=now_ms(),
                    )
                ).inserted_primary_key[0]
        except IntegrityError:
            raise ServiceError(
                ErrorCode.USERNAME_TAKEN, f"the username '{name}' is taken; choose another"
            ) from None
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
        with self.engine.connect() as conn:
            row = conn.execute(
                select(users.c.id, users.c.username, users.c.password_hash, users.c.disabled).where(
                    users.c.username_key == key
                )
            ).first()
            since = now_ms() - self.settings.token_ttl_s * 1000
            known = row is not None and known_address(conn, row.id, ip, since)
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
            with self.engine.begin() as conn:
                conn.execute(
                    update(users)
                    .where(users.c.id == row.id)
                    .values(password_hash=self.hasher.hash(password))
                )
        return self._new_session(ctx, row.id, row.username)

    def _new_session(self, ctx: RequestContext, user_id: int, username: str) -> dict:
        token = secrets.token_urlsafe(32)
        now = now_ms()
        expires = now + self.settings.token_ttl_s * 1000
        with self.engine.begin() as conn:
            session_id = conn.execute(
                insert(sessions).values(
                    user_id=user_id,
                    token_hash=token_hash(token),
                    created_at=now,
                    last_used_at=now,
                    expires_at=expires,
                    ip=(ctx.ip or "")[:45],
                )
            ).inserted_primary_key[0]
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
        user_id = ctx.require_user()
        with self.engine.begin() as conn:
            conn.execute(
                update(sessions)
                .where(sessions.c.id == ctx.session_id, sessions.c.user_id == user_id)
                .values(revoked_at=now_ms())
            )
        # Every connection resumed with the same token loses its login too.
        ctx.publish(user_topic(user_id), logout_event(ctx.session_id, ctx.conn))
        logger.info("user {} logged out of session {}", user_id, ctx.session_id)
        return {}
