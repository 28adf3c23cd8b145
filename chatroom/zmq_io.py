"""Receiving in bursts from zmq.asyncio sockets on the hot paths.

Awaiting `recv_multipart` on a zmq.asyncio socket costs a future and a trip through the
event loop per message, even when the message is already there. So after one awaited
receive, whatever else is already queued is taken at once without waiting, and the
caller handles the whole burst in one go (the edge then writes each client once per
burst). The next awaited receive first asks libzmq whether more is waiting, so nothing
is missed when the socket's edge-triggered notification was used up by these reads.

Sends stay awaited: pyzmq already sends at once when it can, and a send made behind its
back could use up the notification a pending receive on the same socket waits for. (The
one exception is a service's PUB socket, which never receives: see runtime.py.)
"""

from __future__ import annotations

import zmq
import zmq.asyncio


class BurstReceiver:
    def __init__(self, sock: zmq.asyncio.Socket) -> None:
        self.sock = sock
        # A plain (blocking-API) view of the same libzmq socket, used with NOBLOCK only.
        self._now: zmq.Socket[bytes] = zmq.Socket.shadow(sock.underlying)

    async def receive(self, limit: int) -> list[list[bytes]]:
        """Wait for one message, then take up to `limit` in all that are already queued."""
        burst = [await self.sock.recv_multipart()]
        self.take(burst, limit)
        return burst

    def take(self, burst: list[list[bytes]], limit: int) -> None:
        """Add to `burst` what is already queued, up to `limit` in all; never waits."""
        while len(burst) < limit:
            try:
                burst.append(self._now.recv_multipart(zmq.NOBLOCK))
            except zmq.Again:
                break
