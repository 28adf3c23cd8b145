"""soak: steady open-loop load for a set time while every process's memory is sampled.

    python -m loadtest soak --connections 10000 --rooms 100 --rate 1000 --seconds 600

--connections members spread over --rooms group rooms (member i is in room i % rooms),
held by --processes generator processes; 4 sender connections post --rate messages per
second, message n going to room n % rooms. Every delivery is counted per member and
message, every send must be acknowledged (persisted), and the RSS of each service
process, MariaDB and the generator is sampled every 5 s. Memory growth is measured from
the end of the warm-up (a tenth of the run, at least 30 s) to the end.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from multiprocessing.connection import Connection
from typing import Any

from chatroom.config import Settings
from loadtest import measure, servers
from loadtest.aclient import AsyncChat, run_async
from loadtest.generator import (
    PASSWORD,
    collect_parts,
    parse_stamp,
    raise_file_limit,
    spawn,
    stamp,
    wait_for,
    wait_ready,
)
from loadtest.results import Result, merge_latencies, pcts, print_table, progress, save

SENDERS = 4
SAMPLE_EVERY_S = 5.0
PINGS_PER_IDLE_TIMEOUT = 3  # as the desktop client: a ping every third of the timeout


def room_name(index: int) -> str:
    return f"soak-{index}"


HIST_MAX_MS = 120_000  # latency histogram: 1 ms buckets, the last one "this or more"


class SoakCollector:
    """Deliveries with constant memory per delivery: one byte per (member, message of
    the member's room) to count each exactly once, and a latency histogram. (Keeping a
    tuple and a float per delivery, as the short scenarios do, grows the generator by
    gigabytes over a soak, and its garbage collections stall it long enough for the
    edge to cut its members as slow readers.)"""

    def __init__(self, members: list[int], rooms: int, total: int) -> None:
        self.rooms = rooms
        self.per_member = total // rooms + 1
        self.slot_of = {m: k * self.per_member for k, m in enumerate(members)}
        self.got = bytearray(len(members) * self.per_member)
        self.hist = [0] * (HIST_MAX_MS + 1)
        self.bins: dict[int, int] = {}
        self.count = 0
        self.duplicates = 0
        self.closed: dict[str, int] = {}  # members the server closed, by reason

    def record(self, who: int, seq: int, sent_ns: int, now_ns: int) -> None:
        slot = self.slot_of[who] + seq // self.rooms
        if self.got[slot]:
            self.duplicates += 1
            return
        self.got[slot] = 1
        self.count += 1
        self.hist[min(HIST_MAX_MS, (now_ns - sent_ns) // 1_000_000)] += 1
        bucket = now_ns // 100_000_000
        self.bins[bucket] = self.bins.get(bucket, 0) + 1


def latency_sample(hist: list[int], most: int = 200_000) -> list[float]:
    """A list of latencies (ms) with the histogram's distribution, at most ~`most` long:
    what Result's percentiles and the plot need, without one float per delivery."""
    total = sum(hist)
    scale = max(1, total // most)
    return [float(ms) for ms, n in enumerate(hist) for _ in range(n // scale)]


def _member_main(conn: Connection, port: int, members: list[int], rooms: int, total: int) -> None:
    """One generator process: its members log in, join their rooms, count deliveries."""

    async def run() -> None:
        collector = SoakCollector(members, rooms, total)
        clients: list[AsyncChat] = []
        sem = asyncio.Semaphore(100)

        async def join(i: int) -> None:
            def on_event(event: dict, now: int, who: int = i) -> None:
                if event.get("event") == "closing":
                    code = event.get("code", "?")
                    collector.closed[code] = collector.closed.get(code, 0) + 1
                if event.get("event") == "message":
                    parsed = parse_stamp(event["text"])
                    if parsed:
                        collector.record(who, parsed[0], parsed[1], now)

            async with sem:
                c = AsyncChat(on_event)
                await c.connect("127.0.0.1", port)
                await c.register_login(f"k{i}", PASSWORD)
                await c.call("room.join", room=room_name(i % rooms), timeout=60)
                clients.append(c)

        # Started before the members join: the set-up of 10,000 takes longer than the
        # idle timeout, and the first ones in must not be closed while the rest join.
        keepalive = asyncio.create_task(_keep_alive(clients))
        await asyncio.gather(*(join(i) for i in members))
        gc.freeze()  # the set-up's objects live to the end: keep them out of collections
        conn.send("ready")
        loop = asyncio.get_running_loop()
        sent = await loop.run_in_executor(None, conn.recv)  # messages sent, at the end
        expected = sum(len(range(i % rooms, sent, rooms)) for i in members)
        await wait_for(lambda: collector.count >= expected, 60, 0.05)
        conn.send(
            {
                "count": collector.count,
                "expected": expected,
                "hist": collector.hist,
                "bins": collector.bins,
                "duplicates": collector.duplicates,
                "connected": sum(1 for c in clients if not c.closed),
                "closed_by_server": collector.closed,
            }
        )
        keepalive.cancel()
        for c in clients:
            await c.close()

    raise_file_limit()
    run_async(run())


async def _keep_alive(clients: list[AsyncChat]) -> None:
    """Like the desktop client, each member pings every third of the idle timeout its
    login reply announced: the edge closes connections that send nothing for that long,
    even if they receive. `clients` grows while members join; each is due one period
    after it is first seen. Checked against the clock once a second, not with a sleep
    per client: on a loop busy with deliveries each short sleep overran, a round over
    5,000 clients took longer than the edge's idle timeout, and the edge rightly closed
    members that had not pinged (a first 1,000 msg/s soak lost most of its members that
    way)."""
    next_ping: dict[AsyncChat, float] = {}
    while True:
        await asyncio.sleep(1.0)
        now = time.monotonic()
        for c in clients:
            every_s = c.idle_timeout_s / PINGS_PER_IDLE_TIMEOUT
            if now >= next_ping.setdefault(c, now + every_s) and not c.closed:
                c.send_nowait("ping")
                next_ping[c] = now + every_s


def _merged_counts(counts: Any) -> dict[str, int]:
    merged: dict[str, int] = {}
    for part in counts:
        for key, n in part.items():
            merged[key] = merged.get(key, 0) + n
    return merged


def add_parsers(sub: Any, server: argparse.ArgumentParser, out: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "soak",
        parents=[server, out],
        help="steady open-loop load into rooms while every process's memory is sampled",
    )
    p.add_argument("--connections", type=int, default=10_000, help="members")
    p.add_argument("--rooms", type=int, default=100)
    p.add_argument("--rate", type=float, default=1000, help="messages per second")
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--processes", type=int, default=2, help="generator processes")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> list[Result]:
    raise_file_limit()
    members = args.connections
    total = int(args.rate * args.seconds)
    # The production idle timeout: the members ping (see _keep_alive).
    with servers.chatroom(
        args.db, args.set, max_inflight_per_conn=256, idle_timeout_s=Settings.idle_timeout_s
    ) as (stack, url):
        run_async(_create_rooms(stack.port, args.rooms))
        pipes, procs = spawn(
            _member_main,
            [
                (stack.port, list(range(p, members, args.processes)), args.rooms, total)
                for p in range(args.processes)
            ],
        )
        setup = time.monotonic()
        wait_ready(pipes, 900, "soak members")
        print(
            f"soak: {members} members in {args.rooms} rooms ready in "
            f"{time.monotonic() - setup:.0f} s"
        )
        pids = measure.stack_pids(stack.procs, procs, url)
        result = run_async(_send(stack.port, args, pids))
        for pipe in pipes:
            pipe.send(result.sent)
        parts = collect_parts(pipes, procs, 180, "soak members")
        persisted = servers.persisted_count(url)
    result.expected = sum(p["expected"] for p in parts)
    result.delivered = sum(p["count"] for p in parts)
    hist = [sum(col) for col in zip(*(p["hist"] for p in parts), strict=True)]
    samples = [latency_sample(hist)] + [[] for _ in parts[1:]]
    merge_latencies(
        result, [{"latencies": x, "bins": p["bins"]} for x, p in zip(samples, parts, strict=True)]
    )
    result.extra.update(
        persisted=persisted,
        duplicates=sum(p["duplicates"] for p in parts),
        members_connected_at_end=sum(p["connected"] for p in parts),
        members_closed_by_server=_merged_counts(p["closed_by_server"] for p in parts),
        deliveries_per_s=round(result.delivered / result.duration_s, 1),
    )
    print_table([result])
    growth = result.extra["memory_growth_pct"]
    print("memory growth after warm-up (%):", growth)
    print(f"acknowledged {result.extra['acked']} of {result.sent}; persisted {persisted}")
    print(
        f"members connected at the end: {result.extra['members_connected_at_end']};"
        f" closed by the server: {result.extra['members_closed_by_server'] or 'none'}"
    )
    save(args.out, "soak", [result])
    return [result]


async def _create_rooms(port: int, rooms: int) -> None:
    owner = AsyncChat()
    await owner.connect("127.0.0.1", port)
    await owner.register_login("soak-owner", PASSWORD)
    for r in range(rooms):
        await owner.call("room.create", room=room_name(r))
    await owner.close()


async def _send(port: int, args: argparse.Namespace, pids: dict[str, int]) -> Result:
    senders = []
    for s in range(SENDERS):
        c = AsyncChat()
        await c.connect("127.0.0.1", port)
        await c.register_login(f"soaker{s}", PASSWORD)
        for r in range(args.rooms):
            await c.call("room.join", room=room_name(r))
        senders.append(c)
    result = Result(
        "soak",
        "chatroom",
        {
            "connections": args.connections,
            "rooms": args.rooms,
            "rate": args.rate,
            "seconds": args.seconds,
        },
    )
    acks: list[float] = []
    errors = 0
    samples: list[dict[str, Any]] = []
    pending: set[asyncio.Future] = set()
    started = time.monotonic()
    next_sample = started
    total = int(args.rate * args.seconds)
    for seq in range(total):
        now = time.monotonic()
        if now >= next_sample:
            samples.append(measure.snapshot(pids, now - started))
            next_sample += SAMPLE_EVERY_S
        delay = started + seq / args.rate - now
        if delay > 0:
            await asyncio.sleep(delay)
        sent_at = time.monotonic()
        fut = senders[seq % SENDERS].send_nowait(
            "room.send", room=room_name(seq % args.rooms), text=stamp(seq)
        )

        def acked(f: asyncio.Future, t0: float = sent_at) -> None:
            nonlocal errors
            pending.discard(f)
            if not f.cancelled() and f.exception() is None and f.result().get("ok"):
                acks.append((time.monotonic() - t0) * 1000)
            else:
                errors += 1

        fut.add_done_callback(acked)
        pending.add(fut)
        result.sent += 1
        if seq % 1000 == 0:
            progress("soak sending", seq, total, started)
    progress("soak sending", total, total, started)
    if pending:
        await asyncio.wait(set(pending), timeout=60)
    samples.append(measure.snapshot(pids, time.monotonic() - started))
    result.duration_s = round(time.monotonic() - started, 3)
    result.errors = errors
    warm = max(30.0, args.seconds / 10)
    base = next((s for s in samples if s["t"] >= warm), samples[0])
    last = samples[-1]
    result.extra.update(
        acked=len(acks),
        ack_ms=pcts(acks),
        memory_samples_kib=samples,
        memory_growth_pct={
            n: round((last[n] - base[n]) * 100 / base[n], 1)
            for n in pids
            if base.get(n) and last.get(n)
        },
        memory_base_t_s=base["t"],
    )
    for c in senders:
        await c.close()
    return result
