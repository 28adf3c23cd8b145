"""resume: a reconnect storm of token logins, as after an edge restart.

    python -m loadtest resume --users 10000 --inflight 256

N different users get a session token (not timed), then all resume with their tokens,
at most --inflight at a time, each on a new connection, and stay connected until all
are back. Timed from the first connect to the last login reply.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from loadtest import servers
from loadtest.aclient import AsyncChat, run_async
from loadtest.generator import PASSWORD, raise_file_limit
from loadtest.results import Result, print_table, progress, save


def add_parsers(sub: Any, server: argparse.ArgumentParser, out: argparse.ArgumentParser) -> None:
    p = sub.add_parser("resume", parents=[server, out], help="a reconnect storm of token logins")
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--inflight", type=int, default=32, help="resumes at a time")
    p.set_defaults(run=run)


async def _tokens(port: int, users: int) -> list[str]:
    tokens: list[str] = []
    sem = asyncio.Semaphore(64)

    async def make_token(i: int) -> None:
        async with sem:
            c = AsyncChat()
            await c.connect("127.0.0.1", port)
            reply = await c.register_login(f"resumer{i}", PASSWORD)
            tokens.append(reply["token"])
            await c.close()

    setup = time.monotonic()
    await asyncio.gather(*(make_token(i) for i in range(users)))
    print(f"{len(tokens)} users with sessions in {time.monotonic() - setup:.1f} s")
    return tokens


async def _storm(port: int, users: int, inflight: int) -> Result:
    tokens = await _tokens(port, users)
    result = Result("resume", "chatroom", {"users": users, "inflight": inflight})
    latencies: list[float] = []
    connected: list[AsyncChat] = []
    window = asyncio.Semaphore(inflight)
    started = time.monotonic()

    async def resume(token: str) -> None:
        async with window:
            c = AsyncChat()
            t0 = time.monotonic()
            await c.connect("127.0.0.1", port)
            await c.call("login", token=token, timeout=60)
            latencies.append((time.monotonic() - t0) * 1000)
            connected.append(c)
            if len(latencies) % 500 == 0:
                progress("token resumes", len(latencies), len(tokens), started)

    await asyncio.gather(*(resume(t) for t in tokens))
    result.duration_s = round(time.monotonic() - started, 3)
    progress("token resumes", len(latencies), len(tokens), started)
    for c in connected:
        await c.close()
    result.sent = result.expected = len(tokens)
    result.delivered = len(latencies)
    result.latencies_ms = latencies
    return result


def run(args: argparse.Namespace) -> list[Result]:
    raise_file_limit()
    with servers.chatroom(args.db, args.set) as (stack, _url):
        result = run_async(_storm(stack.port, args.users, args.inflight))
    print_table([result])
    save(args.out, "resume", [result])
    return [result]
