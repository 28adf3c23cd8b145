"""Container health checks: real requests, not "the process exists".

- a service (auth, social, media): a ZeroMQ request to the replica's own health socket on
  127.0.0.1:CHAT_HEALTH_PORT, answered by its event loop after a database round trip
  (ready); with ``live``, answered by the event loop alone (alive, whatever the database);
- the bus: an event published into its XSUB side must come back out of its XPUB side;
- the edge: a framed `ping` over TCP to its own port must get its reply.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time

from chatroom import buskeys
from chatroom.bus_contract import HEALTH_LIVE, HEALTH_READY, HEALTH_TOPIC_PREFIX, event_frames
from chatroom.config import Settings
from chatroom.framing import FrameDecoder, encode_frame, loads, parse_payload


class Unhealthy(Exception):
    pass


def check_service(settings: Settings, timeout_s: float, live: bool = False) -> dict:
    import zmq

    if not settings.health_port:
        raise Unhealthy("CHAT_HEALTH_PORT is not set for this service")
    zctx = zmq.Context()
    sock = zctx.socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.RCVTIMEO, int(timeout_s * 1000))
    try:
        sock.connect(f"tcp://127.0.0.1:{settings.health_port}")
        sock.send(HEALTH_LIVE if live else HEALTH_READY)
        try:
            reply = loads(sock.recv())
        except zmq.Again:
            raise Unhealthy(f"no answer within {timeout_s:g}s") from None
    finally:
        sock.close()
        zctx.term()
    if not reply.get("ok"):
        raise Unhealthy(reply.get("error", "unhealthy"))
    return reply


def check_bus(settings: Settings, timeout_s: float, live: bool = False) -> dict:
    """Alive and ready are one check: the bus depends on nothing else."""
    import zmq

    topic = f"{HEALTH_TOPIC_PREFIX}{os.getpid()}:{time.monotonic_ns()}|".encode()
    zctx = zmq.Context()
    sub = zctx.socket(zmq.SUB)
    pub = zctx.socket(zmq.PUB)
    keys = buskeys.client_keys(settings, buskeys.SERVER_ROLE)  # the bus's own key
    for sock in (sub, pub):
        buskeys.secure_client(sock, keys)
        sock.setsockopt(zmq.LINGER, 0)
    try:
        sub.connect(settings.bus_connect("events.out"))
        sub.setsockopt(zmq.SUBSCRIBE, topic)
        pub.connect(settings.bus_connect("events.in"))
        deadline = time.monotonic() + timeout_s
        # The subscription takes a moment to travel through the proxy: keep publishing.
        while time.monotonic() < deadline:
            pub.send_multipart(event_frames(topic, {}))
            if sub.poll(100):
                sub.recv_multipart()
                return {"ok": True, "service": "bus"}
        raise Unhealthy(f"an event did not come back through the bus in {timeout_s:g}s")
    finally:
        sub.close()
        pub.close()
        zctx.term()


def check_edge(settings: Settings, timeout_s: float, live: bool = False) -> dict:
    """Alive and ready are one check: the edge answers `ping` itself."""
    try:
        with socket.create_connection(("127.0.0.1", settings.edge_port), timeout=timeout_s) as s:
            s.sendall(encode_frame({"op": "ping", "id": "health"}))
            decoder = FrameDecoder(settings.max_frame_bytes)
            while True:
                data = s.recv(65536)
                if not data:
                    raise Unhealthy("the edge closed the connection")
                for payload in decoder.feed(data):
                    reply = parse_payload(payload)
                    if reply.get("id") == "health" and reply.get("ok"):
                        return {"ok": True, "service": "tcp_edge"}
    except OSError as exc:
        raise Unhealthy(f"edge not answering on port {settings.edge_port}: {exc}") from None


def ping_through_bus(settings: Settings, service: str, timeout_ms: int) -> dict:
    """One request to `service` through the bus (what `chatroom ping` does)."""
    import zmq.asyncio

    from chatroom.bus_client import BusClient

    async def ping() -> dict:
        zctx = zmq.asyncio.Context()
        client = BusClient(settings, f"health:{os.getpid()}", zctx)
        client.start()
        try:
            return await client.ping(service, timeout_ms=timeout_ms)
        finally:
            client.close()
            zctx.term()

    return asyncio.run(ping())


CHECKS = {
    "auth": check_service,
    "social": check_service,
    "media": check_service,
    "bus": check_bus,
    "tcp_edge": check_edge,
}
