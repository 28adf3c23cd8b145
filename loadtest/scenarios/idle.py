"""idle: N different users logged in on N idle connections; edge memory per connection.

    python -m loadtest idle --connections 10000
    python -m loadtest idle --connections 50000 --set edge_workers=3

Worker processes of at most 15,000 connections each (one process may hold 20,000
files), each connecting from its own loopback address (ephemeral ports per address).
A user whose connection or login fails in the storm tries again on a new connection,
as the desktop client does; the failed attempts are counted.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from multiprocessing.connection import Connection
from typing import Any

from loadtest import measure, servers
from loadtest.aclient import AsyncChat, ChatError, run_async
from loadtest.generator import PASSWORD, raise_file_limit, spawn
from loadtest.results import Result, print_table, save

ATTEMPTS = 4
PER_PROCESS = 15_000  # below the 20,000 open files one process may hold
SETTLE_S = 2  # after the last login, before the edge's memory is read


def add_parsers(sub: Any, server: argparse.ArgumentParser, out: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "idle",
        parents=[server, out],
        help="N users logged in on idle connections: edge memory per connection",
    )
    p.add_argument("--connections", type=int, default=10_000)
    p.set_defaults(run=run)


def _add_counts(into: dict[str, int], counts: dict[str, int]) -> None:
    for reason, n in counts.items():
        into[reason] = into.get(reason, 0) + n


def _idle_worker(conn: Connection, port: int, first: int, count: int, source: str) -> None:
    """Users idle<first>..: each registers, logs in on its own connection and stays."""

    async def run() -> None:
        clients = []
        sem = asyncio.Semaphore(200)
        retried: dict[str, int] = {}

        async def one(n: int) -> None:
            for attempt in range(1, ATTEMPTS + 1):
                async with sem:
                    c = AsyncChat()
                    try:
                        await c.connect("127.0.0.1", port, source=source)
                        await c.register_login(f"idle{n}", PASSWORD, timeout=120)
                        clients.append(c)
                        return
                    except (ChatError, OSError, TimeoutError) as exc:
                        await c.close()
                        reason = getattr(exc, "code", None) or type(exc).__name__
                        retried[reason] = retried.get(reason, 0) + 1
                        if attempt == ATTEMPTS:
                            raise
                await asyncio.sleep(attempt * random.uniform(1, 2))  # backing off

        outcomes = await asyncio.gather(
            *(one(first + i) for i in range(count)), return_exceptions=True
        )
        reasons: dict[str, int] = {}
        for failure in (o for o in outcomes if isinstance(o, BaseException)):
            _add_counts(reasons, {type(failure).__name__: 1})
        conn.send((len(clients), reasons, retried))
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        for c in clients:
            await c.close()

    raise_file_limit()
    run_async(run())


def run(args: argparse.Namespace) -> list[Result]:
    # Held without a ping: an idle timeout far beyond the run (as for every scenario).
    with servers.chatroom(
        args.db, args.set, idle_timeout_s=servers.QUIET_CLIENTS_IDLE_TIMEOUT_S
    ) as (stack, _url):
        edge_pid = stack.procs["edge#0"].pid
        before = measure.process_tree_rss_kib(edge_pid)
        shares = [
            (first, min(PER_PROCESS, args.connections - first))
            for first in range(0, args.connections, PER_PROCESS)
        ]
        started = time.monotonic()
        pipes, procs = spawn(
            _idle_worker,
            [
                (stack.port, first, n, f"127.0.0.{2 + index}")
                for index, (first, n) in enumerate(shares)
            ],
        )
        connected, failures, retries = 0, {}, {}
        for pipe in pipes:
            if pipe.poll(900):
                ok, reasons, retried = pipe.recv()
                connected += ok
                _add_counts(failures, reasons)
                _add_counts(retries, retried)
        elapsed = time.monotonic() - started
        time.sleep(SETTLE_S)  # let the edge's last allocations show in its RSS
        after = measure.process_tree_rss_kib(edge_pid)
        for pipe in pipes:
            pipe.send("stop")
        for proc in procs:
            proc.join(30)
    per_conn = (after - before) / max(connected, 1)
    result = Result(
        "idle",
        "chatroom",
        {"connections": args.connections},
        sent=args.connections,
        expected=args.connections,
        delivered=connected,
        errors=sum(failures.values()),
        duration_s=round(elapsed, 2),
        extra={
            "failed_logins": failures,
            "retried_attempts": retries,
            "edge_rss_before_kib": before,
            "edge_rss_after_kib": after,
            "edge_kib_per_connection": round(per_conn, 2),
        },
    )
    print_table([result])
    print(
        f"{connected} logged-in idle connections; edge RSS {before} -> {after} KiB = "
        f"{per_conn:.2f} KiB per connection; failed attempts retried: {retries or 0}"
    )
    save(args.out, "idle", [result])
    return [result]
