"""When each session was last in use, as `account.sessions` shows it (last_used_at).

Auth writes last_used_at at a login and a resume (services/auth/resume.py, to the hour),
but a device that stays connected all day never resumes, and one that disconnects at
5 pm last resumed at 9. So the edge, which holds the connections, tells auth instead:

- when a session's connection closes or logs out, its id, sent within FLUSH_S with the
  others that ended meanwhile (a restart of 50,000 connections is a few requests);
- every `CHAT_SESSION_IN_USE_S` (120 s), the ids of every session connected here.

So a listed session's last use is exact to FLUSH_S for one that has ended and within
`CHAT_SESSION_IN_USE_S` for one in use. Best effort: a report that fails is logged and
dropped (the next one, or a resume, catches up); nothing else depends on it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from loguru import logger

from chatroom.bus_client import BusClient
from chatroom.bus_contract import SESSIONS_USED_MAX, InternalOp
from chatroom.errors import ServiceError

FLUSH_S = 5.0  # ended sessions are reported this often (when there are any)


class SessionUse:
    def __init__(
        self,
        bus: BusClient,
        edge_id: str,
        connected: Callable[[], Iterable[int]],
        in_use_every_s: float,
    ) -> None:
        self.bus = bus
        self.edge_id = edge_id
        self._connected = connected  # the session ids of the connections here now
        self.in_use_every_s = in_use_every_s
        self._ended: set[int] = set()

    def ended(self, session_id: int) -> None:
        """A session's connection closed or logged out: in use until now."""
        self._ended.add(session_id)

    async def run(self) -> None:
        next_all = time.monotonic() + self.in_use_every_s
        while True:
            await asyncio.sleep(FLUSH_S)
            if self.in_use_every_s > 0 and time.monotonic() >= next_all:
                next_all = time.monotonic() + self.in_use_every_s
                self._ended.update(self._connected())
            await self.flush()

    async def flush(self) -> None:
        """Report what has gathered (also at the drain, for the connections it closes)."""
        ids, self._ended = sorted(self._ended), set()
        for start in range(0, len(ids), SESSIONS_USED_MAX):
            try:
                await self.bus.call(
                    "auth",
                    InternalOp.SESSIONS_USED,
                    {"sessions": ids[start : start + SESSIONS_USED_MAX]},
                    ctx={"edge": self.edge_id},
                    retry=True,
                )
            except ServiceError as exc:
                logger.warning("could not report {} sessions' last use: {}", len(ids), exc.code)
                return
