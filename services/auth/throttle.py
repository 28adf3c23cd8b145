"""Login and registration throttles whose buckets live in the database.

The buckets are rows (table rate_buckets), so every auth replica sees the same ones: an
attacker gains nothing by landing on another replica. The arithmetic is
chatroom.ratelimit's, done inside one UPDATE so that taking a token is atomic.

A password attempt reserves its tokens before the password is hashed, all or none, and
gets them back if the password was right: N attempts in parallel get at most the
bucket's number of password checks, and a correct login costs nothing. It counts
against (docs/security.md, "Failed logins", says why):

- its account from its address (IPv6: the /64): the bucket that stops one address
  guessing at one account. Only the guesser's own attempts empty it.
- its address, all accounts: stops one address trying many accounts;
- its account, all addresses: a slow-down for guessing spread over many addresses.

The last two are not taken from an address the account has logged in from before
(known_address): someone behind the same NAT, or a botnet hammering the account, can
keep them empty forever, and that must not lock the owner out of their usual place. A
resume token never reaches these buckets at all.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

from loguru import logger
from sqlalchemy import Connection, Engine, case, delete, literal, select, update
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from chatroom.config import Settings
from chatroom.errors import rate_limited
from chatroom.ratelimit import Rate, address_key
from chatroom.storage.db import now_ms
from chatroom.storage.schema import rate_buckets, sessions

# Now and then, buckets idle longer than their period (so full again) are deleted so
# the table stays small.
FORGET_EVERY = 1000
# Past logins looked at to decide whether an address is known to an account.
KNOWN_ADDRESSES_LOOKED_AT = 50


@dataclass(frozen=True)
class Bucket:
    key: str  # the rate_buckets row, at most 200 characters
    rate: Rate
    refusal: str  # completes "too many failed logins ..." / "... registered ..."


def _refilled(rate: Rate, now: int):  # noqa: ANN202 - an SQL expression
    """The row's tokens refilled up to `now`, capped at the burst, as SQL."""
    elapsed = now - rate_buckets.c.updated_at
    tokens = rate_buckets.c.tokens + case((elapsed > 0, elapsed), else_=0) * (rate.per_s / 1000)
    return case((tokens > rate.limit, literal(float(rate.limit))), else_=tokens)


def _create_missing(engine: Engine, buckets: list[Bucket], now: int) -> None:
    # A transaction of its own: in MySQL an INSERT that meets an existing row takes a
    # shared lock on it, which the UPDATE would then have to upgrade; two requests doing
    # that at once deadlock.
    rows = [{"bucket": b.key, "tokens": float(b.rate.limit), "updated_at": now} for b in buckets]
    with engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(sqlite_insert(rate_buckets).on_conflict_do_nothing(), rows)
        else:
            conn.execute(mysql_insert(rate_buckets).prefix_with("IGNORE"), rows)


def take_all(engine: Engine, buckets: list[Bucket], now: int) -> tuple[int, Bucket | None]:
    """Take one token from every bucket, or from none. Returns (0, None) if taken, else
    (milliseconds until the refusing bucket has a token, that bucket)."""
    buckets = sorted(buckets, key=lambda b: b.key)  # one lock order: no deadlocks
    refused = _refused_without_locking(engine, buckets, now)
    if refused[1] is not None:
        return refused
    for _attempt in range(2):
        with engine.connect() as conn, conn.begin() as transaction:
            for bucket in buckets:
                if _take_one(conn, bucket, now):
                    continue
                tokens = conn.execute(
                    select(_refilled(bucket.rate, now)).where(rate_buckets.c.bucket == bucket.key)
                ).scalar_one_or_none()
                transaction.rollback()  # nothing taken; a refusal writes nothing
                if tokens is not None:
                    return bucket.rate.wait_ms(tokens), bucket
                break  # a bucket never used yet (or forgotten): create them, try again
            else:
                return 0, None
        _create_missing(engine, buckets, now)
    raise RuntimeError("rate buckets vanished while being created")


def _refused_without_locking(
    engine: Engine, buckets: list[Bucket], now: int
) -> tuple[int, Bucket | None]:
    # A flood is refused by this one read, without taking a lock or writing: an empty
    # bucket only fills with time, so the refusal stands even if the read is a little
    # old. A bucket that looks full is then taken from under the lock.
    with engine.connect() as conn:
        for bucket in buckets:
            tokens = conn.execute(
                select(_refilled(bucket.rate, now)).where(rate_buckets.c.bucket == bucket.key)
            ).scalar_one_or_none()
            if tokens is not None and tokens < 1:
                return bucket.rate.wait_ms(tokens), bucket
    return 0, None


def _take_one(conn: Connection, bucket: Bucket, now: int) -> bool:
    # Checks and spends in one statement, under the row's write lock: two replicas
    # cannot both spend the last token. (MySQL assigns SET clauses in order: tokens is
    # computed from the old updated_at.)
    refilled = _refilled(bucket.rate, now)
    taken = conn.execute(
        update(rate_buckets)
        .where(rate_buckets.c.bucket == bucket.key, refilled >= 1)
        .values(tokens=refilled - 1, updated_at=now)
    )
    return taken.rowcount > 0


def give_back(engine: Engine, buckets: list[Bucket]) -> None:
    """Return one token to each bucket (up to its burst)."""
    with engine.begin() as conn:
        for bucket in sorted(buckets, key=lambda b: b.key):
            refunded = rate_buckets.c.tokens + 1
            conn.execute(
                update(rate_buckets)
                .where(rate_buckets.c.bucket == bucket.key)
                .values(
                    tokens=case((refunded > bucket.rate.limit, bucket.rate.limit), else_=refunded)
                )
            )


def _hashed(kind: str, *parts: str) -> str:
    # Hashed: bounded length whatever was typed, and no usernames in the table.
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:32]
    return f"{kind}:{digest}"


def known_address(conn: Connection, user_id: int, ip: str, since_ms: int) -> bool:
    """Whether the user logged in from this address (its /64 for IPv6) since then."""
    rows = conn.execute(
        select(sessions.c.ip)
        .where(sessions.c.user_id == user_id, sessions.c.created_at >= since_ms)
        .order_by(sessions.c.created_at.desc())
        .limit(KNOWN_ADDRESSES_LOOKED_AT)
    )
    address = address_key(ip)
    return any(address_key(row.ip) == address for row in rows)


class Throttle:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.failed_account_ip = settings.rate("login_failed_account_ip")
        self.failed_ip = settings.rate("login_failed_ip")
        self.failed_account = settings.rate("login_failed_account")
        self.register_ip = settings.rate("register_ip")
        self._calls = itertools.count(1)
        rates = [
            self.failed_account_ip,
            self.failed_ip,
            self.failed_account,
            self.register_ip,
        ]
        self._forget_after_ms = int(max((r.period_s for r in rates if r), default=0) * 1000)

    def reserve_login(self, ip: str, username_key: str, known: bool) -> list[Bucket]:
        """Spend this password attempt's failed-login tokens before the password is
        checked, so refusing costs no hashing and parallel attempts cannot overdraw.
        Raises rate_limited. Give them back with login_succeeded."""
        address = address_key(ip)
        buckets = []
        if self.failed_account_ip:
            key = _hashed("login-failed-pair", username_key, address)
            buckets.append(
                Bucket(key, self.failed_account_ip, "for this account from your address")
            )
        if self.failed_ip and not known:
            buckets.append(
                Bucket(f"login-failed-ip:{address}", self.failed_ip, "from your address")
            )
        if self.failed_account and not known:
            key = _hashed("login-failed-user", username_key)
            buckets.append(Bucket(key, self.failed_account, "for this account"))
        now = now_ms()
        wait, refusing = take_all(self.engine, buckets, now)
        if refusing:
            logger.warning(
                "login throttled from {}: too many failed attempts ({})", ip, refusing.refusal
            )
            raise rate_limited(f"too many failed logins {refusing.refusal}", wait)
        self._forget_now_and_then(now)
        return buckets

    def login_succeeded(self, reserved: list[Bucket]) -> None:
        if reserved:
            give_back(self.engine, reserved)

    def before_register(self, ip: str) -> None:
        if not self.register_ip:
            return
        bucket = Bucket(f"register-ip:{address_key(ip)}", self.register_ip, "from your address")
        now = now_ms()
        wait, refusing = take_all(self.engine, [bucket], now)
        if refusing:
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
