"""login: password logins per second against what argon2id alone allows.

    python -m loadtest login --users 100

First measures argon2id verification alone on one core with the production settings
(the baseline), then registers --users accounts (not timed) and logs them all in at
once, each on a new connection, against a stack hashing with the production settings.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from loadtest import servers
from loadtest.aclient import AsyncChat, run_async
from loadtest.generator import PASSWORD
from loadtest.results import Result, print_table, save

BASELINE_S = 3.0


def add_parsers(sub: Any, server: argparse.ArgumentParser, out: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "login", parents=[server, out], help="password logins per second against argon2id alone"
    )
    p.add_argument("--users", type=int, default=200)
    p.set_defaults(run=run)


def argon2_verify_rate(seconds: float = BASELINE_S) -> float:
    """What argon2id verification alone allows on this machine, per core, with the
    production defaults."""
    from argon2 import PasswordHasher

    from chatroom.config import Settings

    s = Settings()
    hasher = PasswordHasher(
        time_cost=s.argon2_time_cost,
        memory_cost=s.argon2_memory_kib,
        parallelism=s.argon2_parallelism,
    )
    stored = hasher.hash(PASSWORD)
    count, started = 0, time.monotonic()
    while time.monotonic() - started < seconds:
        hasher.verify(stored, PASSWORD)
        count += 1
    return count / (time.monotonic() - started)


async def _register(port: int, users: int) -> None:
    """Accounts login0..: not timed. A connection that has not logged in is closed after
    CHAT_LOGIN_TIMEOUT_S (10 s): at most 10 registrations (~100-400 ms each here) per
    connection, two connections at a time."""

    async def make(first: int) -> None:
        maker = AsyncChat()
        await maker.connect("127.0.0.1", port)
        for i in range(first, min(first + 10, users)):
            await maker.call("register", username=f"login{i}", password=PASSWORD, timeout=120)
        await maker.close()

    for first in range(0, users, 20):
        await asyncio.gather(*(make(f) for f in (first, first + 10)))


async def _logins(port: int, users: int) -> Result:
    await _register(port, users)
    result = Result("login", "chatroom", {"users": users})
    latencies: list[float] = []
    started = time.monotonic()

    async def one(i: int) -> None:
        c = AsyncChat()
        t0 = time.monotonic()
        await c.connect("127.0.0.1", port)
        await c.call("login", username=f"login{i}", password=PASSWORD, timeout=120)
        latencies.append((time.monotonic() - t0) * 1000)
        await c.close()

    await asyncio.gather(*(one(i) for i in range(users)))
    result.duration_s = round(time.monotonic() - started, 3)
    result.sent = result.expected = result.delivered = len(latencies)
    result.latencies_ms = latencies
    return result


def run(args: argparse.Namespace) -> list[Result]:
    baseline = argon2_verify_rate()
    print(f"argon2id verify alone: {baseline:.1f}/s on one core")
    with servers.chatroom(
        args.db,
        args.set,
        cheap_hashing=False,
        worker_threads=4,
        # All logins are sent at once and each costs ~90 ms of argon2: the last ones
        # wait longer than the usual 10 s in auth's queue, and their connections longer
        # than the 10 s a connection may take to log in.
        request_timeout_ms=60_000,
        login_timeout_s=120,
    ) as (stack, _url):
        result = run_async(_logins(stack.port, args.users))
    result.extra = {
        "argon2_verify_per_s_one_core": round(baseline, 1),
        "auth_cores": 1,
        "ratio_to_argon2_alone": round(result.rate / baseline, 3),
    }
    print_table([result])
    print(
        f"password logins/s {result.rate:.1f} vs argon2 alone {baseline:.1f}/s per core "
        f"(ratio {result.extra['ratio_to_argon2_alone']})"
    )
    save(args.out, "login", [result])
    return [result]
