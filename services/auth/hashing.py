"""How many argon2 computations run at once, and who waits for one.

Each argon2 hash takes CHAT_ARGON2_MEMORY_KIB of memory and a core for about a tenth of
a second. Unbounded, a few hundred addresses each guessing once saturate auth: every
login times out, the account owner's too (an attacker's test: 33 of 40 logins
`service_unavailable`, and the owner's next one). So:
- at most `slots` hashes run at once (CHAT_ARGON2_CONCURRENCY; memory is bounded by
  slots × argon2 memory);
- `reserved` of them are only for sign-ins from a known device (an address the account
  logged in from before: services/auth/throttle.py), so a crowd of strangers cannot keep
  the owner out;
- strangers queue at most `max_waiting` deep; one more is told `rate_limited` at once,
  with a retry time, instead of holding a request until it times out. One that waits
  past its request's deadline is dropped (the edge has answered it already).
The gate lives on the event loop: waiting costs no worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from chatroom.errors import ServiceError, rate_limited
from chatroom.service import DeadlinePassed

RETRY_AFTER_MS = 2000
BUSY_MESSAGE = "too many sign-ins are being checked right now"


class HashGate:
    def __init__(self, slots: int, reserved: int, max_waiting: int) -> None:
        if not 0 <= reserved < slots:
            raise ValueError("reserved slots must leave at least one for everyone")
        self.slots = slots
        self.reserved = reserved
        self.max_waiting = max_waiting
        self.running = 0
        self.waiting_strangers = 0
        self._changed = asyncio.Condition()

    def _limit(self, known: bool) -> int:
        return self.slots if known else self.slots - self.reserved

    @contextlib.asynccontextmanager
    async def slot(self, known: bool, wait_s: float) -> AsyncIterator[None]:
        """Hold one hashing slot for the body; `known`: the sign-in comes from a device
        the account used before. Raises GateBusy (rate_limited) when strangers' queue is
        full, DeadlinePassed when no slot came free within wait_s."""
        async with self._changed:
            if self.running >= self._limit(known):
                if not known and self.waiting_strangers >= self.max_waiting:
                    raise busy()
                self.waiting_strangers += not known
                try:
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: self.running < self._limit(known)),
                        wait_s,
                    )
                except TimeoutError:
                    # The edge has answered it service_unavailable by now: dropped, like
                    # a request whose deadline passes in the thread pool's queue.
                    raise DeadlinePassed from None
                finally:
                    self.waiting_strangers -= not known
            self.running += 1
        try:
            yield
        finally:
            async with self._changed:
                self.running -= 1
                self._changed.notify_all()


class GateBusy(ServiceError):
    """No hashing slot: rate_limited with a retry time (nothing was checked)."""


def busy() -> GateBusy:
    refusal = rate_limited(BUSY_MESSAGE, RETRY_AFTER_MS)
    return GateBusy(refusal.code, refusal.message, **refusal.extra)
