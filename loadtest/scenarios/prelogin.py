"""Pre-login flood: what hostile connections that never log in cost one edge worker.

    python -m loadtest prelogin --connections 10000 --seconds 12

N connections from many loopback addresses (at most CHAT_MAX_CONNS_PER_IP = 256 each,
the production cap) each send a length prefix of --frame-bytes (default: the largest
the edge accepts before login) and all of the body but its last byte, then hold on. Meanwhile
logged-in users keep sending messages and newcomers keep registering and logging in.
Reports the edge worker's peak RSS (sampled from /proc every 50 ms, and VmHWM), how
each hostile connection ended, and how the users fared. Budget: 256 MiB per edge worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from chatroom.framing import HEADER, FrameDecoder, parse_payload
from chatroom.protocol import PRELOGIN_MAX_FRAME_BYTES
from loadtest import measure, plots, servers
from loadtest.aclient import AsyncChat, run_async
from loadtest.generator import PASSWORD, raise_file_limit, spawn
from loadtest.results import Result, pcts, print_table, save, timeline_of

EDGE_RSS_BUDGET_MIB = 256
PER_ADDRESS = 250  # below the production CHAT_MAX_CONNS_PER_IP (256)
FIRST_ADDRESS = 10  # hostile clients come from 127.0.0.10, .11, ...; users from 127.0.0.1
USERS = 20
NEWCOMER_EVERY_S = 0.5
SAMPLE_EVERY_S = 0.05


# ----------------------------------------------------------------------------- attackers


async def _hostile(
    port: int, source: str, frame_bytes: int, until: float, opening: asyncio.Semaphore
) -> str:
    """One connection: prefix + all but the last byte of the body; returns how it ended
    (the code the edge gave when it closed it, or "held" if it was still open)."""
    decoder = FrameDecoder(1 << 20)
    ended = "held"
    async with opening:  # a bounded connect storm, not thousands of handshakes at once
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(source, 0)
            )
        except OSError as exc:
            return f"connect: {type(exc).__name__}"
        writer.write(HEADER.pack(frame_bytes) + b"x" * (frame_bytes - 1))
        # The edge may stop reading or close: what it says is read below.
        with contextlib.suppress(TimeoutError, OSError):
            await asyncio.wait_for(writer.drain(), max(until - time.monotonic(), 0.1))
    try:
        while True:
            data = await asyncio.wait_for(reader.read(1 << 16), until - time.monotonic())
            if not data:
                ended = "closed" if ended == "held" else ended
                break
            for payload in decoder.feed(data):
                frame = parse_payload(payload)
                ended = frame.get("code") or frame.get("error", {}).get("code") or ended
    except (TimeoutError, ValueError):
        pass
    except OSError as exc:
        ended = ended if ended != "held" else f"reset: {type(exc).__name__}"
    writer.close()
    return ended


def _attacker(
    conn: Connection, port: int, sources: list[str], frame_bytes: int, seconds: float
) -> None:
    """A process opening PER_ADDRESS connections from each of its addresses."""

    async def run() -> dict[str, int]:
        conn.recv()  # go
        until = time.monotonic() + seconds
        opening = asyncio.Semaphore(200)
        ends = await asyncio.gather(
            *(
                _hostile(port, source, frame_bytes, until, opening)
                for source in sources
                for _ in range(PER_ADDRESS)
            )
        )
        outcomes: dict[str, int] = {}
        for end in ends:
            outcomes[end] = outcomes.get(end, 0) + 1
        return outcomes

    raise_file_limit()
    conn.send(run_async(run()))


# ----------------------------------------------------------------------------- users


async def _users_during(port: int, seconds: float, result: Result) -> dict[str, int]:
    """USERS logged-in users send to the lobby in turn while the flood lasts; every
    NEWCOMER_EVERY_S a new user registers and logs in on a fresh connection."""
    users = []
    for i in range(USERS):
        c = AsyncChat()
        await c.connect("127.0.0.1", port)
        await c.register_login(f"steady{i}", PASSWORD)
        users.append(c)
    bins: dict[int, int] = {}
    newcomers = {"logged_in": 0, "failed": 0}
    until = time.monotonic() + seconds

    async def newcomer(n: int) -> None:
        c = AsyncChat()
        try:
            await c.connect("127.0.0.1", port)
            await c.register_login(f"newcomer{n}", PASSWORD, timeout=10)
            newcomers["logged_in"] += 1
        except Exception:  # noqa: BLE001 - counted, not raised
            newcomers["failed"] += 1
        finally:
            await c.close()

    async def arrivals() -> None:
        n = 0
        while time.monotonic() < until:
            await asyncio.gather(newcomer(n), asyncio.sleep(NEWCOMER_EVERY_S))
            n += 1

    async def senders() -> None:
        seq = 0
        while time.monotonic() < until:
            for c in users:
                t0 = time.monotonic_ns()
                result.sent += 1
                try:
                    await c.call("room.send", timeout=10, room="lobby", text=f"steady {seq}")
                except Exception:  # noqa: BLE001 - counted, not raised
                    result.errors += 1
                    continue
                now = time.monotonic_ns()
                result.latencies_ms.append((now - t0) / 1e6)
                bins[now // 100_000_000] = bins.get(now // 100_000_000, 0) + 1
                seq += 1
            await asyncio.sleep(0.05)

    await asyncio.gather(arrivals(), senders())
    result.delivered = len(result.latencies_ms)
    result.expected = result.sent
    result.timeline = timeline_of(bins)
    for c in users:
        await c.close()
    return newcomers


def plot_rss(path: Path, samples: list[tuple[float, int]], label: str) -> None:
    plots.memory(
        path,
        [(t, kib / 1024) for t, kib in samples],
        label=label,
        limit_mib=EDGE_RSS_BUDGET_MIB,
        limit_label="budget",
        ylabel="edge worker RSS (MiB)",
        title="prelogin flood: edge memory",
        size=(7, 4),
    )


def add_parsers(sub: Any, server: argparse.ArgumentParser, out: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "prelogin",
        parents=[server, out],
        help="a flood of connections that never log in: edge memory",
    )
    p.add_argument("--connections", type=int, default=10_000, help="hostile connections")
    p.add_argument("--seconds", type=float, default=10, help="how long the flood lasts")
    p.add_argument(
        "--frame-bytes",
        type=int,
        default=0,
        help="the length prefix hostile clients send (default: the largest the edge "
        "accepts before login)",
    )
    p.add_argument("--processes", type=int, default=2, help="attacking processes")
    p.set_defaults(run=run)


# ----------------------------------------------------------------------------- scenario


def run(args: argparse.Namespace) -> list[Result]:
    frame_bytes = args.frame_bytes or PRELOGIN_MAX_FRAME_BYTES
    addresses = [f"127.0.0.{FIRST_ADDRESS + i}" for i in range(-(-args.connections // PER_ADDRESS))]
    if FIRST_ADDRESS + len(addresses) > 255:
        raise SystemExit(f"at most {(255 - FIRST_ADDRESS) * PER_ADDRESS} connections")
    raise_file_limit()
    result = Result(
        "prelogin",
        "chatroom",
        {"connections": len(addresses) * PER_ADDRESS, "frame_bytes": frame_bytes},
    )
    # The production per-address cap: the flood comes from many addresses instead.
    with servers.chatroom(args.db, args.set, max_conns_per_ip=256) as (stack, _url):
        edge_pid = stack.procs["edge#0"].pid
        before_kib = measure.rss_kib(edge_pid)
        sampler = measure.RssSampler(edge_pid, SAMPLE_EVERY_S)
        sampler.start()
        pipes, procs = spawn(
            _attacker,
            [
                (stack.port, addresses[i :: args.processes], frame_bytes, args.seconds)
                for i in range(args.processes)
            ],
        )
        print(
            f"flood: {result.params['connections']} connections from {len(addresses)} "
            f"addresses, {frame_bytes}-byte frames, {args.seconds:g} s; edge RSS "
            f"{before_kib / 1024:.0f} MiB"
        )
        started = time.monotonic()
        for pipe in pipes:
            pipe.send("go")
        newcomers = run_async(_users_during(stack.port, args.seconds, result))
        outcomes: dict[str, int] = {}
        for pipe in pipes:
            if pipe.poll(args.seconds + 120):
                for end, n in pipe.recv().items():
                    outcomes[end] = outcomes.get(end, 0) + n
        result.duration_s = round(time.monotonic() - started, 2)
        for proc in procs:
            proc.join(30)
        sampler.stopped.set()
        sampler.join()
        hwm_kib = measure.peak_rss_kib(edge_pid)
    peak_mib = max(sampler.peak_kib, hwm_kib) / 1024
    result.extra = {
        "edge_rss_before_kib": before_kib,
        "edge_rss_peak_sampled_kib": sampler.peak_kib,
        "edge_rss_hwm_kib": hwm_kib,
        "budget_mib": EDGE_RSS_BUDGET_MIB,
        "within_budget": peak_mib <= EDGE_RSS_BUDGET_MIB,
        "hostile_outcomes": outcomes,
        "newcomers": newcomers,
        "user_latency_ms": pcts(result.latencies_ms),
    }
    print_table([result])
    print(f"hostile connections ended: {outcomes}")
    print(f"newcomers during the flood: {newcomers}")
    print(
        f"edge worker RSS {before_kib / 1024:.0f} MiB -> peak {peak_mib:.0f} MiB "
        f"(budget {EDGE_RSS_BUDGET_MIB} MiB: "
        f"{'within' if peak_mib <= EDGE_RSS_BUDGET_MIB else 'OVER'})"
    )
    save(args.out, "prelogin", [result])
    label = f"{result.params['connections']} hostile connections"
    plot_rss(args.out / "prelogin-rss.png", sampler.samples, label)
    return [result]
