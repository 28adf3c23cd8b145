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
from collections import deque
from collections.abc import AsyncIterator

from chatroom.errors import ServiceError, rate_limited
from chatroom.service import DeadlinePassed

RETRY_AFTER_MS = 2000
BUSY_MESSAGE = "too many sign-ins are being checked right now"


class HashGate:
    """Waiters queue in order, the known devices' and the strangers' apart; a freed slot
    is handed to the first waiter that may take it, and only that one wakes. (An
    asyncio.Condition woke every waiter at every release to look again: with thousands
    queued, a storm of 100,000 sign-ins over three hosts spent a third of auth's CPU
    waking them, and most requests timed out while the queue was being looked at.)"""

    def __init__(self, slots: int, reserved: int, max_waiting: int) -> None:
        if not 0 <= reserved < slots:
            raise ValueError("reserved slots must leave at least one for everyone")
        self.slots = slots
        self.reserved = reserved
        self.max_waiting = max_waiting
        self.running = 0
        self._known: deque[asyncio.Future[None]] = deque()
        self._strangers: deque[asyncio.Future[None]] = deque()

    @property
    def waiting_strangers(self) -> int:
        return len(self._strangers)

    def _limit(self, known: bool) -> int:
        return self.slots if known else self.slots - self.reserved

    @contextlib.asynccontextmanager
    async def slot(self, known: bool, wait_s: float) -> AsyncIterator[None]:
        """Hold one hashing slot for the body; `known`: the sign-in comes from a device
        the account used before. Raises GateBusy (rate_limited) when strangers' queue is
        full, DeadlinePassed when no slot came free within wait_s."""
        queue = self._known if known else self._strangers
        if self.running < self._limit(known) and not queue:
            self.running += 1
        else:
            if not known and len(self._strangers) >= self.max_waiting:
                raise busy()
            try:
                await self._wait_turn(queue, wait_s)  # counted in `running` when handed
            except TimeoutError:
                # The edge has answered it service_unavailable by now: dropped, like
                # a request whose deadline passes in the thread pool's queue.
                raise DeadlinePassed from None
        try:
            yield
        finally:
            self._release()

    async def _wait_turn(self, queue: deque[asyncio.Future[None]], wait_s: float) -> None:
        turn = asyncio.get_running_loop().create_future()
        queue.append(turn)
        try:
            await asyncio.wait_for(turn, wait_s)
        except BaseException:
            if turn.done() and not turn.cancelled():
                self._release()  # handed a slot just as it gave up: pass it on
            else:
                turn.cancel()
                with contextlib.suppress(ValueError):
                    queue.remove(turn)
            raise

    def _release(self) -> None:
        self.running -= 1
        # The known devices' first (the reserved slots are theirs), then the strangers
        # within their share; each handed slot wakes exactly one waiter.
        for queue, limit in ((self._known, self.slots), (self._strangers, self._limit(False))):
            while queue and self.running < limit:
                turn = queue.popleft()
                if not turn.done():  # not given up meanwhile
                    self.running += 1
                    turn.set_result(None)


class GateBusy(ServiceError):
    """No hashing slot: rate_limited with a retry time (nothing was checked)."""


def busy() -> GateBusy:
    refusal = rate_limited(BUSY_MESSAGE, RETRY_AFTER_MS)
    return GateBusy(refusal.code, refusal.message, **refusal.extra)
