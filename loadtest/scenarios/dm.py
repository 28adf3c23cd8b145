"""dm and dmrate: private messages between pairs of friends.

    python -m loadtest dm     --pairs 50 --messages 10000 --inflight 64
    python -m loadtest dmrate --pairs 50 --rate 1000 --seconds 10

Each pair is a sender and a receiver; the pairs are spread over --processes worker
processes. Throughput is acknowledged (persisted) sends; latency is send -> push at the
receiver. Closed loop (dm): at most --inflight sends awaiting their reply. Open loop
(dmrate): --rate sends per second whatever the replies do. A pair's first message
(which creates its conversation) is a warm-up outside the measured window, reported on
its own as cold_first_dm_ms.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import time
from multiprocessing.connection import Connection
from typing import Any

from loadtest import measure, servers
from loadtest.aclient import AsyncChat, ChatError, run_async
from loadtest.generator import (
    PASSWORD,
    Collector,
    collect_parts,
    spawn,
    stamp,
    wait_for,
    wait_ready,
)
from loadtest.results import Result, merge_latencies, pcts, print_table, save

OPEN_LOOP_OUTSTANDING = 20_000
WORKER_DEADLINE_S = 120


def add_parsers(sub: Any, server: argparse.ArgumentParser, out: argparse.ArgumentParser) -> None:
    for name, run, summary in (
        ("dm", run_dm, "private messages, closed loop: persisted per second"),
        ("dmrate", run_dmrate, "private messages at a set rate: latency"),
    ):
        p = sub.add_parser(name, parents=[server, out], help=summary)
        p.add_argument("--pairs", type=int, default=50)
        if name == "dm":
            p.add_argument("--messages", type=int, default=5000)
            p.add_argument("--inflight", type=int, default=32)
        else:
            p.add_argument("--rate", type=float, default=1000, help="messages per second")
            p.add_argument("--seconds", type=float, default=10)
        p.add_argument("--processes", type=int, default=2, help="generator processes")
        p.set_defaults(run=run)


def run_dm(args: argparse.Namespace) -> list[Result]:
    return _scenario(args, "dm", args.messages, args.inflight, rate=None)


def run_dmrate(args: argparse.Namespace) -> list[Result]:
    # The window is only a safety net in open loop; the old single CLI's default is kept.
    return _scenario(args, "dmrate", int(args.rate * args.seconds), 32, rate=args.rate)


async def _pairs(port: int, pairs: list[int], collector: Collector) -> tuple[list, list]:
    """Senders dma<p> and receivers dmb<p>, logged in and friends."""
    senders, receivers = [], []
    for p in pairs:
        a, b = AsyncChat(), AsyncChat(collector.on_chat_event(p))
        await a.connect("127.0.0.1", port)
        await b.connect("127.0.0.1", port)
        await a.register_login(f"dma{p}", PASSWORD)
        await b.register_login(f"dmb{p}", PASSWORD)
        await a.call("friend.request", username=f"dmb{p}")
        with contextlib.suppress(ChatError):
            await b.call("friend.accept", username=f"dma{p}")
        senders.append(a)
        receivers.append(b)
    return senders, receivers


def _dm_worker(
    conn: Connection,
    port: int,
    pairs: list[int],
    messages: int,
    inflight: int,
    rate: float | None,
    deadline_s: float,
) -> None:
    async def run() -> None:
        collector = Collector()
        senders, receivers = await _pairs(port, pairs, collector)

        # Warm-up, outside the measured window: a pair's first message finds (or creates)
        # its conversation in the database; later ones use social's caches. Timed and
        # reported on its own (cold_first_dm_ms), all pairs of this process at once.
        async def first_message(index: int) -> float:
            t0 = time.monotonic()
            await senders[index].call("dm.send", to=f"dmb{pairs[index]}", text="warm-up")
            return (time.monotonic() - t0) * 1000

        cold = await asyncio.gather(*(first_message(i) for i in range(len(senders))))
        conn.send("ready")
        gc.collect()
        gc.freeze()
        gc.disable()  # see generator.no_gc_pauses; this process ends with the run
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        acks: list[float] = []
        errors = 0
        # Open loop (a rate): sends go out on schedule whatever the replies do; the
        # bound is only a safety net (a window would make the rate depend on latency).
        sem = asyncio.Semaphore(inflight if rate is None else OPEN_LOOP_OUTSTANDING)
        started = time.monotonic()
        tasks = []

        async def one(index: int, seq: int) -> None:
            nonlocal errors
            async with sem:
                t0 = time.monotonic()
                try:
                    await senders[index].call(
                        "dm.send", to=f"dmb{pairs[index]}", text=stamp(seq), timeout=30
                    )
                    acks.append((time.monotonic() - t0) * 1000)
                except (ChatError, TimeoutError, ConnectionError):
                    errors += 1

        end = started + deadline_s
        for seq in range(messages):
            if time.monotonic() > end:
                break
            if rate is not None:
                delay = started + seq / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(seq % len(senders), seq)))
            if rate is None and len(tasks) % 500 == 0:
                await asyncio.sleep(0)  # let the sends started so far go out
        await asyncio.gather(*tasks)
        duration = time.monotonic() - started
        await wait_for(lambda: collector.count >= len(acks), 10, 0.02)
        conn.send(
            {
                "acks": acks,
                "errors": errors,
                "duration": duration,
                "sent": len(tasks),
                "count": collector.count,
                "latencies": collector.latencies,
                "bins": collector.bins,
                "cold": cold,
            }
        )
        for c in senders + receivers:
            await c.close()

    run_async(run())


def _scenario(
    args: argparse.Namespace, name: str, messages: int, inflight: int, rate: float | None
) -> list[Result]:
    with servers.chatroom(args.db, args.set, serve_metrics=True, max_inflight_per_conn=256) as (
        stack,
        url,
    ):
        per_proc = messages // args.processes
        proc_rate = rate / args.processes if rate else None
        window = max(1, inflight // args.processes)
        pipes, procs = spawn(
            _dm_worker,
            [
                (
                    stack.port,
                    list(range(i, args.pairs, args.processes)),
                    per_proc,
                    window,
                    proc_rate,
                    WORKER_DEADLINE_S,
                )
                for i in range(args.processes)
            ],
        )
        wait_ready(pipes, 300, "dm workers")
        print(f"{name}: {args.pairs} friend pairs ready; sending {messages} messages")
        commits = measure.CommitWatch(url, stack.metrics_ports.get("social"))
        meter = measure.CpuMeter(
            measure.server_pids(stack.procs, url), measure.generator_pids(procs)
        )
        commits.start()
        meter.start()
        for pipe in pipes:
            pipe.send("go")
        parts = collect_parts(pipes, procs, 300, "dm workers")
        cpu = meter.stop()
        group_commit = commits.stop()
        # The warm-up messages are stored too; only the measured ones count.
        persisted = servers.persisted_count(url) - sum(len(p["cold"]) for p in parts)
    result = Result(
        name,
        "chatroom",
        {"pairs": args.pairs, "messages": messages, "inflight": inflight, "rate": rate},
    )
    result.sent = sum(p["sent"] for p in parts)
    result.expected = result.sent
    acks = [a for p in parts for a in p["acks"]]
    result.delivered = len(acks)
    result.errors = sum(p["errors"] for p in parts)
    result.duration_s = round(max(p["duration"] for p in parts), 3)
    merge_latencies(result, parts)
    result.extra = {
        "ack_ms": pcts(acks),
        "pushed": sum(p["count"] for p in parts),
        "persisted": persisted,
        "persisted_per_s": round(persisted / result.duration_s, 1),
        "cold_first_dm_ms": pcts([c for p in parts for c in p["cold"]]),
        "group_commit": group_commit,
    }
    # A DM is one stored message and one push: its cost per acknowledged message.
    result.add_cpu(cpu, per="message")
    print_table([result])
    print(
        f"acknowledged (persisted) sends: {result.delivered} in {result.duration_s} s = "
        f"{result.rate:,.0f}/s; ack latency {result.extra['ack_ms']}; first message of"
        f" each pair (warm-up, not measured): {result.extra['cold_first_dm_ms']}"
    )
    print(f"group commit: {_commit_line(group_commit)}")
    save(args.out, name, [result])
    return [result]


def _commit_line(watch: dict[str, Any]) -> str:
    batches = watch["batches"]
    return (
        f"{batches['count']} batches, mean {batches['mean']} messages each"
        f" ({watch.get('batches_per_s')}/s); database: {watch['db']}"
    )
