"""The ZeroMQ switchboard: libzmq's own proxies, no business logic, no state.

For each backend service a ROUTER (edges connect) is joined to a DEALER (replicas
connect), so requests are shared round-robin among replicas and replies return to the
asking edge. Events go through one XSUB (services publish) / XPUB (edges subscribe) pair;
subscriptions flow back to publishers, so a service only sends what some edge wants.
Operator ops have a ROUTER/DEALER pair per service of their own (admin.front/.back).

Every socket is a CURVE server: the guard (chatroom.buskeys) admits on each endpoint only
the keys of the roles allowed there, before any message passes.
"""

from __future__ import annotations

import threading

import zmq
from loguru import logger

from chatroom.bus_contract import EVENT_HWM
from chatroom.bus_links import set_link_heartbeats
from chatroom.buskeys import BusGuard
from chatroom.config import ADMIN_SERVICES, BACKEND_SERVICES, BUS_PORT_OFFSETS, Settings


def _bind(
    guard: BusGuard,
    settings: Settings,
    kind: int,
    endpoint: str,
    sndhwm: int = 1000,
    rcvhwm: int = 1000,
) -> zmq.Socket:
    sock = guard.zctx.socket(kind)
    guard.secure_server(sock, endpoint)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, sndhwm)
    sock.setsockopt(zmq.RCVHWM, rcvhwm)
    set_link_heartbeats(sock)
    sock.bind(settings.bus_bind(endpoint))
    return sock


def _proxy(name: str, front: zmq.Socket, back: zmq.Socket) -> None:
    try:
        while True:
            try:
                zmq.proxy(front, back)
            except zmq.Again:
                # libzmq 4.3.5's proxy gives up when a socket it polled as readable then
                # has nothing to read on the first try (proxy.cpp forward(): EAGAIN with
                # i == 0), which CURVE's heartbeats on an idle pair provoke. Nothing was
                # taken off either socket, so carrying on loses nothing.
                continue
    except zmq.ContextTerminated:
        pass
    except zmq.ZMQError as exc:
        logger.error("{} proxy stopped: {}", name, exc)
    finally:
        front.close()
        back.close()


class Switchboard:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.zctx = zmq.Context()
        self.guard = BusGuard(settings, self.zctx)
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        s = self.settings
        self.guard.start()
        queues = [*BACKEND_SERVICES, *(f"{service}.admin" for service in ADMIN_SERVICES)]
        pairs = []
        for queue in queues:
            front = _bind(self.guard, s, zmq.ROUTER, f"{queue}.front")
            back = _bind(self.guard, s, zmq.DEALER, f"{queue}.back")
            pairs.append((queue, front, back))
        # Events flow XSUB -> XPUB; subscriptions flow back XPUB -> XSUB and must never
        # be dropped (see chatroom.bus_contract.EVENT_HWM).
        events_in = _bind(self.guard, s, zmq.XSUB, "events.in", sndhwm=0, rcvhwm=EVENT_HWM)
        events_out = _bind(self.guard, s, zmq.XPUB, "events.out", sndhwm=EVENT_HWM, rcvhwm=0)
        pairs.append(("events", events_in, events_out))
        for name, front, back in pairs:
            thread = threading.Thread(target=_proxy, args=(name, front, back), daemon=True)
            thread.start()
            self.threads.append(thread)
        last = s.bus_port_base + max(BUS_PORT_OFFSETS.values())
        curve = "CURVE" if s.bus_curve else "NO AUTHENTICATION"
        logger.info("bus up on {}:{}-{} ({})", s.bus_bind_host, s.bus_port_base, last, curve)

    def stop(self) -> None:
        self.guard.stop()
        self.zctx.term()
