"""idle: N different users logged in on N idle connections; edge memory per connection.

    python -m loadtest idle --connections 10000
    python -m loadtest idle --connections 50000 --set edge_workers=3
    python -m loadtest idle --connections 20000 --target compose   # a running stack
    python -m loadtest idle --connections 100000 --hosts 3          # as root

With --hosts N the stack is a cluster of N network-namespace hosts (chatroom/hosts.py),
each with its own edge (on its own address: ports of its own), the users spread evenly
over them, and each edge's memory is reported (issue #18: 100,000 logged-in connections
held across three edge hosts). Each host's edge forks a worker per 15,000 of its
connections, as one process may hold 20,000 files.

With --target (loadtest/target.py) no stack is started: the users connect to that one,
and the edge's memory is read from its container (its processes' RSS and its cgroup).

Worker processes of at most 15,000 connections each (one process may hold 20,000
files), each connecting from its own loopback address (ephemeral ports per address).
A user whose connection or login fails in the storm tries again on a new connection,
as the desktop client does; told to come back later (auth's sign-in queue is full) it
waits the time the server names; the retried attempts are counted.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from chatroom.hosts import EDGE_PORT, Cluster
from loadtest import measure, plots, results, servers, target
from loadtest.aclient import AsyncChat, ChatError, run_async
from loadtest.generator import PASSWORD, raise_file_limit, spawn
from loadtest.results import Result, print_table, save
from loadtest.target import Target

ATTEMPTS = 4  # failed attempts per user; "rate_limited, retry after" is not one
USER_DEADLINE_S = 180  # from its first attempt: a user still not in by then has failed
IN_FLIGHT = 600  # sign-ins under way at once, over all worker processes
PER_PROCESS = 15_000  # below the 20,000 open files one process may hold
SETTLE_S = 2  # after the last login, before the edge's memory is read


def add_parsers(sub: Any, server: argparse.ArgumentParser, out: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "idle",
        parents=[server, out],
        help="N users logged in on idle connections: edge memory per connection",
    )
    p.add_argument("--connections", type=int, default=10_000)
    p.add_argument(
        "--hold", type=float, default=10, help="seconds the idle connections' CPU is measured"
    )
    p.add_argument(
        "--in-flight",
        type=int,
        default=IN_FLIGHT,
        help="sign-ins under way at once, in total (shared out over the worker processes): "
        "more than auth can check within the request timeout only turns into retries",
    )
    p.add_argument(
        "--hosts",
        type=int,
        default=0,
        help="spread the users over a cluster of this many network-namespace hosts "
        "(needs root); default: one stack on this machine",
    )
    target.add_arguments(p)
    p.set_defaults(run=run)


def _add_counts(into: dict[str, int], counts: dict[str, int]) -> None:
    for reason, n in counts.items():
        into[reason] = into.get(reason, 0) + n


def _idle_worker(
    conn: Connection,
    host: str,
    port: int,
    first: int,
    count: int,
    source: str | None,
    in_flight: int,
) -> None:
    """Users idle<first>..: each registers, logs in on its own connection and stays;
    at most `in_flight` of them signing in at once."""

    async def run() -> None:
        clients = []
        sem = asyncio.Semaphore(in_flight)
        retried: dict[str, int] = {}

        async def one(n: int) -> None:
            attempt = 0
            deadline = None  # counted from the first attempt, not from the queue
            while True:
                async with sem:
                    deadline = deadline or time.monotonic() + USER_DEADLINE_S
                    c = AsyncChat()
                    try:
                        await c.connect(host, port, source=source)
                        await c.register_login(f"idle{n}", PASSWORD, timeout=120)
                        clients.append(c)
                        return
                    except (ChatError, OSError, TimeoutError) as exc:
                        await c.close()
                        reason = getattr(exc, "code", None) or type(exc).__name__
                        retried[reason] = retried.get(reason, 0) + 1
                        # "Later", as auth says when too many sign-ins are being
                        # checked: not a failure, as for the desktop client.
                        later = getattr(exc, "retry_after_ms", None)
                        attempt += later is None
                        if attempt == ATTEMPTS or time.monotonic() > deadline:
                            raise
                # Backing off, spread so that the refused do not all come back at once.
                pause = later / 1000 if later is not None else attempt
                await asyncio.sleep(pause * random.uniform(1, 2))

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
    if args.hosts:
        return _on_hosts(args)
    if args.target:
        stack = target.resolve(args.target, args.edge_container)
        results.note(target=stack.describe(), database=stack.database())
        return _measure(args, stack)
    # Held without a ping: an idle timeout far beyond the run (as for every scenario).
    with servers.chatroom(
        args.db, args.set, idle_timeout_s=servers.QUIET_CLIENTS_IDLE_TIMEOUT_S
    ) as (local, url):
        edge_pid = local.procs["edge#0"].pid
        pids = measure.server_pids(local.procs, url)
        return _measure(args, Target("127.0.0.1", local.port), edge_pid, pids)


def _edge_memory(stack: Target, edge_pid: int | None) -> dict[str, Any]:
    """The edge's processes' RSS (the local edge's tree, or the container's), and with
    a container its cgroup's charges and each process's open files."""
    if edge_pid is not None:
        return {"edge_rss_kib": measure.process_tree_rss_kib(edge_pid)}
    return stack.memory()


def _per_connection(before: dict[str, Any], after: dict[str, Any], held: int) -> dict[str, float]:
    """KiB per held connection of every memory figure measured before and after."""
    pairs = {"edge_rss": (before["edge_rss_kib"], after["edge_rss_kib"])}
    for key, value in after.get("cgroup_kib", {}).items():
        pairs[f"cgroup_{key}"] = (before["cgroup_kib"].get(key, 0), value)
    return {k: round((b - a) / max(held, 1), 2) for k, (a, b) in pairs.items()}


@dataclass
class Held:
    """Users logged in by worker processes and held until `release`."""

    pipes: list[Connection]
    procs: list[Any]
    connected: list[int]  # per worker
    failures: dict[str, int]
    retries: dict[str, int]
    elapsed_s: float

    def release(self) -> None:
        for pipe in self.pipes:
            pipe.send("stop")
        for proc in self.procs:
            proc.join(30)


def _log_in(work: list[tuple[str, int, int, int, str | None]], in_flight: int) -> Held:
    """One worker per (edge host, port, first user, users, source address), the
    sign-ins in flight shared out among them; returns once each has reported (its
    users in, or given up)."""
    started = time.monotonic()
    per_worker = max(1, in_flight // len(work))
    pipes, procs = spawn(_idle_worker, [(*w, per_worker) for w in work])
    held = Held(pipes, procs, [], {}, {}, 0.0)
    # Generous: 20 sign-ins a second at the least, and a user's own deadline after.
    deadline = time.monotonic() + sum(w[3] for w in work) / 20 + USER_DEADLINE_S
    for pipe in pipes:
        ok = 0
        if pipe.poll(max(0.0, deadline - time.monotonic())):
            ok, reasons, retried = pipe.recv()
            _add_counts(held.failures, reasons)
            _add_counts(held.retries, retried)
        held.connected.append(ok)
    held.elapsed_s = time.monotonic() - started
    return held


def _measure(
    args: argparse.Namespace,
    stack: Target,
    edge_pid: int | None = None,
    server_pids: dict[str, int] | None = None,
) -> list[Result]:
    """Log the users in, read the edge's memory, and (with a local stack's `server_pids`)
    what holding them idle costs each server process in CPU for --hold seconds."""
    before_mem = _edge_memory(stack, edge_pid)
    shares = [
        (first, min(PER_PROCESS, args.connections - first))
        for first in range(0, args.connections, PER_PROCESS)
    ]
    sources = stack.sources(len(shares))
    held = _log_in(
        [
            (stack.host, stack.port, first, n, sources[index])
            for index, (first, n) in enumerate(shares)
        ],
        args.in_flight,
    )
    connected, failures, retries = sum(held.connected), held.failures, held.retries
    elapsed = held.elapsed_s
    time.sleep(SETTLE_S)  # let the edge's last allocations show in its RSS
    after_mem = _edge_memory(stack, edge_pid)
    idle_cpu = None
    if server_pids and connected:
        meter = measure.CpuMeter(server_pids, measure.generator_pids(held.procs))
        meter.start()
        time.sleep(args.hold)  # the measured window: nothing happens but being held
        idle_cpu = meter.stop()
    held.release()
    per_conn = _per_connection(before_mem, after_mem, connected)
    before, after = before_mem["edge_rss_kib"], after_mem["edge_rss_kib"]
    result = Result(
        "idle",
        "chatroom",
        {"connections": args.connections, "target": args.target},
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
            "edge_kib_per_connection": per_conn["edge_rss"],
            "kib_per_connection": per_conn,
            "edge_before": before_mem,
            "edge_after": after_mem,
        },
    )
    if idle_cpu is not None:
        seconds = connected * idle_cpu["wall_s"]
        result.add_cpu(idle_cpu, per="idle connection-second", units=round(seconds))
    print_table([result])
    print(
        f"{connected} logged-in idle connections; edge RSS {before} -> {after} KiB = "
        f"{per_conn['edge_rss']:.2f} KiB per connection; failed attempts retried: {retries or 0}"
    )
    if "cgroup_kib" in after_mem:
        print(
            f"container cgroup {before_mem['cgroup_kib']} -> {after_mem['cgroup_kib']} KiB;"
            f" per connection: {per_conn}; edge processes (open files each):"
            f" {[p['open_files'] for p in after_mem['processes']]}"
        )
    save(args.out, "idle", [result])
    if "cgroup_kib" in after_mem:
        plots.bars(
            args.out / "idle-memory.png",
            f"idle: {connected:,} connections held by the edge container, KiB each",
            [k.replace("_", " ") for k in per_conn],
            {"KiB per connection": list(per_conn.values())},
            fmt="%.2f",
        )
    return [result]


def _on_hosts(args: argparse.Namespace) -> list[Result]:
    """--hosts N: a fresh cluster, the users spread over its edges; memory per host."""
    raise_file_limit()  # the hosts' processes inherit it
    per_host = -(-args.connections // args.hosts)
    settings = {
        "edge_workers": -(-per_host // PER_PROCESS),
        **servers.cluster_settings(args.set),
    }
    with servers.cluster(args.hosts, settings) as cluster:
        return _measure_hosts(args, cluster, per_host, settings["edge_workers"])


def _measure_hosts(
    args: argparse.Namespace, cluster: Cluster, per_host: int, edge_workers: object
) -> list[Result]:
    edges = {host.name: host.procs["edge"].pid for host in cluster.hosts}
    before = {name: measure.process_tree_rss_kib(pid) for name, pid in edges.items()}
    work: list[tuple[str, int, int, int]] = []  # (host, port, first user, users)
    host_of_worker: list[str] = []
    for index, host in enumerate(cluster.hosts):
        end = min((index + 1) * per_host, args.connections)
        for first in range(index * per_host, end, PER_PROCESS):
            work.append((host.ip, EDGE_PORT, first, min(PER_PROCESS, end - first)))
            host_of_worker.append(host.name)
    # Each worker binds to an address of its own on the bridge: ~28,000 ports each.
    sources = cluster.client_addresses(len(work))
    held = _log_in([(*w, sources[i % len(sources)]) for i, w in enumerate(work)], args.in_flight)
    time.sleep(SETTLE_S)  # let the edges' last allocations show in their RSS
    after = {name: measure.process_tree_rss_kib(pid) for name, pid in edges.items()}
    held.release()
    per_host_report: dict[str, dict[str, Any]] = {}
    for name in edges:
        connected = sum(n for n, h in zip(held.connected, host_of_worker, strict=True) if h == name)
        per_host_report[name] = {
            "connections": connected,
            "edge_rss_before_kib": before[name],
            "edge_rss_after_kib": after[name],
            "edge_kib_per_connection": round((after[name] - before[name]) / max(connected, 1), 2),
        }
    connected = sum(held.connected)
    result = Result(
        "idle",
        "chatroom",
        {
            "connections": args.connections,
            "hosts": args.hosts,
            "edge_workers": edge_workers,
            "in_flight": args.in_flight,
        },
        sent=args.connections,
        expected=args.connections,
        delivered=connected,
        errors=sum(held.failures.values()),
        duration_s=round(held.elapsed_s, 2),
        extra={
            "failed_logins": held.failures,
            "retried_attempts": held.retries,
            "per_host": per_host_report,
            "edge_kib_per_connection": round(
                sum(after[n] - before[n] for n in edges) / max(connected, 1), 2
            ),
        },
    )
    print_table([result])
    for name, figures in per_host_report.items():
        print(
            f"{name}: {figures['connections']} connections held; edge RSS "
            f"{figures['edge_rss_before_kib']} -> {figures['edge_rss_after_kib']} KiB = "
            f"{figures['edge_kib_per_connection']:.2f} KiB per connection"
        )
    print(
        f"{connected} of {args.connections} logged-in idle connections over {args.hosts} "
        f"hosts in {held.elapsed_s:.0f} s; failed attempts retried: {held.retries or 0}"
    )
    save(args.out, f"idle-hosts{args.hosts}", [result])
    return [result]
