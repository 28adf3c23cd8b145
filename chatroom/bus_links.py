"""A process's connections to the buses, made to addresses: host names are looked up
here, in a thread of their own, and again every RESOLVE_EVERY_S; libzmq only ever gets IP
addresses.

Why not let libzmq look names up: it does so in its I/O thread, on every reconnect, and
while a lookup hangs every socket of the context stands still. Seen in Swarm: once a
bus's task was gone, its name took 10 s to fail each time (the embedded DNS asking
upstream servers that did not answer), so the replicas failed their health checks and
requests stopped even through the other bus. Here a lookup that hangs delays only the
next lookup; the sockets keep the last address (libzmq goes on reconnecting to it, which
does not block), and move when the name comes back with another address (a rescheduled
pod or task).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from concurrent.futures import ThreadPoolExecutor

import zmq
from loguru import logger

from chatroom.bus_contract import LINK_HEARTBEAT_IVL_MS, LINK_HEARTBEAT_TIMEOUT_MS
from chatroom.config import BUS_PORT_OFFSETS, Settings

RESOLVE_EVERY_S = 5.0
LOOKUP_TIMEOUT_S = 15.0
# A TCP connect to a bus that does not answer (a host cut off by a partition) is given
# up after this and tried again every reconnect interval (100 ms). Without it the kernel's
# SYN retries (1, 2, 4, 8, 16 s apart) decide: after a 30 s partition healed, a host's
# services took 14 s to reach the other buses again (tests/test_host_faults.py), while
# some of their sockets were already serving requests, so their events went nowhere.
CONNECT_TIMEOUT_MS = 1000


def set_link_heartbeats(sock: zmq.Socket) -> None:
    """Heartbeats on a bus socket, at either end of the link (bus_contract)."""
    sock.setsockopt(zmq.HEARTBEAT_IVL, LINK_HEARTBEAT_IVL_MS)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, LINK_HEARTBEAT_TIMEOUT_MS)


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _endpoint(address: str, base: int, name: str) -> str:
    host = f"[{address}]" if ":" in address else address
    return f"tcp://{host}:{base + BUS_PORT_OFFSETS[name]}"


class BusLinks:
    """Which sockets connect to which bus endpoints (`attach`), and keeping them
    connected to where each bus's name points now (`run`, a task on the socket's loop)."""

    def __init__(self, settings: Settings) -> None:
        self.peers = settings.bus_peers()  # (host, port base) of every bus
        # Each bus host's address as last looked up; an address is its own.
        self.addresses: dict[str, str] = {h: h for h, _ in self.peers if _is_address(h)}
        self._links: list[tuple[zmq.Socket, str]] = []  # (socket, endpoint name)
        self._lookups = ThreadPoolExecutor(1, thread_name_prefix="bus-lookup")

    @property
    def names(self) -> list[str]:
        return [host for host, _ in self.peers if not _is_address(host)]

    def attach(self, sock: zmq.Socket, name: str) -> None:
        """Connect `sock` to endpoint `name` (e.g. "social.front") of every bus whose
        address is known, and to the others' once it is."""
        self._links.append((sock, name))
        sock.setsockopt(zmq.CONNECT_TIMEOUT, CONNECT_TIMEOUT_MS)
        for host, base in self.peers:
            if host in self.addresses:
                sock.connect(_endpoint(self.addresses[host], base, name))

    def detach(self, sock: zmq.Socket) -> None:
        """Disconnect `sock` from every bus (a stopping service: the buses stop routing
        requests to it) and stop following names for it."""
        for linked, name in [link for link in self._links if link[0] is sock]:
            for host, base in self.peers:
                if host in self.addresses:
                    sock.disconnect(_endpoint(self.addresses[host], base, name))
            self._links.remove((linked, name))

    def _move(self, host: str, address: str) -> None:
        base = next(b for h, b in self.peers if h == host)
        old = self.addresses.get(host)
        self.addresses[host] = address
        for sock, name in self._links:
            if sock.closed:
                continue
            if old is not None:
                sock.disconnect(_endpoint(old, base, name))
            sock.connect(_endpoint(address, base, name))
        if old is None:
            logger.info("bus {} found at {}", host, address)
        else:
            logger.warning("bus {} moved from {} to {}", host, old, address)

    async def _look_up(self, host: str) -> str | None:
        loop = asyncio.get_running_loop()
        try:
            found = await asyncio.wait_for(
                loop.run_in_executor(
                    self._lookups, socket.getaddrinfo, host, None, socket.AF_INET,
                    socket.SOCK_STREAM,
                ),
                LOOKUP_TIMEOUT_S,
            )  # fmt: skip
        except (OSError, TimeoutError) as exc:
            logger.debug("bus {}: no address ({}); keeping {}", host, exc, self.addresses.get(host))
            return None
        return str(found[0][4][0]) if found else None

    async def refresh(self) -> None:
        """Look every bus name up once and follow the ones that moved."""
        for host in self.names:
            address = await self._look_up(host)
            if address is not None and address != self.addresses.get(host):
                self._move(host, address)

    async def run(self) -> None:
        """Keep following the names (nothing to do for buses given by address)."""
        if not self.names:
            return
        try:
            while True:
                await self.refresh()
                await asyncio.sleep(RESOLVE_EVERY_S)
        finally:
            self._lookups.shutdown(wait=False, cancel_futures=True)
