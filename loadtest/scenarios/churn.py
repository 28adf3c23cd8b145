"""What the churn scenarios share: presence (users logging out and in while their
friends watch, loadtest.scenarios.presence) and avatars (users changing pictures while
their friends watch, then fetching them, loadtest.scenarios.avatars).

Both use the same population: U users in two halves, "movers" (even numbers) and
"watchers" (odd numbers); every mover is friends with K watchers, so every change a
mover makes must reach exactly K watchers, who stay connected the whole time. Every
expected event is counted; latency runs from the mover's request to each watcher's
receipt.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from loadtest import servers
from loadtest.aclient import AsyncChat, run_async
from loadtest.generator import PASSWORD, raise_file_limit, wait_for
from loadtest.results import Result, print_table, save, timeline_of


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The population's size and how many times each mover changes."""
    parser.add_argument("--users", type=int, default=200, help="movers + watchers")
    parser.add_argument("--friends", type=int, default=5, help="watchers per mover")
    parser.add_argument("--rounds", type=int, default=10, help="changes per mover")


class Watch:
    """Expected events (mover, change number) and when each reached each watcher."""

    def __init__(self) -> None:
        self.started_ns: dict[tuple[int, int], int] = {}
        self.latencies: list[float] = []
        self.bins: dict[int, int] = {}
        self.seen: set[tuple[int, int, int]] = set()
        self.duplicates = 0
        self.unexpected = 0

    def record(self, watcher: int, mover: int, change: int, now_ns: int) -> None:
        key = (watcher, mover, change)
        sent = self.started_ns.get((mover, change))
        if sent is None:
            self.unexpected += 1
            return
        if key in self.seen:
            self.duplicates += 1
            return
        self.seen.add(key)
        self.latencies.append((now_ns - sent) / 1e6)
        bucket = now_ns // 100_000_000
        self.bins[bucket] = self.bins.get(bucket, 0) + 1


async def population(port: int, users: int, friends: int, on_event: Any) -> tuple[list, list]:
    """Movers and watchers, logged in, each mover friends with `friends` watchers."""
    movers: list[AsyncChat] = []
    watchers: list[AsyncChat] = []
    half = users // 2
    sem = asyncio.Semaphore(64)

    async def login(name: str, handler: Any) -> AsyncChat:
        async with sem:
            c = AsyncChat(handler)
            await c.connect("127.0.0.1", port)
            await c.register_login(name, PASSWORD)
            return c

    watchers = await asyncio.gather(
        *(login(f"w{i}", lambda e, now, i=i: on_event(i, e, now)) for i in range(half))
    )
    movers = await asyncio.gather(*(login(f"m{i}", None) for i in range(half)))

    async def befriend(m: int) -> None:
        async with sem:
            for k in range(friends):
                w = (m + k) % half
                await movers[m].call("friend.request", username=f"w{w}")
                await watchers[w].call("friend.accept", username=f"m{m}")

    await asyncio.gather(*(befriend(m) for m in range(half)))
    return list(movers), list(watchers)


def finish(result: Result, watch: Watch, expected: int, started: float) -> None:
    result.expected = expected
    result.delivered = len(watch.seen)
    result.latencies_ms = watch.latencies
    result.timeline = timeline_of(watch.bins)
    result.duration_s = round(time.monotonic() - started, 3)
    result.extra.update(duplicates=watch.duplicates, unexpected=watch.unexpected)


async def await_all(watch: Watch, expected: int, seconds: float) -> None:
    """Until every expected event has reached its watcher, or `seconds` have passed."""
    await wait_for(lambda: len(watch.seen) >= expected, seconds, 0.05)


def count_reason(reasons: dict[str, int], exc: BaseException) -> None:
    reason = f"{type(exc).__name__}: {str(exc)[:60]}"
    reasons[reason] = reasons.get(reason, 0) + 1


def on_fresh_server(
    name: str,
    args: argparse.Namespace,
    scenario: Callable[[int, argparse.Namespace], Awaitable[Result]],
) -> list[Result]:
    raise_file_limit()
    with servers.chatroom(args.db, args.set) as (stack, _url):
        result = run_async(scenario(stack.port, args))
    print_table([result])
    save(args.out, name, [result])
    return [result]
