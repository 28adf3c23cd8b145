"""Login and registration throttles whose buckets live in the database.

Failed logins are limited per IP address and per account, registrations per IP. The
buckets are rows (table rate_buckets) updated under a row lock, so every auth replica
sees the same ones: an attacker gains nothing by landing on another replica. The
arithmetic is chatroom.ratelimit's.

The per-IP bucket is checked first and is the tighter one: one address guessing at an
account runs out long before the account's own bucket does, so the real user can still
log in from elsewhere. The account bucket stops guessing spread over many addresses.
"""

from __future__ import annotations

import hashlib
import itertools

from loguru import logger
from sqlalchemy import Connection, Engine, delete, select

from chatroom.config import Settings
from chatroom.errors import rate_limited
from chatroom.ratelimit import Rate
from chatroom.storage.db import now_ms, upsert
from chatroom.storage.schema import rate_buckets

# Now and then, buckets idle longer than their period (so full again) are deleted so
# the table stays small.
FORGET_EVERY = 1000


def _stored_tokens(conn: Connection, key: str, rate: Rate, now: int, lock: bool) -> float:
    query = select(rate_buckets.c.tokens, rate_buckets.c.updated_at).where(
        rate_buckets.c.bucket == key
    )
    row = conn.execute(query.with_for_update() if lock else query).first()
    if row is None:
        return float(rate.limit)
    return rate.refill(row.tokens, (now - row.updated_at) / 1000)


def peek_stored(conn: Connection, key: str, rate: Rate | None, now: int) -> int:
    """0 if the stored bucket has a token, else milliseconds until it has one."""
    if rate is None:
        return 0
    return rate.wait_ms(_stored_tokens(conn, key, rate, now, lock=False))


def take_stored(conn: Connection, key: str, rate: Rate | None, now: int) -> int:
    """Spend one token (inside the caller's transaction, under a row lock); return 0 if
    it was there, else milliseconds to wait."""
    if rate is None:
        return 0
    tokens = _stored_tokens(conn, key, rate, now, lock=True)
    wait = rate.wait_ms(tokens)
    if wait == 0:
        upsert(
            conn,
            rate_buckets,
            {"bucket": key, "tokens": tokens - 1, "updated_at": now},
            ("tokens", "updated_at"),
        )
    return wait


def _account_key(username_key: str) -> str:
    # Hashed: bounded length whatever was typed, and no usernames in the table.
    return "login-failed-user:" + hashlib.sha256(username_key.encode("utf-8")).hexdigest()[:32]


class Throttle:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.failed_ip = settings.rate("login_failed_ip")
        self.failed_account = settings.rate("login_failed_account")
        self.register_ip = settings.rate("register_ip")
        self._calls = itertools.count(1)
        rates = [r for r in (self.failed_ip, self.failed_account, self.register_ip) if r]
        self._forget_after_ms = int(max((r.period_s for r in rates), default=0) * 1000)

    def before_login(self, ip: str, username_key: str) -> None:
        """Refuse (rate_limited) while this IP or this account has no failed-login
        tokens left; checked before the password is, so refusing costs no hashing."""
        now = now_ms()
        with self.engine.connect() as conn:
            wait = peek_stored(conn, f"login-failed-ip:{ip}", self.failed_ip, now)
            who = "your address"
            if not wait:
                wait = peek_stored(conn, _account_key(username_key), self.failed_account, now)
                who = "this account"
        if wait:
            logger.warning("login throttled from {}: too many failed attempts ({})", ip, who)
            raise rate_limited(f"too many failed logins for {who}", wait)

    def login_failed(self, ip: str, username_key: str) -> None:
        now = now_ms()
        with self.engine.begin() as conn:
            take_stored(conn, f"login-failed-ip:{ip}", self.failed_ip, now)
            take_stored(conn, _account_key(username_key), self.failed_account, now)
        self._forget_now_and_then(now)

    def before_register(self, ip: str) -> None:
        now = now_ms()
        with self.engine.begin() as conn:
            wait = take_stored(conn, f"register-ip:{ip}", self.register_ip, now)
        if wait:
            logger.warning("registration throttled from {}", ip)
            raise rate_limited("too many accounts registered from your address", wait)
        self._forget_now_and_then(now)

    def _forget_now_and_then(self, now: int) -> None:
        if next(self._calls) % FORGET_EVERY:
            return
        with self.engine.begin() as conn:
            conn.execute(
                delete(rate_buckets).where(rate_buckets.c.updated_at < now - self._forget_after_ms)
            )
