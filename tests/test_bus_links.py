"""BusLinks: sockets connect to the buses by address, names are looked up off libzmq's
I/O thread and followed when they move (chatroom/bus_links.py)."""

from __future__ import annotations

import asyncio

import zmq

from chatroom import config_env
from chatroom.bus_links import BusLinks
from chatroom.config import BUS_PORT_OFFSETS


class Recorder:
    """Stands in for a zmq socket: what it was connected to, in order."""

    closed = False

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.options: dict[int, int] = {}

    def setsockopt(self, option: int, value: int) -> None:
        self.options[option] = value

    def connect(self, endpoint: str) -> None:
        self.calls.append(("connect", endpoint))

    def disconnect(self, endpoint: str) -> None:
        self.calls.append(("disconnect", endpoint))


def test_addresses_connect_at_once_and_names_once_looked_up():
    links = BusLinks(config_env.load({"CHAT_BUS_HOSTS": "127.0.0.1:20000,localhost:21000"}))
    sock = Recorder()
    links.attach(sock, "events.in")  # type: ignore[arg-type]
    offset = BUS_PORT_OFFSETS["events.in"]
    assert sock.calls == [("connect", f"tcp://127.0.0.1:{20000 + offset}")]
    asyncio.run(links.refresh())
    assert sock.calls[-1] == ("connect", f"tcp://127.0.0.1:{21000 + offset}")
    assert links.addresses["localhost"] == "127.0.0.1"
    # A connect that gets no answer (a partitioned host) is retried soon, not after the
    # kernel's SYN backoff.
    assert sock.options[zmq.CONNECT_TIMEOUT] == 1000


def test_a_name_that_moves_is_followed_and_one_that_fails_keeps_its_address():
    links = BusLinks(config_env.load({"CHAT_BUS_HOSTS": "bus-a:20000"}))
    sock = Recorder()
    links.attach(sock, "social.back")  # type: ignore[arg-type]
    assert sock.calls == []  # nothing known yet
    answers = iter(["10.0.0.5", None, "10.0.0.9"])

    async def look_up(_host: str) -> str | None:
        return next(answers)

    links._look_up = look_up  # type: ignore[method-assign]  # DNS is not ours to move
    port = 20000 + BUS_PORT_OFFSETS["social.back"]
    asyncio.run(links.refresh())
    assert sock.calls == [("connect", f"tcp://10.0.0.5:{port}")]
    asyncio.run(links.refresh())  # the lookup failed: the old address stays
    assert len(sock.calls) == 1
    asyncio.run(links.refresh())
    assert sock.calls[1:] == [
        ("disconnect", f"tcp://10.0.0.5:{port}"),
        ("connect", f"tcp://10.0.0.9:{port}"),
    ]
    links.detach(sock)  # type: ignore[arg-type]
    assert sock.calls[-1] == ("disconnect", f"tcp://10.0.0.9:{port}")


def test_real_sockets_reach_a_bus_found_by_name():
    """A DEALER attached by name gets connected once the name is looked up."""
    ctx = zmq.Context()
    server = ctx.socket(zmq.ROUTER)
    base = server.bind_to_random_port("tcp://127.0.0.1") - BUS_PORT_OFFSETS["auth.front"]
    client = ctx.socket(zmq.DEALER)
    client.setsockopt(zmq.IMMEDIATE, 1)
    try:
        links = BusLinks(config_env.load({"CHAT_BUS_HOSTS": f"localhost:{base}"}))
        links.attach(client, "auth.front")
        asyncio.run(links.refresh())
        client.send(b"hello")
        assert server.poll(5000)
        assert server.recv_multipart()[-1] == b"hello"
    finally:
        client.close(0)
        server.close(0)
        ctx.term()
