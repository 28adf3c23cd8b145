"""What active users do besides receiving: typing hints and read markers, at the desktop
client's cadence (client/typing_hints.py, client/read_markers.py), for the members one
generator process holds. Used by the `chatter` scenario (scenarios/chatter.py).

Typing: each member types in bouts of `bout_s` seconds, so that `typing_share` of them
are typing at any moment (each member's bouts start at its own random offset). While a
bout lasts the member sends `typing on` once every TYPING_RENEW_S, as TypingSender does
(it never sends more often, however fast the keystrokes come), and `typing off` when the
bout ends (the text sent or emptied).

Reading: a member marks the newest seq it has received with `read.mark`, at most once
every MARK_INTERVAL_MS, each member at its own phase. That is what the desktop client
sends for a conversation on screen under a stream that never pauses (it marks
MARK_DELAY_MS after it has read, then at most every MARK_INTERVAL_MS), so it is an upper
bound of the markers' cost: a client whose window is not in front sends none.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chatroom.protocol import TYPING_RENEW_S

if TYPE_CHECKING:
    from loadtest.generator import Collector

MARK_INTERVAL_S = 3.0  # client/read_markers.py MARK_INTERVAL_MS
TICK_S = 0.1


@dataclass(frozen=True)
class ChatterPlan:
    """How active the members are (picklable: it travels to the receiving processes)."""

    typing_share: float = 0.05  # of the members, typing at any moment
    bout_s: float = 10.0  # one bout of typing, first keystroke to send
    read_marks: bool = True
    room: str = "lobby"


@dataclass
class ChatterCounts:
    typing_sent: int = 0
    typing_pushes: int = 0  # typing hints of others this process's members received
    marks_sent: int = 0
    refused: int = 0  # replies that were not ok

    def as_dict(self) -> dict[str, int]:
        return dict(vars(self))


class _Member:
    """One client's typing bout schedule and what it has marked."""

    def __init__(self, index: int, client: Any, plan: ChatterPlan, rng: random.Random) -> None:
        self.index = index  # its number in the Collector
        self.client = client
        self.cycle_s = plan.bout_s / plan.typing_share if plan.typing_share > 0 else 0.0
        self.offset_s = rng.uniform(0, self.cycle_s) if self.cycle_s else 0.0
        self.bout_s = plan.bout_s
        self.typing_since: float | None = None  # when "on" was last sent
        self.marked_seq = 0
        self.next_mark_s = rng.uniform(0, MARK_INTERVAL_S)  # members do not mark in step

    def typing_now(self, t: float) -> bool:
        if not self.cycle_s:
            return False
        return (t + self.offset_s) % self.cycle_s < self.bout_s


class Chatter:
    """Runs every member's typing and reading until stopped; counts what it sent. What
    each member has received (the newest seq, the typing pushes) is the Collector's,
    which recorded their messages: `clients[i]` is its member i."""

    def __init__(
        self, clients: list[Any], collector: Collector, plan: ChatterPlan, seed: str = ""
    ) -> None:
        rng = random.Random(seed)
        self.plan = plan
        self.collector = collector
        self.members = [_Member(i, c, plan, rng) for i, c in enumerate(clients)]
        self.counts = ChatterCounts()

    def _send(self, member: _Member, op: str, **fields: Any) -> None:
        fut = member.client.send_nowait(op, **fields)
        fut.add_done_callback(self._replied)

    def _replied(self, fut: asyncio.Future) -> None:
        if fut.cancelled() or fut.exception() is not None or not fut.result().get("ok"):
            self.counts.refused += 1

    def _tick(self, t: float, last: bool = False) -> None:
        """One pass over the members at `t` s into the run: typing due, and the newest
        seq marked read by each member whose mark is due (every one on the `last`
        pass) if it moved."""
        room = self.plan.room
        for m in self.members:
            if m.typing_now(t):
                if m.typing_since is None or t - m.typing_since >= TYPING_RENEW_S:
                    m.typing_since = t
                    self._send(m, "typing", room=room, on=True)
                    self.counts.typing_sent += 1
            elif m.typing_since is not None:
                m.typing_since = None
                self._send(m, "typing", room=room, on=False)
                self.counts.typing_sent += 1
        if not self.plan.read_marks:
            return
        newest = self.collector.newest_seq
        for m in self.members:
            seq = newest.get(m.index, 0)
            if (last or t >= m.next_mark_s) and seq > m.marked_seq:
                m.next_mark_s = t + MARK_INTERVAL_S
                m.marked_seq = seq
                self._send(m, "read.mark", room=room, seq=seq)
                self.counts.marks_sent += 1

    async def run(self, stop: asyncio.Event) -> None:
        started = time.monotonic()
        while not stop.is_set():
            self._tick(time.monotonic() - started)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_S)
        # The burst is over: the client marks what it read since its last mark.
        self._tick(time.monotonic() - started, last=True)
        self.counts.typing_pushes = self.collector.typing_pushes
