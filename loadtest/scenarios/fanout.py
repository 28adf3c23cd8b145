"""fanout and openloop: --senders members post to the lobby, every member receives.

    python -m loadtest fanout   --members 100 --messages 5000 --inflight 32
    python -m loadtest openloop --members 100 --rate 1000 --seconds 10
    python -m loadtest openloop --members 100 --rate 200 500 1000 --seconds 10   # a sweep

members-1-senders receivers spread over --processes processes; one probe member and the
senders in the generator's own process (message n goes out through sender n mod
--senders; each sender receives the others' messages, counted as deliveries too).
Closed loop (fanout): at most --inflight messages sent but not yet seen by the probe,
the same rule for both servers (IRC has no acks). Open loop (openloop): --rate messages
per second regardless. Runs against ChatRoom and ngIRCd (--systems), and reports the
ratios between them. Several --rate values: each in turn, and a plot of each system's
p99 against the rate, with 3 x ngIRCd's (issue #19's goal) beside ChatRoom's.

Why several senders: ChatRoom stores one connection's sends to a room in the order sent,
one after another (docs/protocol.md), as ngIRCd handles one connection's lines in order;
a room's traffic comes from many members, and one sender with 32 messages in flight
would measure one connection's round trip instead of the server. 32 by default: the
cost per delivery depends on how many are in flight at once (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path
from typing import Any

from loadtest import measure, plots, servers
from loadtest.aclient import run_async
from loadtest.chatter import ChatterPlan
from loadtest.generator import (
    CHANNEL,
    PAYLOAD_BYTES,
    Collector,
    ReceiverPool,
    connect_members,
    connect_sender,
    no_gc_pauses,
    stamp,
    wait_for,
)
from loadtest.results import Result, add_bins, pcts, print_table, progress, save, timeline_of

SYSTEMS = ["chatroom", "ngircd"]
SENDERS = 32


def add_parsers(sub: Any, server: argparse.ArgumentParser, out: argparse.ArgumentParser) -> None:
    for name, run, summary in (
        ("fanout", run_fanout, "lobby fan-out, closed loop: deliveries per second"),
        ("openloop", run_openloop, "lobby fan-out at a set rate: latency"),
    ):
        p = sub.add_parser(name, parents=[server, out], help=summary)
        p.add_argument("--members", type=int, default=100)
        if name == "fanout":
            p.add_argument("--messages", type=int, default=5000)
            p.add_argument("--inflight", type=int, default=32)
        else:
            p.add_argument(
                "--rate", type=float, nargs="+", default=[1000.0], help="messages per second"
            )
            p.add_argument("--seconds", type=float, default=10)
        p.add_argument("--senders", type=int, default=SENDERS, help="members that post")
        p.add_argument("--processes", type=int, default=2, help="receiving processes")
        p.add_argument("--systems", nargs="+", default=SYSTEMS, choices=SYSTEMS)
        p.set_defaults(run=run)


def run_fanout(args: argparse.Namespace) -> list[Result]:
    return _scenario(args, "fanout", args.messages, args.inflight, rate=None)


def run_openloop(args: argparse.Namespace) -> list[Result]:
    # The window is unused in open loop; the old single CLI's default is recorded.
    results: list[Result] = []
    by_rate: dict[float, dict[str, Any]] = {}
    for rate in args.rate:
        these, notes = _both(args, "openloop", int(rate * args.seconds), 32, rate=rate)
        results += these
        by_rate[rate] = {**notes, "p99_ms": {r.system: r.percentiles().get("p99") for r in these}}
    if len(args.rate) == 1:
        save(args.out, "openloop", results, by_rate[args.rate[0]])
        return results
    print_table(results)
    for rate, notes in by_rate.items():
        print(f"{rate:g}/s: {notes}")
    save(args.out, "openloop", results, {"by_rate": by_rate})
    _plot_p99_by_rate(args.out / "openloop-p99-by-rate.png", by_rate, args.members)
    return results


def _plot_p99_by_rate(path: Path, by_rate: dict[float, dict[str, Any]], members: int) -> None:
    series: dict[str, list[tuple[float, float]]] = {}
    for rate, notes in sorted(by_rate.items()):
        for system, p99 in notes["p99_ms"].items():
            if p99:
                series.setdefault(system, []).append((rate, p99))
                if system == "ngircd":
                    series.setdefault("3 x ngircd", []).append((rate, 3 * p99))
    plots.lines(
        path,
        f"open-loop p99 against the rate, a {members}-member room",
        series,
        xlabel="messages per second (log)",
        ylabel="p99 ms (log)",
        log_y=True,
    )


async def _probe(system: str, port: int, name: str, on_seq: Any) -> tuple[Any, Collector]:
    """A member in the generator's own process: the sender's flow control watches it."""
    collector = Collector()
    original = collector.record

    def record(who: int, seq: int, sent: int, now: int) -> None:
        original(who, seq, sent, now)
        on_seq(seq)

    collector.record = record  # type: ignore[method-assign]
    clients = await connect_members(system, port, [name], collector, "lobby")
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
    server_pids: dict[str, int],
    chatter: ChatterPlan | None = None,
    senders: int = SENDERS,
) -> Result:
    """Receivers over `processes` processes, 1 probe, `senders` senders (members in
    all). Closed loop: at most `inflight` messages sent but not yet seen by the probe.
    Open loop: `rate` messages per second regardless. `chatter`: the receivers also
    type and mark what they read. CPU is measured per process of `server_pids` (the
    generator apart) from "go" to the probe's last message, so neither the logins nor
    the logouts count.
    """
    senders = max(1, min(senders, members - 2))
    receivers = members - 1 - senders
    pool = ReceiverPool(system, port, receivers, messages, processes, chatter=chatter)
    pool.wait_ready()
    meter = measure.CpuMeter(server_pids, measure.generator_pids(pool.procs))
    result = Result(
        "fanout" if rate is None else "openloop",
        system,
        {
            "members": members,
            "messages": messages,
            "inflight": inflight,
            "senders": senders,
            "rate": rate,
            "payload_bytes": PAYLOAD_BYTES,
        },
    )
    probe_collector = Collector()
    cpu: dict[str, Any] = {}
    heard_by_senders = {"count": 0}

    async def run() -> None:
        nonlocal probe_collector
        probe_seen = asyncio.Event()
        state = {"probe": 0}

        def on_seq(_seq: int) -> None:
            state["probe"] += 1
            probe_seen.set()

        heard = [0] * senders  # messages each sender received from the others

        def hear(index: int) -> Any:
            def count(*_: Any) -> None:
                heard[index] += 1

            return count

        posting = [
            await connect_sender(system, port, f"sender{i}", hear(i)) for i in range(senders)
        ]
        probe, probe_collector = await _probe(system, port, "probe0", on_seq)
        acks: list[float] = []
        errors = 0
        meter.start()
        pool.go()
        await asyncio.sleep(0.2)  # the receivers' "go" has arrived
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
                delay = started + seq / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            text = stamp(seq)
            sender = posting[seq % senders]
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
        await wait_for(lambda: state["probe"] >= messages, 60, 0.01)
        cpu.update(meter.stop())
        if pending:
            await asyncio.wait(pending, timeout=30)
        result.errors = errors
        result.extra["ack_ms"] = pcts(acks)
        await wait_for(lambda: sum(heard) >= messages * (senders - 1), 10, 0.01)
        heard_by_senders["count"] = sum(heard)
        for sender in posting:
            await sender.close()
        await probe.close()

    with no_gc_pauses():
        run_async(run())
    merged = pool.collect(timeout=120)
    result.expected = messages * (members - 1)
    result.delivered = merged["count"] + probe_collector.count + heard_by_senders["count"]
    result.latencies_ms = merged["latencies"] + probe_collector.latencies
    bins = add_bins(dict(merged["bins"]), probe_collector.bins)
    result.timeline = timeline_of(bins)
    spans = merged["spans_ns"] + (
        [(probe_collector.first_ns, probe_collector.last_ns)] if probe_collector.count else []
    )
    if spans:  # first to last delivery, from the receivers' own clocks (one machine's)
        first, last = min(s[0] for s in spans), max(s[1] for s in spans)
        result.duration_s = round(max(last - first, 1) / 1e9, 4)
    else:
        result.duration_s = round(len(result.timeline) / 10, 2) or 0.1
    result.extra["duplicates"] = merged["duplicates"] + probe_collector.duplicates
    result.add_cpu(cpu, messages=result.sent)
    if chatter:
        result.extra["chatter"] = merged["chatter"]
    return result


def _scenario(
    args: argparse.Namespace, name: str, messages: int, inflight: int, rate: float | None
) -> list[Result]:
    results, notes = _both(args, name, messages, inflight, rate)
    save(args.out, name, results, notes)
    return results


def _both(
    args: argparse.Namespace, name: str, messages: int, inflight: int, rate: float | None
) -> tuple[list[Result], dict[str, Any]]:
    """One run per system of args.systems, printed; the ratios between them."""
    results = []
    for system in args.systems:

        def run_once(port: int, pids: dict[str, int], system: str = system) -> Result:
            label = f"{name} {system}"
            return fanout_once(
                system, port, args.members, messages, inflight, rate, args.processes, label, pids,
                senders=args.senders,
            )  # fmt: skip

        if system == "chatroom":
            with servers.chatroom(args.db, args.set, serve_metrics=True) as (stack, url):
                # The window includes the members' logins (a few commits of their own).
                commits = measure.CommitWatch(url, stack.metrics_ports.get("social"))
                commits.start()
                result = run_once(stack.port, measure.server_pids(stack.procs, url))
                result.extra["group_commit"] = commits.stop()
                result.extra["persisted"] = servers.persisted_count(url)
        else:
            with servers.ngircd() as irc:
                result = run_once(irc.port, {"ngircd": irc.proc.pid})
                result.extra["persisted"] = 0
        results.append(result)
    print_table(results)
    notes: dict[str, Any] = {}
    if len(results) == 2:
        ours, peer = results
        notes["ratio_rate"] = round(ours.rate / peer.rate, 3) if peer.rate else None
        if ours.cpu_us and peer.cpu_us:
            notes["ratio_cpu_per_delivery"] = round(ours.cpu_us / peer.cpu_us, 2)
        p_ours, p_peer = ours.percentiles(), peer.percentiles()
        if p_ours and p_peer:
            notes["ratio_p99"] = round(p_ours["p99"] / p_peer["p99"], 3)
        print(f"ratios (chatroom / ngircd): {notes}")
    return results, notes
