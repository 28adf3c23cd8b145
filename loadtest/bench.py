"""ChatRoom load generator and benchmarks.

    .venv/bin/python -m loadtest.bench fanout  --members 100 --messages 5000 --inflight 32
    .venv/bin/python -m loadtest.bench openloop --members 100 --rate 1000 --seconds 10
    .venv/bin/python -m loadtest.bench bigroom --members 1000
    .venv/bin/python -m loadtest.bench dm --pairs 50 --messages 20000 --inflight 64
    .venv/bin/python -m loadtest.bench dmrate --pairs 50 --rate 1000 --seconds 10
    .venv/bin/python -m loadtest.bench login --users 200
    .venv/bin/python -m loadtest.bench resume --users 10000
    .venv/bin/python -m loadtest.bench idle --connections 10000
    .venv/bin/python -m loadtest.bench ceiling
    .venv/bin/python -m loadtest.bench presence --users 400 --friends 5 --rounds 10
    .venv/bin/python -m loadtest.bench avatars --users 200 --friends 5 --rounds 5
    .venv/bin/python -m loadtest.bench avatarbomb --users 4 --rounds 3 --db sqlite
    .venv/bin/python -m loadtest.bench soak --connections 10000 --rate 1000 --seconds 600
    .venv/bin/python -m loadtest.bench prelogin --connections 10000 --seconds 12

Every run starts fresh servers on 127.0.0.1 (ours on MariaDB; ngIRCd where the scenario
compares), prints progress and a summary table, writes loadtest/results/<scenario>.json
and a plot next to it. Every loop is bounded in count and in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import multiprocessing as mp
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadtest import servers
from loadtest.aclient import AsyncChat, AsyncIrc, ChatError, run_async

RESULTS = Path(__file__).resolve().parent / "results"
PASSWORD = "bench-password"
CHANNEL = "#bench"
PAYLOAD_BYTES = 32


# ----------------------------------------------------------------------------- results


@dataclass
class Result:
    scenario: str
    system: str
    params: dict[str, Any]
    sent: int = 0
    expected: int = 0  # deliveries (or operations) that should happen
    delivered: int = 0
    errors: int = 0
    duration_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    timeline: list[int] = field(default_factory=list)  # completions per 100 ms
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return self.expected - self.delivered

    @property
    def rate(self) -> float:
        return self.delivered / self.duration_s if self.duration_s else 0.0

    def percentiles(self) -> dict[str, float]:
        lat = sorted(self.latencies_ms)
        if not lat:
            return {}

        def pick(q: float) -> float:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))], 2)

        return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": round(lat[-1], 2)}

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("latencies_ms")
        data.update(lost=self.lost, rate_per_s=round(self.rate, 1), **self.percentiles())
        return data


def progress(label: str, done: int, total: int, started: float) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    rate = done / max(time.monotonic() - started, 1e-9)
    sys.stderr.write(
        f"\r{label:<28} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {rate:,.0f}/s "
    )
    sys.stderr.flush()
    if done >= total:
        sys.stderr.write("\n")


TABLE_COLUMNS = [
    "system",
    "sent",
    "expected",
    "delivered",
    "lost",
    "errors",
    "duration_s",
    "rate_per_s",
    "p50",
    "p90",
    "p99",
    "max",
]


def print_table(results: list[Result]) -> None:
    cols = TABLE_COLUMNS
    rows = [[str(r.summary().get(c, "")) for c in cols] for r in results]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def save(name: str, results: list[Result], notes: dict[str, Any] | None = None) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    commit = os.popen("git rev-parse --short HEAD 2>/dev/null").read().strip()
    doc = {
        "scenario": name,
        "commit": commit,
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cores": os.cpu_count()},
        "results": [r.summary() for r in results],
        **(notes or {}),
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    plot(name, results)
    print(f"results: {path}")
    return path


def plot(name: str, results: list[Result]) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed: no plot")
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for r in results:
        if r.latencies_ms:
            lat = sorted(r.latencies_ms)
            ys = [i / len(lat) for i in range(len(lat))]
            left.plot(lat, ys, label=f"{r.system} (p99 {r.percentiles()['p99']} ms)")
        if r.timeline:
            # 100 ms bins; runs longer than a minute are drawn per second (readable).
            per = 10 if len(r.timeline) > 600 else 1
            bins = [sum(r.timeline[i : i + per]) for i in range(0, len(r.timeline), per)]
            right.plot(
                [i * per / 10 for i in range(len(bins))],
                [c * 10 / per for c in bins],
                label=r.system,
            )
    left.set_xscale("log")
    left.set_xlabel("latency (ms, log)")
    left.set_ylabel("fraction ≤ x")
    left.set_title(f"{name}: latency CDF")
    left.grid(True, alpha=0.3)
    right.set_xlabel("seconds")
    right.set_ylabel("completions / s")
    right.set_title(f"{name}: throughput over time")
    right.grid(True, alpha=0.3)
    for axis in (left, right):
        if axis.lines:
            axis.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / f"{name}.png", dpi=90)
    plt.close(fig)


# ----------------------------------------------------------------------------- receivers


def stamp(seq: int) -> str:
    text = f"{seq:06d} {time.monotonic_ns()} "
    return text + "x" * max(0, PAYLOAD_BYTES - len(text))


def parse_stamp(text: str) -> tuple[int, int] | None:
    parts = text.split(" ", 2)
    if len(parts) < 2 or not parts[0].isdigit() or not parts[1].isdigit():
        return None
    return int(parts[0]), int(parts[1])


class Collector:
    """Latency samples and completions per 100 ms, for one process."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.bins: dict[int, int] = {}
        self.count = 0
        self.seen: set[tuple[int, int]] = set()
        self.duplicates = 0

    def record(self, who: int, seq: int, sent_ns: int, now_ns: int) -> None:
        if (who, seq) in self.seen:
            self.duplicates += 1
            return
        self.seen.add((who, seq))
        self.count += 1
        self.latencies.append((now_ns - sent_ns) / 1e6)
        bucket = now_ns // 100_000_000
        self.bins[bucket] = self.bins.get(bucket, 0) + 1


@contextlib.contextmanager
def no_gc_pauses():
    """The generator's own garbage collections must not show up as server latency: with
    a million samples in memory a full collection stalls a receiving process for ~100 ms
    (measured), and every client in it reads late. So the measured window runs with the
    collector off (the data kept is acyclic, so nothing leaks) and what existed before
    is frozen out of later collections."""
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.unfreeze()


async def _connect_members(
    system: str, port: int, names: list[str], collector: Collector, room: str
) -> list[Any]:
    clients: list[Any] = []
    for index, name in enumerate(names):
        if system == "chatroom":

            def on_event(event: dict, now: int, who: int = index) -> None:
                if event.get("event") == "message":
                    parsed = parse_stamp(event["text"])
                    if parsed:
                        collector.record(who, parsed[0], parsed[1], now)

            client = AsyncChat(on_event)
            await client.connect("127.0.0.1", port)
            await client.register_login(name, PASSWORD)
            if room != "lobby":
                await client.call("room.join", room=room)
        else:

            def on_message(text: str, now: int, who: int = index) -> None:
                parsed = parse_stamp(text)
                if parsed:
                    collector.record(who, parsed[0], parsed[1], now)

            client = AsyncIrc(name, on_message)
            await client.connect("127.0.0.1", port)
            await client.join(CHANNEL)
        clients.append(client)
    return clients


def _receiver_main(
    conn: Any, system: str, port: int, names: list[str], expected: int, room: str, deadline_s: float
) -> None:
    async def run() -> None:
        collector = Collector()
        clients = await _connect_members(system, port, names, collector, room)
        conn.send("ready")
        loop = asyncio.get_running_loop()
        with no_gc_pauses():
            await loop.run_in_executor(None, conn.recv)  # "go"
            end = time.monotonic() + deadline_s
            while collector.count < expected and time.monotonic() < end:
                await asyncio.sleep(0.02)
        conn.send(
            {
                "count": collector.count,
                "latencies": collector.latencies,
                "bins": collector.bins,
                "duplicates": collector.duplicates,
            }
        )
        for client in clients:
            await client.close()

    run_async(run())


class ReceiverPool:
    """Members spread over several processes so the generator is not the bottleneck."""

    def __init__(
        self,
        system: str,
        port: int,
        members: int,
        messages: int,
        processes: int,
        room: str = "lobby",
        deadline_s: float = 120,
        prefix: str = "r",
    ) -> None:
        self.pipes = []
        self.procs = []
        ctx = mp.get_context("fork")
        share = [list(range(i, members, processes)) for i in range(processes)]
        for ids in share:
            if not ids:
                continue
            names = [f"{prefix}{n}" for n in ids]
            parent, child = ctx.Pipe()
            proc = ctx.Process(
                target=_receiver_main,
                args=(child, system, port, names, len(names) * messages, room, deadline_s),
                daemon=True,
            )
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)

    def wait_ready(self, timeout: float = 300) -> None:
        for pipe in self.pipes:
            if not pipe.poll(timeout):
                raise TimeoutError("receivers did not connect in time")
            assert pipe.recv() == "ready"

    def go(self) -> None:
        for pipe in self.pipes:
            pipe.send("go")

    def collect(self, timeout: float) -> dict[str, Any]:
        merged: dict[str, Any] = {"count": 0, "latencies": [], "bins": {}, "duplicates": 0}
        for pipe in self.pipes:
            if not pipe.poll(timeout):
                raise TimeoutError("receivers did not report in time")
            part = pipe.recv()
            merged["count"] += part["count"]
            merged["latencies"].extend(part["latencies"])
            merged["duplicates"] += part["duplicates"]
            for bucket, n in part["bins"].items():
                merged["bins"][bucket] = merged["bins"].get(bucket, 0) + n
        for proc in self.procs:
            proc.join(timeout=10)
        return merged


def collect_parts(pipes: list[Any], procs: list[Any], timeout: float, who: str) -> list[Any]:
    """Each worker process's report, then the workers joined."""
    parts = []
    for pipe in pipes:
        if not pipe.poll(timeout):
            raise TimeoutError(f"{who} did not report within {timeout:g} s")
        parts.append(pipe.recv())
    for proc in procs:
        proc.join(10)
    return parts


def merge_latencies(result: Result, parts: list[dict[str, Any]]) -> None:
    """The workers' latency samples and completions per 100 ms, into one result."""
    result.latencies_ms = [x for p in parts for x in p["latencies"]]
    bins: dict[int, int] = {}
    for p in parts:
        for b, n in p["bins"].items():
            bins[b] = bins.get(b, 0) + n
    result.timeline = timeline_of(bins)


def timeline_of(bins: dict[int, int]) -> list[int]:
    if not bins:
        return []
    first, last = min(bins), max(bins)
    return [bins.get(b, 0) for b in range(first, last + 1)]


# ----------------------------------------------------------------------------- fan-out


async def _sender(system: str, port: int, name: str) -> Any:
    if system == "chatroom":
        client = AsyncChat()
        await client.connect("127.0.0.1", port)
        await client.register_login(name, PASSWORD)
        return client
    client = AsyncIrc(name)
    await client.connect("127.0.0.1", port)
    await client.join(CHANNEL)
    return client


async def _probe(system: str, port: int, name: str, on_seq: Any) -> Any:
    """A member in the generator's own process: the sender's flow control watches it."""
    collector = Collector()
    original = collector.record

    def record(who: int, seq: int, sent: int, now: int) -> None:
        original(who, seq, sent, now)
        on_seq(seq)

    collector.record = record  # type: ignore[method-assign]
    clients = await _connect_members(system, port, [name], collector, "lobby")
    return clients[0], collector


def fanout_once(
    system: str,
    port: int,
    members: int,
    messages: int,
    inflight: int,
    rate: float | None,
    processes: int,
    label: str,
) -> Result:
    """members-1 receivers over `processes` processes, 1 probe, 1 sender. Closed loop:
    at most `inflight` messages sent but not yet seen by the probe. Open loop: `rate`
    messages per second regardless."""
    receivers = members - 2
    pool = ReceiverPool(system, port, receivers, messages, processes)
    pool.wait_ready()
    result = Result(
        "fanout" if rate is None else "openloop",
        system,
        {
            "members": members,
            "messages": messages,
            "inflight": inflight,
            "rate": rate,
            "payload_bytes": PAYLOAD_BYTES,
        },
    )

    async def run() -> None:
        probe_seen = asyncio.Event()
        state = {"probe": 0}

        def on_seq(_seq: int) -> None:
            state["probe"] += 1
            probe_seen.set()

        sender = await _sender(system, port, "sender0")
        probe, probe_collector = await _probe(system, port, "probe0", on_seq)
        acks: list[float] = []
        errors = 0
        pool.go()
        await asyncio.sleep(0.2)
        started = time.monotonic()
        pending: set[asyncio.Future] = set()
        for seq in range(messages):
            if rate is None:
                while seq - state["probe"] >= inflight:
                    probe_seen.clear()
                    try:
                        await asyncio.wait_for(probe_seen.wait(), 10)
                    except TimeoutError:
                        break
            else:
                target = started + seq / rate
                delay = target - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            text = stamp(seq)
            if system == "chatroom":
                sent_at = time.monotonic()
                fut = sender.send_nowait("room.send", room="lobby", text=text)

                def acked(f: asyncio.Future, t0: float = sent_at) -> None:
                    nonlocal errors
                    if f.exception() is None and f.result().get("ok"):
                        acks.append((time.monotonic() - t0) * 1000)
                    else:
                        errors += 1

                fut.add_done_callback(acked)
                pending.add(fut)
            else:
                sender.privmsg(CHANNEL, text)
            result.sent += 1
            if seq % 250 == 0:
                progress(f"{label} sending", seq, messages, started)
        progress(f"{label} sending", messages, messages, started)
        end = time.monotonic() + 60
        while state["probe"] < messages and time.monotonic() < end:
            await asyncio.sleep(0.01)
        if pending:
            await asyncio.wait(pending, timeout=30)
        result.errors = errors
        result.extra["ack_ms"] = _pcts(acks)
        result.extra["probe"] = probe_collector
        await sender.close()
        await probe.close()

    with no_gc_pauses():
        run_async(run())
    merged = pool.collect(timeout=120)
    probe_collector = result.extra.pop("probe")
    result.expected = messages * (receivers + 1)
    result.delivered = merged["count"] + probe_collector.count
    result.latencies_ms = merged["latencies"] + probe_collector.latencies
    bins = dict(merged["bins"])
    for bucket, n in probe_collector.bins.items():
        bins[bucket] = bins.get(bucket, 0) + n
    result.timeline = timeline_of(bins)
    result.duration_s = round(len(result.timeline) / 10, 2) or 0.1
    result.extra["duplicates"] = merged["duplicates"] + probe_collector.duplicates
    return result


def _pcts(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values = sorted(values)
    return {
        q: round(values[min(len(values) - 1, int(p * len(values)))], 2)
        for q, p in (("p50", 0.5), ("p99", 0.99))
    } | {"max": round(values[-1], 2)}


def persisted_count(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        count = conn.execute(text("SELECT COUNT(*) FROM messages")).scalar_one()
    engine.dispose()
    return count


def scenario_fanout(args: argparse.Namespace, rate: float | None = None) -> list[Result]:
    results = []
    name = "fanout" if rate is None else "openloop"
    messages = args.messages if rate is None else int(rate * args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        for system in args.systems:
            workdir = Path(tmp) / system
            if system == "chatroom":
                stack, url = servers.start_chatroom(workdir, db=args.db)
                port = stack.port
            else:
                irc = servers.Ngircd(workdir)
                port = irc.port
            try:
                result = fanout_once(
                    system,
                    port,
                    args.members,
                    messages,
                    args.inflight,
                    rate,
                    args.processes,
                    f"{name} {system}",
                )
                if system == "chatroom":
                    result.extra["persisted"] = persisted_count(url)
                else:
                    result.extra["persisted"] = 0
                results.append(result)
            finally:
                if system == "chatroom":
                    servers.stop_chatroom(stack, url)
                else:
                    irc.stop()
    print_table(results)
    notes = {}
    if len(results) == 2:
        ours, peer = results
        notes["ratio_rate"] = round(ours.rate / peer.rate, 3) if peer.rate else None
        p_ours, p_peer = ours.percentiles(), peer.percentiles()
        if p_ours and p_peer:
            notes["ratio_p99"] = round(p_ours["p99"] / p_peer["p99"], 3)
        print(f"ratios (chatroom / ngircd): {notes}")
    save(name, results, notes)
    return results


# ----------------------------------------------------------------------------- big room


def scenario_bigroom(args: argparse.Namespace) -> list[Result]:
    """One message to a room of N members: time until every member has it. Each trial
    runs on a fresh stack, so one trial's thousand logouts do not load the next."""
    results = []
    for trial in range(args.trials):
        with tempfile.TemporaryDirectory() as tmp:
            stack, url = servers.start_chatroom(Path(tmp) / "chatroom", db=args.db)
            try:
                pool = ReceiverPool(
                    "chatroom", stack.port, args.members - 1, 1, args.processes, deadline_s=30
                )
                pool.wait_ready()
                pool.go()

                async def send_one(seq: int, port: int) -> None:
                    sender = await _sender("chatroom", port, "big-sender")
                    await asyncio.sleep(0.5)
                    await sender.call("room.send", room="lobby", text=stamp(seq))
                    await sender.close()

                run_async(send_one(trial, stack.port))
                merged = pool.collect(timeout=60)
            finally:
                servers.stop_chatroom(stack, url)
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
    save("bigroom", results, {"median_all_delivered_ms": statistics.median(times)})
    return results


# ----------------------------------------------------------------------------- private messages


OPEN_LOOP_OUTSTANDING = 20_000


def _dm_worker(
    conn: Any,
    port: int,
    pairs: list[int],
    messages: int,
    inflight: int,
    rate: float | None,
    deadline_s: float,
) -> None:
    """Each pair: a sender and a receiver (friends). Throughput is acknowledged (persisted)
    sends; latency is send -> push at the receiver."""

    async def run() -> None:
        collector = Collector()
        senders, receivers = [], []
        for p in pairs:
            a, b = AsyncChat(), AsyncChat()

            def on_event(event: dict, now: int, who: int = p) -> None:
                if event.get("event") == "message":
                    parsed = parse_stamp(event["text"])
                    if parsed:
                        collector.record(who, parsed[0], parsed[1], now)

            b.on_event = on_event
            await a.connect("127.0.0.1", port)
            await b.connect("127.0.0.1", port)
            await a.register_login(f"dma{p}", PASSWORD)
            await b.register_login(f"dmb{p}", PASSWORD)
            await a.call("friend.request", username=f"dmb{p}")
            with contextlib.suppress(ChatError):
                await b.call("friend.accept", username=f"dma{p}")
            senders.append(a)
            receivers.append(b)

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
        gc.disable()  # see no_gc_pauses; this process ends with the run
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
                await asyncio.sleep(0)
        await asyncio.gather(*tasks)
        duration = time.monotonic() - started
        wait_end = time.monotonic() + 10
        while collector.count < len(acks) and time.monotonic() < wait_end:
            await asyncio.sleep(0.02)
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


def scenario_dm(args: argparse.Namespace, rate: float | None = None) -> list[Result]:
    name = "dm" if rate is None else "dmrate"
    messages = args.messages if rate is None else int(rate * args.seconds)
    with tempfile.TemporaryDirectory() as tmp:
        stack, url = servers.start_chatroom(
            Path(tmp) / "chatroom", db=args.db, max_inflight_per_conn=256
        )
        try:
            ctx = mp.get_context("fork")
            pipes, procs = [], []
            per_proc = messages // args.processes
            proc_rate = rate / args.processes if rate else None
            for i in range(args.processes):
                pairs = list(range(i, args.pairs, args.processes))
                parent, child = ctx.Pipe()
                proc = ctx.Process(
                    target=_dm_worker,
                    daemon=True,
                    args=(
                        child,
                        stack.port,
                        pairs,
                        per_proc,
                        max(1, args.inflight // args.processes),
                        proc_rate,
                        120,
                    ),
                )
                proc.start()
                pipes.append(parent)
                procs.append(proc)
            for pipe in pipes:
                if not pipe.poll(300):
                    raise TimeoutError("dm workers not ready")
                pipe.recv()
            print(f"{name}: {args.pairs} friend pairs ready; sending {messages} messages")
            for pipe in pipes:
                pipe.send("go")
            parts = collect_parts(pipes, procs, 300, "dm workers")
            # The warm-up messages are stored too; only the measured ones count.
            persisted = persisted_count(url) - sum(len(p["cold"]) for p in parts)
        finally:
            servers.stop_chatroom(stack, url)
    result = Result(
        name,
        "chatroom",
        {"pairs": args.pairs, "messages": messages, "inflight": args.inflight, "rate": rate},
    )
    result.sent = sum(p["sent"] for p in parts)
    result.expected = result.sent
    acks = [a for p in parts for a in p["acks"]]
    result.delivered = len(acks)
    result.errors = sum(p["errors"] for p in parts)
    result.duration_s = round(max(p["duration"] for p in parts), 3)
    merge_latencies(result, parts)
    result.extra = {
        "ack_ms": _pcts(acks),
        "pushed": sum(p["count"] for p in parts),
        "persisted": persisted,
        "persisted_per_s": round(persisted / result.duration_s, 1),
        "cold_first_dm_ms": _pcts([c for p in parts for c in p["cold"]]),
    }
    print_table([result])
    print(
        f"acknowledged (persisted) sends: {result.delivered} in {result.duration_s} s = "
        f"{result.rate:,.0f}/s; ack latency {result.extra['ack_ms']}; first message of"
        f" each pair (warm-up, not measured): {result.extra['cold_first_dm_ms']}"
    )
    save(name, [result])
    return [result]


# ----------------------------------------------------------------------------- logins


def argon2_verify_rate(seconds: float = 3.0) -> float:
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


def scenario_login(args: argparse.Namespace) -> list[Result]:
    baseline = argon2_verify_rate()
    print(f"argon2id verify alone: {baseline:.1f}/s on one core")
    with tempfile.TemporaryDirectory() as tmp:
        stack, url = servers.start_chatroom(
            Path(tmp) / "chatroom",
            db=args.db,
            cheap_hashing=False,
            worker_threads=4,
            # All logins are sent at once and each costs ~90 ms of argon2: the last ones
            # wait longer than the usual 10 s in auth's queue.
            request_timeout_ms=60_000,
        )
        try:

            async def run() -> Result:
                async def make(first: int) -> None:
                    # Accounts first (not timed). A connection that has not logged in
                    # is closed after CHAT_LOGIN_TIMEOUT_S (10 s): at most 10
                    # registrations (~100-400 ms each here) per connection.
                    maker = AsyncChat()
                    await maker.connect("127.0.0.1", stack.port)
                    for i in range(first, min(first + 10, args.users)):
                        await maker.call(
                            "register", username=f"login{i}", password=PASSWORD, timeout=120
                        )
                    await maker.close()

                for first in range(0, args.users, 20):  # two connections at a time
                    await asyncio.gather(*(make(f) for f in (first, first + 10)))
                result = Result("login", "chatroom", {"users": args.users})
                latencies: list[float] = []
                started = time.monotonic()

                async def one(i: int) -> None:
                    c = AsyncChat()
                    t0 = time.monotonic()
                    await c.connect("127.0.0.1", stack.port)
                    await c.call("login", username=f"login{i}", password=PASSWORD, timeout=120)
                    latencies.append((time.monotonic() - t0) * 1000)
                    await c.close()

                await asyncio.gather(*(one(i) for i in range(args.users)))
                result.duration_s = round(time.monotonic() - started, 3)
                result.sent = result.expected = result.delivered = len(latencies)
                result.latencies_ms = latencies
                return result

            result = run_async(run())
        finally:
            servers.stop_chatroom(stack, url)
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
    save("login", [result])
    return [result]


def raise_file_limit() -> None:
    """Up to 20,000 open files (the machine's per-process cap); services started after
    this inherit it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 20_000), hard))


def scenario_resume(args: argparse.Namespace) -> list[Result]:
    """A reconnect storm: N different users (as after an edge restart) resume their
    sessions with tokens, at most --inflight at a time, and stay connected until all
    are back. Timed from the first connect to the last login reply."""
    raise_file_limit()
    with tempfile.TemporaryDirectory() as tmp:
        stack, url = servers.start_chatroom(Path(tmp) / "chatroom", db=args.db)
        try:

            async def run() -> Result:
                tokens: list[str] = []
                sem = asyncio.Semaphore(64)

                async def make_token(i: int) -> None:  # not timed
                    async with sem:
                        c = AsyncChat()
                        await c.connect("127.0.0.1", stack.port)
                        reply = await c.register_login(f"resumer{i}", PASSWORD)
                        tokens.append(reply["token"])
                        await c.close()

                setup = time.monotonic()
                await asyncio.gather(*(make_token(i) for i in range(args.users)))
                print(f"{len(tokens)} users with sessions in {time.monotonic() - setup:.1f} s")
                result = Result(
                    "resume", "chatroom", {"users": args.users, "inflight": args.inflight}
                )
                latencies: list[float] = []
                connected: list[AsyncChat] = []
                window = asyncio.Semaphore(args.inflight)
                started = time.monotonic()

                async def resume(token: str) -> None:
                    async with window:
                        c = AsyncChat()
                        t0 = time.monotonic()
                        await c.connect("127.0.0.1", stack.port)
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

            result = run_async(run())
        finally:
            servers.stop_chatroom(stack, url)
    print_table([result])
    save("resume", [result])
    return [result]


# ----------------------------------------------------------------------------- idle connections


IDLE_ATTEMPTS = 4


def _idle_worker(conn: Any, port: int, first: int, count: int, source: str) -> None:
    """Users idle<first>..: each registers, logs in on its own connection and stays.
    Each worker connects from its own loopback address (ephemeral ports per address)."""

    async def run() -> None:
        clients = []
        sem = asyncio.Semaphore(200)
        retried: dict[str, int] = {}

        async def one(n: int) -> None:
            # As the desktop client does, a user whose connection or login failed in the
            # storm tries again on a new connection (a few times, backing off); what
            # failed is counted in `retried`.
            for attempt in range(1, IDLE_ATTEMPTS + 1):
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
                        if attempt == IDLE_ATTEMPTS:
                            raise
                await asyncio.sleep(attempt * random.uniform(1, 2))

        outcomes = await asyncio.gather(
            *(one(first + i) for i in range(count)), return_exceptions=True
        )
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        reasons: dict[str, int] = {}
        for failure in failures:
            reasons[type(failure).__name__] = reasons.get(type(failure).__name__, 0) + 1
        conn.send((len(clients), reasons, retried))
        await asyncio.get_running_loop().run_in_executor(None, conn.recv)
        for c in clients:
            await c.close()

    raise_file_limit()
    run_async(run())


def scenario_idle(args: argparse.Namespace) -> list[Result]:
    """N different users logged in on N idle connections; edge memory per connection."""
    with tempfile.TemporaryDirectory() as tmp:
        # Held without a ping: an idle timeout far beyond the run (as for every scenario).
        stack, url = servers.start_chatroom(
            Path(tmp) / "chatroom", db=args.db, idle_timeout_s=servers.QUIET_CLIENTS_IDLE_TIMEOUT_S
        )
        try:
            edge_pid = stack.procs["edge#0"].pid
            before = servers.process_tree_rss_kib(edge_pid)

            per = 15_000  # below the 20,000 open files one process may hold
            ctx = mp.get_context("fork")
            pipes, procs = [], []
            remaining = args.connections
            started = time.monotonic()
            while remaining > 0:
                n = min(per, remaining)
                parent, child = ctx.Pipe()
                first = args.connections - remaining
                source = f"127.0.0.{2 + len(procs)}"
                proc = ctx.Process(
                    target=_idle_worker, args=(child, stack.port, first, n, source), daemon=True
                )
                proc.start()
                pipes.append(parent)
                procs.append(proc)
                remaining -= n
            connected, failures, retries = 0, {}, {}
            for pipe in pipes:
                if pipe.poll(900):
                    ok, reasons, retried = pipe.recv()
                    connected += ok
                    for reason, n in reasons.items():
                        failures[reason] = failures.get(reason, 0) + n
                    for reason, n in retried.items():
                        retries[reason] = retries.get(reason, 0) + n
            elapsed = time.monotonic() - started
            time.sleep(2)
            after = servers.process_tree_rss_kib(edge_pid)
            for pipe in pipes:
                pipe.send("stop")
            for proc in procs:
                proc.join(30)
        finally:
            servers.stop_chatroom(stack, url)
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
    save("idle", [result])
    return [result]


# ----------------------------------------------------------------------------- generator ceiling


def _blast_server(port_holder: Any, frames: int, receivers: int) -> None:
    from chatroom.protocol import encode_frame

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
        await asyncio.sleep(1)
        server.close()

    run_async(run())


def scenario_ceiling(args: argparse.Namespace) -> list[Result]:
    """The generator's own ceiling: pushes per second its receiver processes can decode
    and time-stamp, fed by a trivial server that does nothing else."""
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    members, frames = 100, 2000
    server = ctx.Process(target=_blast_server, args=(child, frames, members), daemon=True)
    server.start()
    port = parent.recv()

    def receiver(conn: Any, count: int) -> None:
        async def run() -> None:
            collector = Collector()
            clients = []
            for i in range(count):

                def on_event(event: dict, now: int, who: int = i) -> None:
                    parsed = parse_stamp(event["text"])
                    if parsed:
                        collector.record(who, parsed[0], parsed[1], now)

                c = AsyncChat(on_event)
                await c.connect("127.0.0.1", port)
                clients.append(c)
            end = time.monotonic() + 120
            while collector.count < count * frames and time.monotonic() < end:
                await asyncio.sleep(0.01)
            conn.send({"count": collector.count, "bins": collector.bins})

        run_async(run())

    pipes, procs = [], []
    for i in range(args.processes):
        a, b = ctx.Pipe()
        n = len(range(i, members, args.processes))
        p = ctx.Process(target=receiver, args=(b, n), daemon=True)
        p.start()
        pipes.append(a)
        procs.append(p)
    total, bins = 0, {}
    for pipe in pipes:
        part = pipe.recv()
        total += part["count"]
        for k, v in part["bins"].items():
            bins[k] = bins.get(k, 0) + v
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
    save("ceiling", [result])
    return [result]


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="loadtest.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "scenario",
        choices=[
            "fanout",
            "openloop",
            "bigroom",
            "dm",
            "dmrate",
            "login",
            "resume",
            "idle",
            "ceiling",
            "presence",
            "avatars",
            "avatarbomb",
            "soak",
            "prelogin",
        ],
    )
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--inflight", type=int, default=32)
    parser.add_argument("--rate", type=float, default=1000)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--pairs", type=int, default=50)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--connections", type=int, default=10_000)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--friends", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--rooms", type=int, default=100)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--rss-abort-mib", type=int, default=3072, help="avatarbomb: kill media past this"
    )
    parser.add_argument("--db", choices=["mariadb", "sqlite"], default="mariadb")
    parser.add_argument(
        "--frame-bytes",
        type=int,
        default=0,
        help="prelogin: the length prefix hostile clients send (default: the largest the "
        "edge accepts before login)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SETTING=VALUE",
        help="a server setting for this run, e.g. --set worker_threads=32",
    )
    parser.add_argument(
        "--systems", nargs="+", default=["chatroom", "ngircd"], choices=["chatroom", "ngircd"]
    )
    args = parser.parse_args(argv)
    from loadtest import (  # they use this module's helpers
        avatarbomb,
        churn,
        prelogin,
        soak,
    )

    servers.OVERRIDES.update(item.split("=", 1) for item in args.set)
    handlers = {
        "fanout": lambda: scenario_fanout(args),
        "openloop": lambda: scenario_fanout(args, rate=args.rate),
        "bigroom": lambda: scenario_bigroom(args),
        "dm": lambda: scenario_dm(args),
        "dmrate": lambda: scenario_dm(args, rate=args.rate),
        "login": lambda: scenario_login(args),
        "resume": lambda: scenario_resume(args),
        "idle": lambda: scenario_idle(args),
        "ceiling": lambda: scenario_ceiling(args),
        "presence": lambda: churn.scenario_presence(args),
        "avatars": lambda: churn.scenario_avatars(args),
        "avatarbomb": lambda: avatarbomb.scenario_avatarbomb(args),
        "soak": lambda: soak.scenario_soak(args),
        "prelogin": lambda: prelogin.scenario_prelogin(args),
    }
    handlers[args.scenario]()


if __name__ == "__main__":
    main()
