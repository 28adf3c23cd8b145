"""The load generator's own machinery, shared by the scenarios: time-stamped message
texts, per-process collectors of deliveries, receiving members spread over worker
processes, and the plumbing to start and hear from those workers."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing as mp
import resource
import time
from collections import Counter
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any

from loadtest.aclient import AsyncChat, AsyncIrc, run_async
from loadtest.chatter import Chatter, ChatterPlan
from loadtest.results import add_bins

PASSWORD = "bench-password"
CHANNEL = "#bench"  # ngIRCd's room
PAYLOAD_BYTES = 32


def stamp(seq: int) -> str:
    """A message text carrying its number and send time (one clock for all processes)."""
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
        # What the chatter's members read (loadtest/chatter.py), noted here rather than
        # by a handler of its own around this one: a second Python call per delivery
        # cost the generator ~10 % more CPU in the chatter runs, which bound their
        # deliveries/s (docs/benchmarks.md, "Session 13").
        self.newest_seq: dict[int, int] = {}  # member -> room seq of its newest message
        self.typing_pushes = 0
        # The first and the last delivery's time: a run's duration to the nanosecond
        # (its 100-ms bins alone made a rate move in steps of ~1 % at 9 s).
        self.first_ns = 0
        self.last_ns = 0

    def record(self, who: int, seq: int, sent_ns: int, now_ns: int) -> None:
        if (who, seq) in self.seen:
            self.duplicates += 1
            return
        self.seen.add((who, seq))
        if not self.count:
            self.first_ns = now_ns
        self.last_ns = now_ns
        self.count += 1
        self.latencies.append((now_ns - sent_ns) / 1e6)
        bucket = now_ns // 100_000_000
        self.bins[bucket] = self.bins.get(bucket, 0) + 1

    def on_chat_event(self, who: int) -> Callable[[dict, int], None]:
        """An AsyncChat event handler recording member `who`'s stamped messages."""

        newest_seq = self.newest_seq

        def on_event(event: dict, now: int) -> None:
            kind = event.get("event")
            if kind == "message":
                # The room's order: the last is the newest. (`ceiling`'s frames have no
                # seq: a KeyError here once killed the client's reader, and the run hung.)
                seq = event.get("seq")
                if seq is not None:
                    newest_seq[who] = seq
                parsed = parse_stamp(event["text"])
                if parsed:
                    self.record(who, parsed[0], parsed[1], now)
            elif kind == "typing":
                self.typing_pushes += 1

        return on_event

    def on_text(self, who: int) -> Callable[[str, int], None]:
        """The same for an IRC member (AsyncIrc hands over the PRIVMSG text)."""

        def on_text(text: str, now: int) -> None:
            parsed = parse_stamp(text)
            if parsed:
                self.record(who, parsed[0], parsed[1], now)

        return on_text


@contextlib.contextmanager
def no_gc_pauses() -> Iterator[None]:
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


def raise_file_limit() -> None:
    """Up to 20,000 open files (the machine's per-process cap); services started after
    this inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 20_000), hard))


# The edges' addresses: one stack on this machine, or the hosts of a cluster
# (chatroom/hosts.py), each edge on its own address and the same port.
LOCAL = ("127.0.0.1",)


async def connect_members(
    system: str,
    port: int,
    names: list[str],
    collector: Collector,
    room: str,
    hosts: tuple[str, ...] = LOCAL,
) -> list[Any]:
    """Members logged in (ChatRoom) or joined to CHANNEL (IRC), recording what they get;
    spread over `hosts` in turn."""
    clients: list[Any] = []
    for index, name in enumerate(names):
        if system == "chatroom":
            client = AsyncChat(collector.on_chat_event(index))
            await client.connect(hosts[index % len(hosts)], port)
            await client.register_login(name, PASSWORD)
            if room != "lobby":
                await client.call("room.join", room=room)
        else:
            client = AsyncIrc(name, collector.on_text(index))
            await client.connect("127.0.0.1", port)
            await client.join(CHANNEL)
        clients.append(client)
    return clients


async def connect_sender(
    system: str,
    port: int,
    name: str,
    on_message: Callable[..., None] | None = None,
    host: str = LOCAL[0],
) -> Any:
    """A member that posts to the lobby; `on_message` is called for each message it
    hears from the others."""
    if system == "chatroom":

        def on_event(event: dict[str, Any], _now: int) -> None:
            if on_message is not None and event.get("event") == "message":
                on_message()

        client = AsyncChat(on_event)
        await client.connect(host, port)
        await client.register_login(name, PASSWORD)
        return client
    client = AsyncIrc(name, on_message and (lambda _text, _now: on_message()))
    await client.connect("127.0.0.1", port)
    await client.join(CHANNEL)
    return client


async def wait_for(done: Callable[[], bool], timeout_s: float, poll_s: float) -> None:
    """Return once done() holds or after timeout_s (the caller counts what is missing)."""
    end = time.monotonic() + timeout_s
    while not done() and time.monotonic() < end:
        await asyncio.sleep(poll_s)


# ----------------------------------------------------------------------------- workers


def spawn(target: Callable[..., None], arg_lists: list[tuple]) -> tuple[list, list]:
    """One forked daemon process per argument tuple, each called as target(pipe, *args);
    returns the parent ends of the pipes and the processes."""
    ctx = mp.get_context("fork")
    pipes: list[Connection] = []
    procs: list[Any] = []
    for args in arg_lists:
        parent, child = ctx.Pipe()
        proc = ctx.Process(target=target, args=(child, *args), daemon=True)
        proc.start()
        pipes.append(parent)
        procs.append(proc)
    return pipes, procs


def wait_ready(pipes: list[Connection], timeout: float, who: str) -> None:
    """Each worker's first message (it has connected its members)."""
    for pipe in pipes:
        if not pipe.poll(timeout):
            raise TimeoutError(f"{who} did not connect within {timeout:g} s")
        pipe.recv()


def collect_parts(pipes: list[Connection], procs: list[Any], timeout: float, who: str) -> list:
    """Each worker process's report, then the workers joined."""
    parts = []
    for pipe in pipes:
        if not pipe.poll(timeout):
            raise TimeoutError(f"{who} did not report within {timeout:g} s")
        parts.append(pipe.recv())
    for proc in procs:
        proc.join(10)
    return parts


def _receiver_main(
    conn: Connection,
    system: str,
    port: int,
    names: list[str],
    expected: int,
    room: str,
    deadline_s: float,
    plan: ChatterPlan | None,
    hosts: tuple[str, ...],
) -> None:
    async def run() -> None:
        collector = Collector()
        clients = await connect_members(system, port, names, collector, room, hosts)
        chatter = Chatter(clients, collector, plan, seed=names[0]) if plan else None
        conn.send("ready")
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        with no_gc_pauses():
            await loop.run_in_executor(None, conn.recv)  # "go"
            active = asyncio.create_task(chatter.run(stop)) if chatter else None
            await wait_for(lambda: collector.count >= expected, deadline_s, 0.02)
            stop.set()
            if active:
                await active
        conn.send(
            {
                "count": collector.count,
                "latencies": collector.latencies,
                "bins": collector.bins,
                "span_ns": (collector.first_ns, collector.last_ns),
                "duplicates": collector.duplicates,
                "chatter": chatter.counts.as_dict() if chatter else {},
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
        chatter: ChatterPlan | None = None,
        hosts: tuple[str, ...] = LOCAL,
    ) -> None:
        """`chatter`: the members also type and mark what they read (loadtest.chatter);
        `hosts`: the edges' addresses, the members spread over them."""
        shares = [list(range(i, members, processes)) for i in range(processes)]
        arg_lists = []
        for ids in shares:
            if ids:
                names = [f"{prefix}{n}" for n in ids]
                expected = len(names) * messages
                arg_lists.append((system, port, names, expected, room, deadline_s, chatter, hosts))
        # Members per edge address (each process spreads its own over `hosts` in turn).
        self.per_host = Counter(hosts[i % len(hosts)] for ids in shares for i in range(len(ids)))
        self.pipes, self.procs = spawn(_receiver_main, arg_lists)

    def wait_ready(self, timeout: float = 300) -> None:
        wait_ready(self.pipes, timeout, "receivers")

    def go(self) -> None:
        for pipe in self.pipes:
            pipe.send("go")

    def collect(self, timeout: float) -> dict[str, Any]:
        merged: dict[str, Any] = {
            "count": 0,
            "latencies": [],
            "bins": {},
            "spans_ns": [],
            "duplicates": 0,
            "chatter": {},
        }
        for part in collect_parts(self.pipes, self.procs, timeout, "receivers"):
            merged["count"] += part["count"]
            merged["latencies"].extend(part["latencies"])
            merged["duplicates"] += part["duplicates"]
            add_bins(merged["bins"], part["bins"])
            if part["count"]:
                merged["spans_ns"].append(part["span_ns"])
            for name, n in part["chatter"].items():
                merged["chatter"][name] = merged["chatter"].get(name, 0) + n
        return merged
