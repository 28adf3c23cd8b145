"""Presence rules: what a presence push says, and when the reaper may judge edges.

Edges heartbeat; the sessions of an edge that stops (crash, kill -9) are removed by the
reaper job, which tells the friends of users left with no session. The rows behind it
are the store's (store/presence.py).
"""

from __future__ import annotations

from typing import Any

from chatroom.protocol import Event


def event(
    user_id: int,
    username: str,
    is_online: bool,
    status: str | None,
    version: int,
    seen_at: int | None = None,
) -> dict[str, Any]:
    """A presence push. `version` is the user's presence_version after this change: a
    client keeps a friend's presence of the highest version it has seen, because two
    pushes made by different replicas can cross, and a push may be sent again
    (chatroom/event_replay.py)."""
    return {
        "event": Event.PRESENCE,
        "user": {"id": user_id, "username": username},
        "online": is_online,
        "status": status or "",
        "last_seen": shown_last_seen(is_online, seen_at),
        "presence_version": version,
    }


def shown_last_seen(is_online: bool, seen_at: int | None) -> int | None:
    """What friends see as last_seen: nothing while the user is online."""
    return None if is_online else seen_at


class ReapGate:
    """Whether the reaper may judge edges by their heartbeats now.

    After this process was frozen (SIGSTOP, swapping, a paused VM) past the dead-edge
    timeout, the heartbeats that queued meanwhile are dropped as expired, so every edge
    looks dead and all their users would flap offline and back. A reaper run that comes
    much later than its period means we were the ones stalled: wait one dead-edge
    timeout for fresh heartbeats before judging again. `now` is time.monotonic()."""

    STALL_FACTOR = 3  # a run this many periods late means we were stalled

    def __init__(self, period_s: float, dead_after_s: float, now: float) -> None:
        self.period_s = period_s
        self.dead_after_s = dead_after_s
        self.last_run = now  # the service's start: a stall before the first run counts
        self.not_before = 0.0

    def may_reap(self, now: float) -> bool:
        """At the start of a run: False just after a stall between runs."""
        if now - self.last_run > self.STALL_FACTOR * self.period_s:
            self.not_before = now + self.dead_after_s
        self.last_run = now
        return now >= self.not_before

    def still_may_reap(self, started: float, now: float) -> bool:
        """Before acting on what a run read: False if we stalled during the run (the
        heartbeats it judged were read with a clock that jumped)."""
        if now - started > self.STALL_FACTOR * self.period_s:
            self.not_before = now + self.dead_after_s
        return now >= self.not_before
