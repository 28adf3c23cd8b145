"""Pre-login flood: what hostile connections that never log in cost one edge worker.

    .venv/bin/python -m loadtest.bench prelogin --connections 10000 --seconds 12

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
import multiprocessing as mp
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from chatroom.protocol import HEADER, PRELOGIN_MAX_FRAME_BYTES, FrameDecoder, parse_payload
from loadtest import servers
from loadtest.aclient import AsyncChat, run_async
from loadtest.bench import (
    PASSWORD,
    RESULTS,
    Result,
    _pcts,
    print_table,
    raise_file_limit,
    save,
    timeline_of,
)

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


def _attacker(conn: Any, port: int, sources: list[str], frame_bytes: int, seconds: float) -> None:
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


# ----------------------------------------------------------------------------- measuring


class RssSampler(threading.Thread):
    """The edge worker's resident memory every SAMPLE_EVERY_S, until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, int]] = []  # (seconds since start, KiB)
        self.stopped = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.stopped.wait(SAMPLE_EVERY_S):
            self.samples.append((time.monotonic() - started, servers.rss_kib(self.pid)))

    @property
    def peak_kib(self) -> int:
        return max((kib for _, kib in self.samples), default=0)


def peak_rss_kib(pid: int) -> int:
    """VmHWM: the most the process has ever had resident."""
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


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


def plot_rss(samples: list[tuple[float, int]], label: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, axis = plt.subplots(figsize=(7, 4))
    axis.plot([t for t, _ in samples], [kib / 1024 for _, kib in samples], label=label)
    axis.axhline(EDGE_RSS_BUDGET_MIB, color="red", linestyle="--", label="budget")
    axis.set_xlabel("seconds")
    axis.set_ylabel("edge worker RSS (MiB)")
    axis.set_title("prelogin flood: edge memory")
    axis.grid(True, alpha=0.3)
    axis.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "prelogin-rss.png", dpi=90)
    plt.close(fig)


# ----------------------------------------------------------------------------- scenario


def scenario_prelogin(args: argparse.Namespace) -> list[Result]:
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
    with tempfile.TemporaryDirectory() as tmp:
        # The production per-address cap: the flood comes from many addresses instead.
        stack, url = servers.start_chatroom(
            Path(tmp) / "chatroom", db=args.db, max_conns_per_ip=256
        )
        try:
            edge_pid = stack.procs["edge#0"].pid
            before_kib = servers.rss_kib(edge_pid)
            sampler = RssSampler(edge_pid)
            sampler.start()
            ctx = mp.get_context("fork")
            pipes, procs = [], []
            for i in range(args.processes):
                parent, child = ctx.Pipe()
                mine = addresses[i :: args.processes]
                proc = ctx.Process(
                    target=_attacker,
                    args=(child, stack.port, mine, frame_bytes, args.seconds),
                    daemon=True,
                )
                proc.start()
                pipes.append(parent)
                procs.append(proc)
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
            hwm_kib = peak_rss_kib(edge_pid)
        finally:
            servers.stop_chatroom(stack, url)
    peak_mib = max(sampler.peak_kib, hwm_kib) / 1024
    result.extra = {
        "edge_rss_before_kib": before_kib,
        "edge_rss_peak_sampled_kib": sampler.peak_kib,
        "edge_rss_hwm_kib": hwm_kib,
        "budget_mib": EDGE_RSS_BUDGET_MIB,
        "within_budget": peak_mib <= EDGE_RSS_BUDGET_MIB,
        "hostile_outcomes": outcomes,
        "newcomers": newcomers,
        "user_latency_ms": _pcts(result.latencies_ms),
    }
    print_table([result])
    print(f"hostile connections ended: {outcomes}")
    print(f"newcomers during the flood: {newcomers}")
    print(
        f"edge worker RSS {before_kib / 1024:.0f} MiB -> peak {peak_mib:.0f} MiB "
        f"(budget {EDGE_RSS_BUDGET_MIB} MiB: "
        f"{'within' if peak_mib <= EDGE_RSS_BUDGET_MIB else 'OVER'})"
    )
    save("prelogin", [result])
    plot_rss(sampler.samples, f"{result.params['connections']} hostile connections")
    return [result]
