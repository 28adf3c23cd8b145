"""bigroom: one message to a room of N members; time until every member has it.

    python -m loadtest bigroom --members 1000 --trials 3
    python -m loadtest bigroom --members 1000 --trials 3 --hosts 3   # as root

Each trial runs on a fresh stack, so one trial's thousand logouts do not load the next.
With `--hosts N` the stack is a cluster of N network-namespace hosts on this machine
(chatroom/hosts.py: each host an edge, the services and a bus, every process connected
to every bus; one MariaDB beside them), the members spread evenly over the N edges and
the sender on the first: the fan-out crosses hosts (issue #18: time-to-all for 1,000
members whose room spans three edges).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
from collections.abc import Iterator
from typing import Any

from chatroom.hosts import EDGE_PORT
from loadtest import servers
from loadtest.aclient import run_async
from loadtest.generator import LOCAL, ReceiverPool, connect_sender, stamp
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
    p.add_argument(
        "--hosts",
        type=int,
        default=0,
        help="run on a cluster of this many network-namespace hosts (needs root); "
        "default: one stack on this machine",
    )
    p.set_defaults(run=run)


async def _send_one(seq: int, port: int, host: str) -> None:
    sender = await connect_sender("chatroom", port, "big-sender", host=host)
    await asyncio.sleep(0.5)  # the receivers' "go" has arrived
    await sender.call("room.send", room="lobby", text=stamp(seq))
    await sender.close()


@contextlib.contextmanager
def _stack(args: argparse.Namespace) -> Iterator[tuple[int, tuple[str, ...]]]:
    """A fresh stack: the edges' port and addresses."""
    if not args.hosts:
        with servers.chatroom(args.db, args.set) as (stack, _url):
            yield stack.port, LOCAL
        return
    with servers.cluster(args.hosts, servers.cluster_settings(args.set)) as cluster:
        yield EDGE_PORT, tuple(host.ip for host in cluster.hosts)


def run(args: argparse.Namespace) -> list[Result]:
    results = []
    for trial in range(args.trials):
        with _stack(args) as (port, hosts):
            pool = ReceiverPool(
                "chatroom",
                port,
                args.members - 1,
                1,
                args.processes,
                deadline_s=30,
                hosts=hosts,
            )
            pool.wait_ready()
            pool.go()
            run_async(_send_one(trial, port, hosts[0]))
            merged = pool.collect(timeout=60)
        result = Result(
            "bigroom",
            "chatroom",
            {"members": args.members, "trial": trial, "hosts": args.hosts},
            sent=1,
            expected=args.members - 1,
            delivered=merged["count"],
        )
        result.latencies_ms = merged["latencies"]
        worst = max(merged["latencies"] or [0])
        result.duration_s = round(worst / 1000, 4)
        result.extra["all_delivered_ms"] = round(worst, 2)
        result.extra["members_per_edge"] = dict(pool.per_host)
        result.extra["duplicates"] = merged["duplicates"]
        results.append(result)
        where = f" over {len(hosts)} hosts' edges" if args.hosts else ""
        print(
            f"trial {trial}: {merged['count']} of {args.members - 1} members{where} had it; "
            f"the last after {result.extra['all_delivered_ms']} ms"
        )
    print_table(results)
    times = [r.extra["all_delivered_ms"] for r in results]
    name = f"bigroom-hosts{args.hosts}" if args.hosts else "bigroom"
    save(args.out, name, results, {"median_all_delivered_ms": statistics.median(times)})
    return results
