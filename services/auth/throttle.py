"""Login and registration throttles whose buckets live in the database.

The buckets are rows (table rate_buckets, AuthStore.buckets), so every auth replica sees
the same ones: an attacker gains nothing by landing on another replica. The arithmetic is
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

from chatroom.config import Settings
from chatroom.errors import rate_limited
from chatroom.ratelimit import Rate, address_key
from chatroom.storage.db import now_ms
from services.auth.rate_buckets import RateBuckets

# Now and then, buckets idle longer than their period (so full again) are deleted so
# the table stays small.
FORGET_EVERY = 1000


@dataclass(frozen=True)
class Bucket:
    key: str  # the rate_buckets row, at most 200 characters
    rate: Rate
    refusal: str  # completes "too many failed logins ..." / "... registered ..."


def _hashed(kind: str, *parts: str) -> str:
    # Hashed: bounded length whatever was typed, and no usernames in the table.
    digest = hashlib.sha256("\x00".join(parts).encode("utf-8")).hexdigest()[:32]
    return f"{kind}:{digest}"


def account_bucket_keys(username_key: str, addresses: list[str]) -> list[str]:
    """The failed-login buckets that name this account: its own, and its pairs with
    these addresses (those it is known to have used; a pair bucket of an address it never
    logged in from cannot be found again, being a hash, and goes when it is idle)."""
    pairs = {_hashed("login-failed-pair", username_key, address_key(ip)) for ip in addresses}
    return [_hashed("login-failed-user", username_key), *sorted(pairs)]


def known_address(recent_addresses: list[str], ip: str) -> bool:
    """Whether `ip` (its /64 for IPv6) is one of the account's recent login addresses
    (AuthStore.account_for_login)."""
    address = address_key(ip)
    return any(address_key(seen) == address for seen in recent_addresses)


class Throttle:
    def __init__(self, buckets: RateBuckets, settings: Settings) -> None:
        self.buckets = buckets
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
        refused = self.buckets.take_all(buckets, now)
        if refused:
            refusing, tokens = refused
            logger.warning(
                "login throttled from {}: too many failed attempts ({})", ip, refusing.refusal
            )
            raise rate_limited(
                f"too many failed logins {refusing.refusal}", refusing.rate.wait_ms(tokens)
            )
        self._forget_now_and_then(now)
        return buckets

    def login_succeeded(self, reserved: list[Bucket]) -> None:
        if reserved:
            self.buckets.give_back(reserved)

    def before_register(self, ip: str) -> None:
        if not self.register_ip:
            return
        bucket = Bucket(f"register-ip:{address_key(ip)}", self.register_ip, "from your address")
        now = now_ms()
        refused = self.buckets.take_all([bucket], now)
        if refused:
            logger.warning("registration throttled from {}", ip)
            wait = bucket.rate.wait_ms(refused[1])
            raise rate_limited("too many accounts registered from your address", wait)
        self._forget_now_and_then(now)

    def _forget_now_and_then(self, now: int) -> None:
        if next(self._calls) % FORGET_EVERY:
            return
        self.buckets.forget_idle(now - self._forget_after_ms)
