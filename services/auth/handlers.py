"""Auth handlers: register, login (password or resume token), logout."""

from __future__ import annotations

import asyncio
import secrets
import time
from typing import Any, NamedTuple

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from loguru import logger

from chatroom.bus_contract import user_topic
from chatroom.config import Settings
from chatroom.devices import device_problem
from chatroom.errors import ServiceError, bad_request
from chatroom.protocol import ErrorCode
from chatroom.service import DeadlinePassed, Handler, Job, RequestContext, in_thread
from chatroom.storage.db import now_ms
from services.auth.accounts import check_password, normalise_username, username_key
from services.auth.admin import AdminHandlers, logout_event
from services.auth.hashing import GateBusy, HashGate
from services.auth.own_account import OwnAccountHandlers
from services.auth.resume import TokenResumer, token_hash
from services.auth.retention import RETENTION_PASS_S, forget_old_sessions
from services.auth.store import AuthStore
from services.auth.throttle import Bucket, Throttle, known_address

BAD_CREDENTIALS = "wrong username or password"


def _time_left_s(ctx: RequestContext) -> float:
    """How long a request may wait for a hashing slot: until the edge stops waiting for
    its reply (then the edge has answered service_unavailable, and nothing is done)."""
    if ctx.deadline_ms is None:
        return 10.0
    return max(0.0, ctx.deadline_ms / 1000 - time.time())


class LoginAttempt(NamedTuple):
    """A password login between its phases: looked up and throttled, then checked."""

    ip: str
    row: Any  # the account (id, username, password_hash, disabled), or None
    known: bool  # from an address this account logged in from before
    reserved: list[Bucket]  # failed-login tokens taken, given back if it succeeds


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
        self.own = OwnAccountHandlers(
            store, self.admin, self.check_own_password, self.hasher.hash, settings
        )
        slots = settings.argon2_concurrency
        self.gate = HashGate(
            slots, reserved=1 if slots > 1 else 0, max_waiting=settings.argon2_queue
        )

    def ops(self) -> dict[str, Handler]:
        return {
            "register": self.register,
            "login": self.login,
            "logout": self.logout,
            **self.admin.ops(),
            **self.own.ops(),
        }

    def jobs(self) -> list[Job]:
        def retention(_ctx: RequestContext) -> None:
            forget_old_sessions(self.store, now_ms(), self.settings.session_retention_days)

        return [Job("forget-old-sessions", RETENTION_PASS_S, retention)]

    async def register(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        name = normalise_username(args["username"], self.settings.max_username_chars)
        check_password(args["password"], self.settings.min_password_chars)
        await in_thread(ctx, self.throttle.before_register, ctx.ip or "?")
        async with self.gate.slot(known=False, wait_s=_time_left_s(ctx)):
            password_hash = await in_thread(ctx, self.hasher.hash, args["password"])
        user_id = await in_thread(
            ctx, self.store.create_user, name, username_key(name), password_hash
        )
        if user_id is None:
            raise ServiceError(
                ErrorCode.USERNAME_TAKEN, f"the username '{name}' is taken; choose another"
            )
        logger.info("registered user {} from {}", user_id, ctx.ip)
        return {"user": {"id": user_id, "username": name}}

    async def login(self, ctx: RequestContext, args: dict[str, Any]) -> dict[str, Any]:
        # On the event loop: a resume waits for its batch without a thread; a password
        # login waits for the argon2 gate without one, then hashes in a worker thread.
        device = args.get("device")
        if device is not None and (problem := device_problem(device)):
            raise bad_request("device", problem)  # before any hashing: it costs nothing
        if args.get("token"):
            return await self._resume(ctx, args["token"], device)
        if not args.get("username") or "password" not in args:
            raise bad_request("password", "give username and password, or a token")
        attempt, verified, _ = await self._checked(ctx, args["username"], args["password"])
        return await in_thread(ctx, self._finish_login, ctx, attempt, verified, device)

    async def _checked(
        self, ctx: RequestContext, username: str, password: str, then: Any = None
    ) -> tuple[LoginAttempt, bool, Any]:
        """A password attempt: throttled (failed-login tokens reserved), then checked in
        the argon2 gate; `then()` (more hashing) runs in the same slot if it was right."""
        attempt = await in_thread(ctx, self._begin_login, ctx.ip or "?", username)
        try:
            async with self.gate.slot(attempt.known, _time_left_s(ctx)):
                verified = await in_thread(ctx, self._check, attempt, password)
                extra = await in_thread(ctx, then) if verified and then else None
        except (GateBusy, DeadlinePassed):
            # Not a guess: the attempt was never checked, so it costs no failed-login token.
            await asyncio.to_thread(self.throttle.login_succeeded, attempt.reserved)
            raise
        return attempt, verified, extra

    async def check_own_password(self, ctx: RequestContext, password: str, then: Any = None) -> Any:
        """The logged-in user's password, checked as a login's is (the failed-login
        throttle, the argon2 gate), so a stolen session cannot guess it any faster than a
        stranger could; raises bad_credentials. Returns what `then()` returned."""
        user_id = ctx.require_user()
        attempt, verified, extra = await self._checked(ctx, ctx.username or "", password, then)
        if not verified or attempt.row is None or attempt.row.id != user_id:
            logger.info("user {}: wrong password from {}", user_id, ctx.ip)
            raise ServiceError(
                ErrorCode.BAD_CREDENTIALS,
                "That is not your current password; nothing was changed. Try again with it.",
            )
        await in_thread(ctx, self.throttle.login_succeeded, attempt.reserved)
        return extra

    def _begin_login(self, ip: str, username: str) -> LoginAttempt:
        key = username_key(username)
        since = now_ms() - self.settings.token_ttl_s * 1000
        row, recent_addresses = self.store.account_for_login(key, since)
        known = row is not None and known_address(recent_addresses, ip)
        reserved = self.throttle.reserve_login(ip, key, known)
        return LoginAttempt(ip, row, known, reserved)

    def _check(self, attempt: LoginAttempt, password: str) -> bool:
        """argon2, inside the gate: the password against the account's hash (against a
        dummy one for an unknown name, which takes as long), re-hashed when the cost
        settings changed."""
        row = attempt.row
        try:
            self.hasher.verify(row.password_hash if row else self._dummy_hash, password)
        except (VerificationError, InvalidHashError):
            return False
        if row is None:
            return False
        if self.hasher.check_needs_rehash(row.password_hash):
            self.store.set_password_hash(row.id, self.hasher.hash(password))
        return True

    def _finish_login(
        self, ctx: RequestContext, attempt: LoginAttempt, verified: bool, device: str | None
    ) -> dict:
        if not verified:
            logger.info("login refused from {}: bad credentials", attempt.ip)
            raise ServiceError(ErrorCode.BAD_CREDENTIALS, BAD_CREDENTIALS)
        self.throttle.login_succeeded(attempt.reserved)
        if attempt.row.disabled:
            raise ServiceError(ErrorCode.ACCOUNT_DISABLED, "this account is disabled")
        return self._new_session(ctx, attempt.row.id, attempt.row.username, device)

    def _new_session(
        self, ctx: RequestContext, user_id: int, username: str, device: str | None
    ) -> dict:
        token = secrets.token_urlsafe(32)
        now = now_ms()
        expires = now + self.settings.token_ttl_s * 1000
        session_id = self.store.create_session(
            user_id, token_hash(token), now, expires, ctx.ip or "", device
        )
        logger.info("user {} logged in from {} (session {})", user_id, ctx.ip, session_id)
        return {
            "user": {"id": user_id, "username": username},
            "token": token,
            "session_id": session_id,
            "expires_at": expires,
        }

    async def _resume(self, ctx: RequestContext, token: str, device: str | None) -> dict:
        try:
            row = await self.resumer.submit(token, device)
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
