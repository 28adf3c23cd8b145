"""Asks backend services questions over the bus (used by the edge and health checks).

One DEALER socket per service, connected to that service's ROUTER on every bus
(CHAT_BUS_HOSTS), so requests are spread across the live buses and all replicas, and
replies find their way back by id.
A request that gets no reply in time is retried (if it is safe to) and then answered
with service_unavailable: a caller never hangs on a dead or paused service.

An edge (and anything asking as one: health checks, the test harness) connects with the
edge's CURVE key; ``chatroom admin`` connects with the admin key to the operators' path
(<service>.admin.front), the only one on which services serve admin.* ops.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import zmq
from loguru import logger

from chatroom import buskeys, metrics
from chatroom.bus_contract import PING_OP, request
from chatroom.bus_links import BusLinks, set_link_heartbeats
from chatroom.config import ADMIN_SERVICES, BACKEND_SERVICES, Settings
from chatroom.errors import ServiceError
from chatroom.framing import dumps, loads
from chatroom.protocol import ErrorCode
from chatroom.zmq_io import LoopSocket

REPLY_BURST = 256
# While no bus is connected, how often a request tries again to go out.
NO_BUS_POLL_S = 0.05


class BusClient:
    def __init__(
        self, settings: Settings, name: str, zctx: zmq.Context, *, admin: bool = False
    ) -> None:
        self.settings = settings
        self.name = name
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future] = {}
        self._sockets: dict[str, zmq.Socket[bytes]] = {}
        self._io: dict[str, LoopSocket] = {}  # by service, once started
        self._readers: list[asyncio.Task] = []
        keys = buskeys.client_keys(settings, buskeys.ADMIN_ROLE if admin else buskeys.EDGE_ROLE)
        services = ADMIN_SERVICES if admin else BACKEND_SERVICES
        timeouts = metrics.get().bus_timeouts
        self._timeouts = {service: timeouts.labels(service) for service in services}
        # Every bus of CHAT_BUS_HOSTS, by address (names looked up off libzmq's thread);
        # the edge attaches its event socket here too.
        self.links = BusLinks(settings)
        for service in services:
            sock: zmq.Socket[bytes] = zmq.Socket(zctx, zmq.DEALER)  # a LoopSocket drives it
            buskeys.secure_client(sock, keys)
            sock.setsockopt(zmq.LINGER, 0)
            set_link_heartbeats(sock)
            # Requests are shared round-robin among the buses this socket is connected
            # to now; none is queued for a bus that is down or not yet reached (it would
            # wait there until that bus came back, long after its deadline).
            sock.setsockopt(zmq.IMMEDIATE, 1)
            self.links.attach(sock, f"{service}.admin.front" if admin else f"{service}.front")
            self._sockets[service] = sock

    def start(self) -> None:
        """On the loop that will make the calls."""
        for service, sock in self._sockets.items():
            self._io[service] = LoopSocket(sock)
            self._readers.append(asyncio.create_task(self._read_replies(service)))
        self._readers.append(asyncio.create_task(self.links.run()))

    def close(self) -> None:
        for task in self._readers:
            task.cancel()
        for io in self._io.values():
            io.stop()
        for sock in self._sockets.values():
            sock.close()
        for fut in self._pending.values():
            if not fut.done():
                fut.cancel()

    async def _read_replies(self, service: str) -> None:
        replies = self._io[service]
        while True:
            for frames in await replies.receive(REPLY_BURST):
                try:
                    reply = loads(frames[-1])
                    fut = self._pending.get(reply["rid"])
                except (ValueError, KeyError, TypeError):
                    logger.warning("malformed reply from {}", service)
                    continue
                if fut is not None and not fut.done():
                    fut.set_result(reply)
                # A reply to a request that already timed out is dropped here.

    async def call(
        self,
        service: str,
        op: str,
        args: dict[str, Any] | None = None,
        ctx: dict[str, Any] | None = None,
        *,
        retry: bool = False,
        timeout_ms: int | None = None,
    ) -> dict[str, Any]:
        """Return the service's result or raise ServiceError (typed, ready for a client)."""
        timeout_s = (timeout_ms or self.settings.request_timeout_ms) / 1000
        attempts = self.settings.request_attempts if retry else 1
        per_attempt = timeout_s / attempts
        rid = f"{self.name}:{next(self._ids)}"
        body = request(rid, op, args or {}, ctx or {})
        loop = asyncio.get_running_loop()
        try:
            for attempt in range(1, attempts + 1):
                # A new future per attempt under the same rid: a late reply to an
                # earlier attempt answers this one. A timer resolves it with None when
                # the attempt times out (cheaper than asyncio.wait on this hot path).
                fut: asyncio.Future = loop.create_future()
                self._pending[rid] = fut
                body["deadline_ms"] = int((time.time() + per_attempt) * 1000)
                timer = loop.call_later(per_attempt, _time_out, fut)
                try:
                    if await self._send(self._io[service], dumps(body), fut):
                        reply = await fut
                    else:
                        reply = None  # no bus was reachable within the attempt
                finally:
                    timer.cancel()
                if reply is not None:
                    break
                self._timeouts[service].inc()
                logger.warning(
                    "{} {} got no reply within {:.1f}s (attempt {}/{})",
                    service,
                    op,
                    per_attempt,
                    attempt,
                    attempts,
                )
            else:
                raise ServiceError(
                    ErrorCode.SERVICE_UNAVAILABLE,
                    f"the {service} service did not answer in time; try again shortly",
                )
        finally:
            self._pending.pop(rid, None)
        if reply.get("ok"):
            return reply.get("result") or {}
        raise ServiceError.from_dict(reply.get("error"))

    @staticmethod
    async def _send(sock: LoopSocket, frame: bytes, attempt: asyncio.Future) -> bool:
        """Hand a request to a connected bus, waiting (until the attempt times out) while
        none is: every bus down or restarting. False if the attempt ended first."""
        while not attempt.done():
            try:
                sock.send_now([frame])
                return True
            except zmq.Again:
                await asyncio.sleep(NO_BUS_POLL_S)
        return False

    async def ping(self, service: str, timeout_ms: int = 2000) -> dict[str, Any]:
        return await self.call(service, PING_OP, timeout_ms=timeout_ms)


def _time_out(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)
