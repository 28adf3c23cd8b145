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

The socket is a plain `zmq.Socket` (made with `zmq.Socket(context, type)`, not a
zmq.asyncio one, whose awaited operations would take over the descriptor's reader), and
once wrapped it is only read through its LoopSocket. Its owner stops the LoopSocket,
then closes the socket.
"""

from __future__ import annotations

import asyncio

import zmq
import zmq.asyncio

# pyzmq's constants are enum.Flag members; `int & Flag` builds a new Flag each time.
_POLLIN = int(zmq.POLLIN)
_EVENTS = int(zmq.EVENTS)
# How often a waiting receive checks the socket regardless of its descriptor: the bound
# on the delay of a message whose signal an operation outside this class used up.
RECHECK_S = 0.25


class LoopSocket:
    def __init__(self, sock: zmq.Socket[bytes], recheck_s: float = RECHECK_S) -> None:
        """Create on the loop that will use it."""
        if isinstance(sock, zmq.asyncio.Socket):
            raise TypeError("a LoopSocket drives a plain zmq.Socket, not a zmq.asyncio one")
        self.sock = sock
        self._loop = asyncio.get_running_loop()
        self._waiter: asyncio.Future[None] | None = None
        self._check_due: asyncio.Handle | None = None
        self._stopped = False
        self._fd: int = sock.FD
        # Reading ZMQ_EVENTS in the callback clears the descriptor's signal, so the
        # reader can stay registered without the loop spinning on it.
        self._loop.add_reader(self._fd, self._check)
        self._recheck_s = recheck_s
        self._watchdog = self._loop.call_later(recheck_s, self._watch)

    def stop(self) -> None:
        """Stop watching the socket; its owner closes it after this."""
        self._stopped = True
        self._watchdog.cancel()
        if self._check_due is not None:
            self._check_due.cancel()
        self._loop.remove_reader(self._fd)

    async def receive(self, limit: int) -> list[list[bytes]]:
        """Wait for one message, then take up to `limit` in all that are already queued.
        One receive at a time per socket."""
        assert self._waiter is None, "a receive is already waiting on this socket"
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
        try:
            self.sock.send_multipart(frames, zmq.NOBLOCK)
        finally:
            # The send (even one refused with Again) may have used up the signal of a
            # message that came meanwhile.
            if self._waiter is not None and self._check_due is None and not self._stopped:
                self._check_due = self._loop.call_soon(self._check)

    def _check(self) -> None:
        self._check_due = None
        if self._stopped:
            return
        ready = int(self.sock.getsockopt(_EVENTS)) & _POLLIN
        waiter = self._waiter
        if ready and waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _watch(self) -> None:
        if self._waiter is not None:
            self._check()
        self._watchdog = self._loop.call_later(self._recheck_s, self._watch)
