"""ceiling: the load generator's own ceiling, with no ChatRoom server at all.

    python -m loadtest ceiling

Pushes per second that the generator's receiving processes can decode and time-stamp,
fed by a trivial server that writes stamped `message` frames and does nothing else.
"""

from __future__ import annotations

import argparse
import asyncio
from multiprocessing.connection import Connection
from typing import Any

from loadtest.aclient import AsyncChat, run_async
from loadtest.generator import Collector, spawn, stamp, wait_for
from loadtest.results import Result, add_bins, print_table, save, timeline_of

RECEIVE_DEADLINE_S = 120


def add_parsers(sub: Any, server: argparse.ArgumentParser, out: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "ceiling", parents=[out], help="the load generator's own ceiling (no ChatRoom server)"
    )
    p.add_argument("--members", type=int, default=100, help="receiving connections")
    p.add_argument("--frames", type=int, default=2000, help="frames to each member")
    p.add_argument("--processes", type=int, default=2, help="receiving processes")
    p.set_defaults(run=run)


def _blast_server(port_holder: Connection, frames: int, receivers: int) -> None:
    from chatroom.framing import encode_frame

    async def run() -> None:
        done = asyncio.Event()
        served = 0

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal served
            for seq in range(frames):
                writer.write(
                    encode_frame({"event": "message", "room": "lobby", "text": stamp(seq)})
                )
                if seq % 200 == 0:
                    await writer.drain()
            await writer.drain()
            served += 1
            if served >= receivers:
                done.set()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port_holder.send(server.sockets[0].getsockname()[1])
        await asyncio.wait_for(done.wait(), 300)
        await asyncio.sleep(1)  # the last frames are read before the sockets close
        server.close()

    run_async(run())


def _receiver(conn: Connection, port: int, count: int, frames: int) -> None:
    async def run() -> None:
        collector = Collector()
        clients = []
        for i in range(count):
            c = AsyncChat(collector.on_chat_event(i))
            await c.connect("127.0.0.1", port)
            clients.append(c)
        await wait_for(lambda: collector.count >= count * frames, RECEIVE_DEADLINE_S, 0.01)
        conn.send({"count": collector.count, "bins": collector.bins})

    run_async(run())


def run(args: argparse.Namespace) -> list[Result]:
    members, frames = args.members, args.frames
    (server_pipe,), (server,) = spawn(_blast_server, [(frames, members)])
    port = server_pipe.recv()
    shares = [len(range(i, members, args.processes)) for i in range(args.processes)]
    pipes, _procs = spawn(_receiver, [(port, n, frames) for n in shares])
    total, bins = 0, {}
    for pipe in pipes:
        part = pipe.recv()
        total += part["count"]
        add_bins(bins, part["bins"])
    server.join(10)
    timeline = timeline_of(bins)
    result = Result(
        "ceiling",
        "generator",
        {"members": members, "frames": frames, "processes": args.processes},
        sent=frames,
        expected=members * frames,
        delivered=total,
        duration_s=round(len(timeline) / 10, 2),
        timeline=timeline,
    )
    print_table([result])
    save(args.out, "ceiling", [result])
    return [result]
