"""Token buckets: how often an action may happen.

A rate is written ``N/Ts``: up to N actions at once, refilled at N per T seconds (so
"60/10s" allows a burst of 60, then 6 per second). ``off`` means unlimited.

``Buckets`` live in one process's memory (the edge's per-user and per-IP limits);
services/auth/throttle.py keeps buckets with the same arithmetic in the database, so
that every auth replica sees the same one.
"""

from __future__ import annotations

import ipaddress
import math
import re
import time
from collections import OrderedDict
from dataclasses import dataclass

# One IPv6 subscriber usually gets a whole /64 (RFC 6177) and can use any address in
# it: counted per address, one machine would be 2^64 clients.
IPV6_CLIENT_PREFIX = 64

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?)?\s*(s|m|h)\s*$")
_UNIT_S = {"s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class Rate:
    limit: int  # bucket capacity: the burst
    period_s: float  # time to refill from empty to full

    @property
    def per_s(self) -> float:
        return self.limit / self.period_s

    def describe(self) -> dict[str, float]:
        """As announced in the login reply."""
        return {"limit": self.limit, "period_s": self.period_s}

    def refill(self, tokens: float, elapsed_s: float) -> float:
        return min(float(self.limit), tokens + max(0.0, elapsed_s) * self.per_s)

    def wait_ms(self, tokens: float, cost: float = 1.0) -> int:
        """How long until `cost` tokens are there (0: now)."""
        if tokens >= cost:
            return 0
        return max(1, math.ceil((cost - tokens) / self.per_s * 1000))


def parse_rate(text: str) -> Rate | None:
    """'60/10s' -> Rate(60, 10.0); '5/m' -> Rate(5, 60.0); 'off' -> None."""
    if text.strip().lower() in ("off", "none", "unlimited"):
        return None
    m = _RATE.match(text)
    if not m or int(m.group(1)) <= 0 or (m.group(2) is not None and float(m.group(2)) <= 0):
        raise ValueError(f"{text!r} is not a rate like '60/10s', '5/m' or 'off'")
    amount = float(m.group(2)) if m.group(2) is not None else 1.0
    return Rate(int(m.group(1)), amount * _UNIT_S[m.group(3)])


def address_key(ip: str) -> str:
    """The key per-address limits count under: an IPv4 address as it is, an IPv6 one by
    its /64 (an IPv4-mapped IPv6 address as the IPv4 address it maps)."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])  # drop a zone (fe80::1%eth0)
    except ValueError:
        return ip  # not an IP (a Unix socket, "?"): the peer name is all there is
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False))
    return str(address)


class Buckets:
    """In-memory buckets by key, bounded: the least recently used are forgotten first
    (a forgotten bucket is full, which is what it would have refilled to anyway for
    any key idle longer than the period)."""

    def __init__(self, rate: Rate | None, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.max_keys = max_keys
        # key -> (tokens, when counted, refusing since the last allowed action)
        self._buckets: OrderedDict[object, tuple[float, float, bool]] = OrderedDict()

    def take(self, key: object, cost: float = 1.0, now: float | None = None) -> tuple[int, bool]:
        """Spend `cost` tokens. Returns (milliseconds to wait, 0 if allowed; whether this
        is the first refusal since the key was last allowed — worth a log line)."""
        if self.rate is None:
            return 0, False
        now = time.monotonic() if now is None else now
        tokens, at, refusing = self._buckets.pop(key, (float(self.rate.limit), now, False))
        tokens = self.rate.refill(tokens, now - at)
        wait = self.rate.wait_ms(tokens, cost)
        if wait == 0:
            tokens -= cost
        self._buckets[key] = (tokens, now, wait > 0)
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        return wait, wait > 0 and not refusing
