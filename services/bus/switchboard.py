"""The ZeroMQ switchboard: libzmq's own proxies, no business logic, no state.

For each backend service a ROUTER (edges connect) is joined to a DEALER (replicas
connect), so requests are shared round-robin among replicas and replies return to the
asking edge. Events go through one XSUB (services publish) / XPUB (edges subscribe) pair;
subscriptions flow back to publishers, so a service only sends what some edge wants.
"""

from __future__ import annotations

import threading

import zmq
from loguru import logger

from chatroom.config import BACKEND_SERVICES, Settings
from chatroom.runtime import EVENT_HWM


def _bind(
    zctx: zmq.Context, kind: int, address: str, sndhwm: int = 1000, rcvhwm: int = 1000
) -> zmq.Socket:
    sock = zctx.socket(kind)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDHWM, sndhwm)
    sock.setsockopt(zmq.RCVHWM, rcvhwm)
    # Detect peers that vanished without closing TCP (a killed container's host).
    sock.setsockopt(zmq.HEARTBEAT_IVL, 2000)
    sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, 6000)
    sock.bind(address)
    return sock


def _proxy(name: str, front: zmq.Socket, back: zmq.Socket) -> None:
    try:
        zmq.proxy(front, back)
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
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        s = self.settings
        pairs = []
        for service in BACKEND_SERVICES:
            front = _bind(self.zctx, zmq.ROUTER, s.bus_bind(f"{service}.front"))
            back = _bind(self.zctx, zmq.DEALER, s.bus_bind(f"{service}.back"))
            pairs.append((service, front, back))
        # Events flow XSUB -> XPUB; subscriptions flow back XPUB -> XSUB and must never
        # be dropped (see chatroom.runtime.EVENT_HWM).
        events_in = _bind(self.zctx, zmq.XSUB, s.bus_bind("events.in"), sndhwm=0, rcvhwm=EVENT_HWM)
        events_out = _bind(
            self.zctx, zmq.XPUB, s.bus_bind("events.out"), sndhwm=EVENT_HWM, rcvhwm=0
        )
        pairs.append(("events", events_in, events_out))
        for name, front, back in pairs:
            thread = threading.Thread(target=_proxy, args=(name, front, back), daemon=True)
            thread.start()
            self.threads.append(thread)
        logger.info("bus up on {}:{}-{}", s.bus_bind_host, s.bus_port_base, s.bus_port_base + 7)

    def stop(self) -> None:
        self.zctx.term()
