"""ZeroMQ sockets on the hot paths, driven straight from the asyncio loop.

pyzmq's zmq.asyncio wraps every receive and send in a future, runs a loop callback per
operation and does its event bookkeeping with enum.Flag arithmetic: in a profile of a
100-member room at 1,000 messages/s that layer was about a quarter of social's and of
the edge's CPU (docs/benchmarks.md, "Session 19"). A LoopSocket does the same job with
the loop's reader on the socket's file descriptor and non-blocking calls:

- A receive takes whatever is queued, up to a limit, without waiting; only when
  nothing is there does it wait, for the descriptor to signal. The caller handles the
  whole burst in one go (the edge then writes each client once per burst).
- A send is made at once (NOBLOCK); the caller decides what zmq.Again means.

libzmq's descriptor is edge-triggered: it signals that the socket's state may have
changed, and any operation on the socket (a send, a connect, reading ZMQ_EVENTS) can use
that signal up while a message waits. So whenever a receive is waiting:
- after our own sends, ZMQ_EVENTS is read again (once per loop pass, however many sends
  were made in it) and the receive woken if a message is there;
- operations made elsewhere (BusLinks connects and disconnects the socket when a bus
  moves) are covered by a slow watchdog that looks at ZMQ_EVENTS every RECHECK_S.

Once wrapped, the socket is only used through its LoopSocket (an awaited zmq.asyncio
operation on it would take over the descriptor's reader); its owner stops the LoopSocket,
then closes the socket.
"""

from __future__ import annotations

import asyncio

import zmq

# pyzmq's constants are enum.Flag members; `int & Flag` builds a new Flag each time.
_POLLIN = int(zmq.POLLIN)
_EVENTS = int(zmq.EVENTS)
# How often a waiting receive checks the socket regardless of its descriptor: the bound
# on the delay of a message whose signal an operation outside this class used up.
RECHECK_S = 0.25


class LoopSocket:
    def __init__(self, sock: zmq.Socket, recheck_s: float = RECHECK_S) -> None:
        """Create on the loop that will use it, after which only use it through here."""
        # A plain (blocking-API) view of the libzmq socket, used with NOBLOCK only.
        self.sock: zmq.Socket[bytes] = zmq.Socket.shadow(sock.underlying)
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[None] | None = None
        self._check_due = False
        self._fd: int = self.sock.FD
        # Reading ZMQ_EVENTS in the callback clears the descriptor's signal, so the
        # reader can stay registered without the loop spinning on it.
        self._loop.add_reader(self._fd, self._check)
        self._recheck_s = recheck_s
        self._watchdog = self._loop.call_later(recheck_s, self._watch)

    def stop(self) -> None:
        """Stop watching the socket; its owner closes it after this."""
        self._watchdog.cancel()
        self._loop.remove_reader(self._fd)

    async def receive(self, limit: int) -> list[list[bytes]]:
        """Wait for one message, then take up to `limit` in all that are already queued."""
        burst: list[list[bytes]] = []
        self.take(burst, limit)
        while not burst:
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
            self.take(burst, limit)
        return burst

    def take(self, burst: list[list[bytes]], limit: int) -> None:
        """Add to `burst` what is already queued, up to `limit` in all; never waits."""
        recv = self.sock.recv_multipart
        while len(burst) < limit:
            try:
                burst.append(recv(zmq.NOBLOCK))
            except zmq.Again:
                break

    def send_now(self, frames: list[bytes]) -> None:
        """Send without waiting; raises zmq.Again if libzmq cannot take it now."""
        self.sock.send_multipart(frames, zmq.NOBLOCK)
        if self._waiter is not None and not self._check_due:
            # The send may have used up the signal of a message that came meanwhile.
            self._check_due = True
            self._loop.call_soon(self._check)

    def _check(self) -> None:
        self._check_due = False
        ready = int(self.sock.getsockopt(_EVENTS)) & _POLLIN
        waiter = self._waiter
        if ready and waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _watch(self) -> None:
        if self._waiter is not None:
            self._check()
        self._watchdog = self._loop.call_later(self._recheck_s, self._watch)
