"""avatars: movers change their pictures while their friends watch, then fetch them.

    python -m loadtest avatars --users 200 --friends 5 --rounds 5

Each mover uploads --rounds new pictures one after another; each of its watchers must
get the `avatar` push, then fetches the 64 px image. The population is
loadtest.scenarios.churn's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import time
from typing import Any

from loadtest.aclient import AsyncChat, ChatError
from loadtest.results import Result, pcts
from loadtest.scenarios import churn
from services.media import images


def add_parsers(sub: Any, server: argparse.ArgumentParser, out: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "avatars",
        parents=[server, out],
        help="movers change pictures while their friends watch and fetch them",
    )
    churn.add_arguments(p)
    p.set_defaults(run=run)


def _picture(n: int) -> bytes:
    from PIL import Image

    # A different colour for every n below 65,536: different pictures, different hashes.
    image = Image.new("RGB", (96, 96), (n % 256, (n // 256) % 256, 200))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def run(args: argparse.Namespace) -> list[Result]:
    return churn.on_fresh_server("avatars", args, _avatars)


async def _avatars(port: int, args: argparse.Namespace) -> Result:
    watch = churn.Watch()
    hashes: dict[str, tuple[int, int]] = {}  # avatar hash -> (mover, change)
    fetches: list[float] = []
    fetch_errors = superseded = 0
    tasks: set[asyncio.Task] = set()
    watchers: list[AsyncChat] = []

    async def fetch(watcher: int, digest: str) -> None:
        nonlocal fetch_errors, superseded
        t0 = time.monotonic()
        try:
            reply = await watchers[watcher].call("avatar.get", hash=digest, size=64)
            assert reply["size"] == 64
            fetches.append((time.monotonic() - t0) * 1000)
        except ChatError as exc:
            # Friends may fetch a user's current picture only: one replaced before the
            # fetch arrived is not_found (its successor's push is on the way).
            if exc.code == "not_found":
                superseded += 1
            else:
                fetch_errors += 1
        except Exception:  # noqa: BLE001 - counted
            fetch_errors += 1

    def on_event(watcher: int, event: dict, now: int) -> None:
        if event.get("event") == "avatar" and event["hash"] in hashes:
            mover, change = hashes[event["hash"]]
            watch.record(watcher, mover, change, now)
            task = asyncio.get_running_loop().create_task(fetch(watcher, event["hash"]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    movers, watchers[:] = await churn.population(port, args.users, args.friends, on_event)
    # The server names a picture by the SHA-256 of its normalised PNG; the same code
    # here gives the same name, so a push that beats the upload's reply is recognised.
    pictures: dict[tuple[int, int], str] = {}
    for m in range(len(movers)):
        for r in range(args.rounds):
            data = _picture(m * args.rounds + r)
            pictures[(m, r)] = base64.b64encode(data).decode()
            hashes[images.normalise(data, 1 << 20, 1 << 24).hash] = (m, r)
    print(f"avatars: {len(movers)} movers x {args.friends} watching friends ready")
    result = Result(
        "avatars", "chatroom", {"users": args.users, "friends": args.friends, "rounds": args.rounds}
    )
    errors = 0
    reasons: dict[str, int] = {}
    started = time.monotonic()
    uploads: list[float] = []

    async def churn_one(m: int) -> None:
        nonlocal errors
        for r in range(args.rounds):
            t0 = time.monotonic_ns()
            watch.started_ns[(m, r)] = t0
            try:
                reply = await movers[m].call("avatar.set", image=pictures[(m, r)], timeout=60)
                assert hashes[reply["hash"]] == (m, r)
                uploads.append((time.monotonic_ns() - t0) / 1e6)
            except Exception as exc:  # noqa: BLE001 - counted
                errors += 1
                churn.count_reason(reasons, exc)

    await asyncio.gather(*(churn_one(m) for m in range(len(movers))))
    expected = len(movers) * args.rounds * args.friends
    await churn.await_all(watch, expected, 15)
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    result.sent = len(movers) * args.rounds
    result.errors = errors
    churn.finish(result, watch, expected, started)
    result.extra.update(
        upload_ms=pcts(uploads),
        fetch_ms=pcts(fetches),
        fetched=len(fetches),
        fetch_errors=fetch_errors,
        fetch_superseded=superseded,
        uploads_per_s=round(len(uploads) / result.duration_s, 1),
        error_reasons=reasons,
    )
    if reasons:
        print("errors:", reasons)
    for c in movers + watchers:
        await c.close()
    return result
