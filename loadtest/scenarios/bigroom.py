"""bigroom: one message to a room of N members; time until every member has it.

    python -m loadtest bigroom --members 1000 --trials 3

Each trial runs on a fresh stack, so one trial's thousand logouts do not load the next.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from typing import Any

from loadtest import servers
from loadtest.aclient import run_async
from loadtest.generator import ReceiverPool, connect_sender, stamp
from loadtest.results import Result, print_table, save


def add_parsers(sub: Any, server: argparse.ArgumentParser, out: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "bigroom",
        parents=[server, out],
        help="one message to a room of N members: time until all have it",
    )
    p.add_argument("--members", type=int, default=100)
    p.add_argument("--trials", type=int, default=5)
    p.add_argument("--processes", type=int, default=2, help="receiving processes")
    p.set_defaults(run=run)


async def _send_one(seq: int, port: int) -> None:
    sender = await connect_sender("chatroom", port, "big-sender")
    await asyncio.sleep(0.5)  # the receivers' "go" has arrived
    await sender.call("room.send", room="lobby", text=stamp(seq))
    await sender.close()


def run(args: argparse.Namespace) -> list[Result]:
    results = []
    for trial in range(args.trials):
        with servers.chatroom(args.db, args.set) as (stack, _url):
            pool = ReceiverPool(
                "chatroom", stack.port, args.members - 1, 1, args.processes, deadline_s=30
            )
            pool.wait_ready()
            pool.go()
            run_async(_send_one(trial, stack.port))
            merged = pool.collect(timeout=60)
        result = Result(
            "bigroom",
            "chatroom",
            {"members": args.members, "trial": trial},
            sent=1,
            expected=args.members - 1,
            delivered=merged["count"],
        )
        result.latencies_ms = merged["latencies"]
        worst = max(merged["latencies"] or [0])
        result.duration_s = round(worst / 1000, 4)
        result.extra["all_delivered_ms"] = round(worst, 2)
        results.append(result)
        print(
            f"trial {trial}: {merged['count']} of {args.members - 1} members had it; "
            f"the last after {result.extra['all_delivered_ms']} ms"
        )
    print_table(results)
    times = [r.extra["all_delivered_ms"] for r in results]
    save(args.out, "bigroom", results, {"median_all_delivered_ms": statistics.median(times)})
    return results
