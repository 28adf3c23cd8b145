"""Who may hold a connection on this edge: the pre-login budget. (Per-address limits
key IPv6 clients by their /64: chatroom.ratelimit.address_key, shared with auth.)

Sans-IO: nothing here touches a socket, so it is unit-tested without a server
(tests/test_prelogin.py). The edge applies what it decides.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

# Whatever the edge keeps per connection; only used as a key here.
Conn = TypeVar("Conn", bound=Hashable)


class PreloginBudget(Generic[Conn]):
    """Connections that have not logged in yet, and the bytes of unfinished frames they
    make the edge hold, kept within `max_conns` and `max_bytes`.

    Over budget, the least recently active connection without a request in progress is
    dropped: one holding a half-sent frame or sending nothing goes first, one waiting
    for its login reply is kept. Refusing newcomers instead would let anyone who fills
    the budget once (re-opening each login timeout) lock every new user out; this way
    a flood has to outpace honest clients' logins, which take a round trip or two. If
    every connection has a request in progress (a reconnect storm waiting on auth), the
    newcomer itself is the one dropped.
    """

    def __init__(self, max_conns: int, max_bytes: int, busy: Callable[[Conn], bool]) -> None:
        self.max_conns = max_conns
        self.max_bytes = max_bytes
        self._busy = busy
        # Connection -> bytes it makes us hold; least recently active first.
        self._held: OrderedDict[Conn, int] = OrderedDict()
        self.buffered_bytes = 0

    def __len__(self) -> int:
        return len(self._held)

    def __contains__(self, conn: Conn) -> bool:
        return conn in self._held

    def admit(self, conn: Conn) -> list[Conn]:
        """Count a connection that is (again) not logged in; return those to drop, which
        may include `conn` itself."""
        self._held[conn] = 0
        return self._shed()

    def active(self, conn: Conn) -> None:
        """`conn` sent a complete request: it moves to the back of the queue."""
        if conn in self._held:
            self._held.move_to_end(conn)

    def holding(self, conn: Conn, nbytes: int) -> list[Conn]:
        """`conn` now makes us hold `nbytes` of unfinished frames; return those to drop."""
        before = self._held.get(conn)
        if before is None:
            return []
        self._held[conn] = nbytes
        self.buffered_bytes += nbytes - before
        return self._shed()

    def release(self, conn: Conn) -> None:
        """`conn` logged in or closed."""
        self.buffered_bytes -= self._held.pop(conn, 0)

    def _shed(self) -> list[Conn]:
        dropped = []
        while len(self._held) > self.max_conns or self.buffered_bytes > self.max_bytes:
            victim = self._victim(need_bytes=len(self._held) <= self.max_conns)
            if victim is None:
                break
            self.release(victim)
            dropped.append(victim)
        return dropped

    def _victim(self, need_bytes: bool) -> Conn | None:
        # Scans past connections with a request in progress (and, when it is bytes that
        # are over, those holding none): few, since a request moves its connection to
        # the back and the login rate limit bounds how many are in progress.
        for conn, nbytes in self._held.items():
            if not self._busy(conn) and (nbytes or not need_bytes):
                return conn
        return None
