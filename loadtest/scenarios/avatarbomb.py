"""avatarbomb: the worst avatars a user may upload, and the bombs they may not.

    python -m loadtest avatarbomb --users 4 --rounds 3 --db sqlite

Every upload is either a worst allowed picture (4096 x 4096, the default pixel limit, of
one colour, in PNG, GIF, WebP and JPEG: 1-260 KB on the wire, up to ~16 bytes per pixel
while decoded) or a bomb (loadtest/hostile_images.py: 20,000^2 PNG and GIF, 12,000^2
WebP in 40 bytes, 60 MiB of zTXt, 400 KiB of tEXt). Three phases on one fresh stack:

  1 user, one by one    each upload waits for the previous reply (the per-decode cost)
  1 user, pipelined     --rounds x all of them on one connection, sent before any reply
  N users, pipelined    --users users doing the same at once

media's RSS is sampled from /proc every 20 ms. Per phase: its peak (VmHWM, reset when the
phase starts) and its settled RSS (once it stops falling, at most 10 s after the last
reply), against the budget: the media container's memory limit in compose.yaml. Rate
limits are off, as in every benchmark: the edge's per-user avatar limit is not what is
measured. If media passes --rss-abort-mib the run kills it, so that a run against code
without the guards cannot take the machine down.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import time
from pathlib import Path
from typing import Any

from loadtest import hostile_images, plots, servers
from loadtest.aclient import AsyncChat, run_async
from loadtest.generator import PASSWORD
from loadtest.measure import RssWatch, mib
from loadtest.results import Result, pcts, print_table, save, timeline_of

# compose.yaml: x-backend deploy.resources.limits.memory (media is a backend).
MEDIA_MEMORY_LIMIT_MIB = 512
SAMPLE_EVERY_S = 0.02
SETTLE_S = 10.0
REPLY_TIMEOUT_S = 120.0


def uploads() -> dict[str, str]:
    """name -> base64 upload, worst allowed pictures first."""
    # Costliest to decode first: WebP (~16 bytes per pixel), PNG, GIF, JPEG (scaled).
    files = {
        f"worst_{fmt.lower()}": hostile_images.worst_allowed(fmt)
        for fmt in ("WEBP", "PNG", "GIF", "JPEG")
    }
    files.update(
        bomb_png_20000=hostile_images.png_bomb(20_000),
        bomb_gif_20000=hostile_images.gif_bomb(20_000),
        bomb_webp_12000=hostile_images.webp_bomb(12_000),
        bomb_png_ztxt=hostile_images.png_ztxt_bomb(),
        bomb_png_text=hostile_images.png_huge_text(),
    )
    return {name: base64.b64encode(data).decode() for name, data in files.items()}


async def _phase(
    label: str,
    clients: list[AsyncChat],
    files: dict[str, str],
    rounds: int,
    pipelined: bool,
    watch: RssWatch,
) -> Result:
    result = Result(
        "avatarbomb",
        label,
        {"users": len(clients), "rounds": rounds, "pipelined": pipelined, "uploads": list(files)},
    )
    idle = watch.rss_kib()
    watch.reset_peak()
    outcomes: dict[str, dict[str, int]] = {}  # upload name -> reply code -> count
    latencies: list[float] = []
    bins: dict[int, int] = {}
    errors = 0

    async def one(name: str, sent_ns: int, fut: asyncio.Future) -> None:
        nonlocal errors
        try:
            reply = await asyncio.wait_for(fut, REPLY_TIMEOUT_S)
            code = "ok" if reply.get("ok") else reply["error"]["code"]
        except (TimeoutError, ConnectionError):
            code = "no_reply"
        now = time.monotonic_ns()
        latencies.append((now - sent_ns) / 1e6)
        bins[now // 100_000_000] = bins.get(now // 100_000_000, 0) + 1
        outcomes.setdefault(name, {}).setdefault(code, 0)
        outcomes[name][code] += 1
        worst = name.startswith("worst")
        if (
            code in ("internal", "no_reply")
            or (code == "ok" and not worst)  # a bomb let through
            or (code == "invalid_image" and worst)  # an allowed picture refused
        ):
            errors += 1

    async def user(index: int, client: AsyncChat) -> None:
        # Each user starts at another picture (the first is the costliest, WebP): when
        # only the first of a pipeline is decoded, the users still cover every format.
        names = list(files)[index:] + list(files)[:index]
        waits = []
        for _ in range(rounds):
            for name in names:
                fut = client.send_nowait("avatar.set", image=files[name])
                task = one(name, time.monotonic_ns(), fut)
                if pipelined:
                    waits.append(task)
                else:
                    await task
        await asyncio.gather(*waits)

    started = time.monotonic()
    await asyncio.gather(*(user(i, c) for i, c in enumerate(clients)))
    result.duration_s = round(time.monotonic() - started, 3)
    peak = watch.peak_kib() if not watch.aborted else watch.abort_kib
    settled = await watch.settled_kib(SETTLE_S) if not watch.aborted else 0
    result.sent = result.expected = rounds * len(files) * len(clients)
    result.delivered = sum(sum(codes.values()) for codes in outcomes.values())
    result.errors = errors
    result.latencies_ms = latencies
    result.timeline = timeline_of(bins)
    result.extra.update(
        idle_rss_mib=mib(idle),
        peak_rss_mib=mib(peak),
        settled_rss_mib=mib(settled),
        budget_mib=MEDIA_MEMORY_LIMIT_MIB,
        within_budget=not watch.aborted and peak <= MEDIA_MEMORY_LIMIT_MIB * 1024,
        aborted=watch.aborted,
        reply_ms=pcts(latencies),
        outcomes=outcomes,
    )
    print(
        f"{label}: media idle {mib(idle)} MiB, peak {mib(peak)} MiB, settled "
        f"{mib(settled)} MiB (budget {MEDIA_MEMORY_LIMIT_MIB} MiB) in {result.duration_s} s"
    )
    for name, codes in outcomes.items():
        print(f"    {name:<18} {codes}")
    return result


async def _scenario(stack: Any, args: argparse.Namespace) -> tuple[list[Result], list]:
    files = uploads()
    media = stack.procs["media"].pid
    watch = RssWatch(
        "media", media, args.rss_abort_mib * 1024, lambda: stack.kill("media"), SAMPLE_EVERY_S
    )
    sampler = asyncio.create_task(watch.run())
    clients = []
    for i in range(max(1, args.users)):
        client = AsyncChat()
        await client.connect("127.0.0.1", stack.port)
        await client.register_login(f"bomber{i}", PASSWORD)
        clients.append(client)
    results = []
    phases = [
        ("1 user, one by one", clients[:1], 1, False),
        ("1 user, pipelined", clients[:1], args.rounds, True),
        (f"{len(clients)} users, pipelined", clients, args.rounds, True),
    ]
    for label, who, rounds, pipelined in phases:
        if watch.aborted:
            break
        results.append(await _phase(label, who, files, rounds, pipelined, watch))
    watch.aborted = True  # stops the sampler
    await sampler
    for client in clients:
        await client.close()
    return results, watch.samples


def plot_rss(path: Path, results: list[Result], samples: list[tuple[float, float]]) -> None:
    peaks = ", ".join(f"{r.system}: {r.extra['peak_rss_mib']}" for r in results)
    plots.memory(
        path,
        samples,
        label="media RSS",
        limit_mib=MEDIA_MEMORY_LIMIT_MIB,
        limit_label="compose limit",
        ylabel="MiB",
        title=f"avatarbomb: media RSS (peaks {peaks})",
        title_size=9,
    )


def add_parsers(sub: Any, server: argparse.ArgumentParser, out: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "avatarbomb",
        parents=[server, out],
        help="the worst allowed avatars and the bombs: media's memory",
    )
    p.add_argument("--users", type=int, default=200, help="users of the last phase")
    p.add_argument("--rounds", type=int, default=10, help="pipelined rounds of uploads")
    p.add_argument("--rss-abort-mib", type=int, default=3072, help="kill media past this")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> list[Result]:
    with servers.chatroom(args.db, args.set) as (stack, _url):
        results, samples = run_async(_scenario(stack, args))
    print_table(results)
    save(args.out, "avatarbomb", results, {"rss_samples_mib": samples[::5]})
    plot_rss(args.out / "avatarbomb-rss.png", results, samples)
    return results
