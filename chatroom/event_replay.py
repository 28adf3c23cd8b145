"""Presence pushes sent again through a bus whose link came (back) up.

A ZeroMQ PUB drops what it publishes on a link that is not made yet, or whose
subscriptions have not arrived, and a link that died unnoticed (a partition: the
heartbeat gives it up only after LINK_HEARTBEAT_TIMEOUT_MS) swallows what was written
into it. Messages need nothing more: they carry seqs and `sync` closes their gaps.
Presence is state without a seq: one lost "online" left friends seeing a user offline
until their next change (tests/test_host_faults.py found it after hosts rejoined, when
a replica answered requests before its links to the other buses were made).

So a service keeps the last MAX_KEPT events of the kinds in REPLAYED_EVENTS, and when
its event socket completes a handshake with a bus (a link made or made again), it sends
again the ones published since that link may have stopped carrying events: since the
process started for a first link, else since the link's last sign of life (its
disconnection, less the heartbeat timeout). Each copy keeps its stamp, so an edge
hearing it through several buses keeps one (services/tcp_edge/dedupe.py), and a client
keeps a friend's presence of the highest presence_version, so a copy it already has
changes nothing. The copies go out after REPLAY_AFTER_S, once for the bus's
subscriptions to have arrived and once more for edges whose own links to a restarted
bus come back later than ours.

Why not hold requests until every link is up: a bus that is down for good would stop
the replica, and a link that looks up may already be dead (the partition again).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

import zmq
import zmq.asyncio
from loguru import logger
from zmq.utils.monitor import recv_monitor_message

from chatroom.bus_contract import LINK_HEARTBEAT_TIMEOUT_MS
from chatroom.protocol import Event

REPLAYED_EVENTS = frozenset({Event.PRESENCE})
# A presence change is one event per friend: 50,000 is a reconnect storm of 1,000 users
# with 50 friends each, about 12 MB of frames at most.
MAX_KEPT = 50_000
REPLAY_AFTER_S = (1.0, 5.0)


class EventReplay:
    """The kept events of one PUB socket, and the task (`run`) that watches its links."""

    def __init__(self, pub: zmq.asyncio.Socket) -> None:
        """Before `pub` connects anywhere, so that no handshake goes unseen."""
        self._pub = pub
        self._monitor = pub.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED
        )
        self._started = time.monotonic()
        self._kept: deque[tuple[float, list[bytes]]] = deque(maxlen=MAX_KEPT)
        # endpoint -> since when events on it may have been lost (it went down)
        self._down_since: dict[str, float] = {}
        self._seen: set[str] = set()  # endpoints that had a link once
        self._sending: set[asyncio.Task[None]] = set()
        self.sent_again = 0  # copies sent (tests, logs)

    def keep(self, event: dict[str, Any], frames: list[bytes]) -> None:
        """Remember a published event if it is of a kind sent again."""
        if event.get("event") in REPLAYED_EVENTS:
            self._kept.append((time.monotonic(), frames))

    def link_down(self, endpoint: str, now: float) -> None:
        # A dead peer is noticed one heartbeat timeout after its last word.
        since = now - LINK_HEARTBEAT_TIMEOUT_MS / 1000
        self._down_since[endpoint] = min(since, self._down_since.get(endpoint, since))

    def link_up(self, endpoint: str) -> float:
        """A handshake with `endpoint` succeeded: since when to send events again."""
        since = self._down_since.pop(endpoint, None)
        if since is None:
            since = self._started if endpoint not in self._seen else time.monotonic()
        self._seen.add(endpoint)
        return since

    def since(self, since: float) -> list[list[bytes]]:
        return [frames for at, frames in self._kept if at >= since]

    async def run(self) -> None:
        try:
            while True:
                change = await recv_monitor_message(self._monitor)
                endpoint = change["endpoint"].decode(errors="replace")
                if change["event"] == zmq.EVENT_DISCONNECTED:
                    self.link_down(endpoint, time.monotonic())
                    continue
                task = asyncio.create_task(self._send_again(endpoint, self.link_up(endpoint)))
                self._sending.add(task)
                task.add_done_callback(self._sending.discard)
        finally:
            for task in self._sending:
                task.cancel()
            self._pub.disable_monitor()
            self._monitor.close(linger=0)

    async def _send_again(self, endpoint: str, since: float) -> None:
        for delay in REPLAY_AFTER_S:
            await asyncio.sleep(delay)
            copies = self.since(since)
            for frames in copies:
                await self._pub.send_multipart(frames)
            self.sent_again += len(copies)
            if copies:
                logger.info("link to {} made: {} presence events sent again", endpoint, len(copies))
