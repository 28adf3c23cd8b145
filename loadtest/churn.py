"""Churn scenarios: presence (users logging out and in while their friends watch) and
avatars (users changing pictures while their friends watch, then fetching them).

Both use the same population: U users in two halves, "movers" (even numbers) and
"watchers" (odd numbers); every mover is friends with K watchers, so every change a
mover makes must reach exactly K watchers, who stay connected the whole time. Every
expected event is counted; latency runs from the mover's request to each watcher's
receipt.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import tempfile
import time
from pathlib import Path
from typing import Any

from loadtest import servers
from loadtest.aclient import AsyncChat, ChatError, run_async
from loadtest.bench import (
    PASSWORD,
    Result,
    _pcts,
    print_table,
    progress,
    raise_file_limit,
    save,
    timeline_of,
)
from services.media import images


class Watch:
    """Expected events (mover, change number) and when each reached each watcher."""

    def __init__(self) -> None:
        self.started_ns: dict[tuple[int, int], int] = {}
        self.latencies: list[float] = []
        self.bins: dict[int, int] = {}
        self.seen: set[tuple[int, int, int]] = set()
        self.duplicates = 0
        self.unexpected = 0

    def record(self, watcher: int, mover: int, change: int, now_ns: int) -> None:
        key = (watcher, mover, change)
        sent = self.started_ns.get((mover, change))
        if sent is None:
            self.unexpected += 1
            return
        if key in self.seen:
            self.duplicates += 1
            return
        self.seen.add(key)
        self.latencies.append((now_ns - sent) / 1e6)
        bucket = now_ns // 100_000_000
        self.bins[bucket] = self.bins.get(bucket, 0) + 1


async def _population(port: int, users: int, friends: int, on_event: Any) -> tuple[list, list]:
    """Movers and watchers, logged in, each mover friends with `friends` watchers."""
    movers: list[AsyncChat] = []
    watchers: list[AsyncChat] = []
    half = users // 2
    sem = asyncio.Semaphore(64)

    async def login(name: str, handler: Any) -> AsyncChat:
        async with sem:
            c = AsyncChat(handler)
            await c.connect("127.0.0.1", port)
            await c.register_login(name, PASSWORD)
            return c

    watchers = await asyncio.gather(
        *(login(f"w{i}", lambda e, now, i=i: on_event(i, e, now)) for i in range(half))
    )
    movers = await asyncio.gather(*(login(f"m{i}", None) for i in range(half)))

    async def befriend(m: int) -> None:
        async with sem:
            for k in range(friends):
                w = (m + k) % half
                await movers[m].call("friend.request", username=f"w{w}")
                await watchers[w].call("friend.accept", username=f"m{m}")

    await asyncio.gather(*(befriend(m) for m in range(half)))
    return list(movers), list(watchers)


def _finish(result: Result, watch: Watch, expected: int, started: float) -> None:
    result.expected = expected
    result.delivered = len(watch.seen)
    result.latencies_ms = watch.latencies
    result.timeline = timeline_of(watch.bins)
    result.duration_s = round(time.monotonic() - started, 3)
    result.extra.update(duplicates=watch.duplicates, unexpected=watch.unexpected)


async def _await_all(watch: Watch, expected: int, seconds: float) -> None:
    end = time.monotonic() + seconds
    while len(watch.seen) < expected and time.monotonic() < end:
        await asyncio.sleep(0.05)


def _on_fresh_server(name: str, args: argparse.Namespace, scenario: Any) -> list[Result]:
    raise_file_limit()
    with tempfile.TemporaryDirectory() as tmp:
        stack, url = servers.start_chatroom(Path(tmp) / "chatroom", db=args.db)
        try:
            result = run_async(scenario(stack.port, args))
        finally:
            servers.stop_chatroom(stack, url)
    print_table([result])
    save(name, [result])
    return [result]


def scenario_presence(args: argparse.Namespace) -> list[Result]:
    """Each mover, `--rounds` times: logout (friends must see offline), then log in
    again with the password (friends must see online). All movers at once."""
    return _on_fresh_server("presence", args, _presence)


async def _presence(port: int, args: argparse.Namespace) -> Result:
    watch = Watch()
    names: dict[str, int] = {}
    # The k-th presence event a watcher gets about a mover is change k: even k offline
    # (a logout), odd k online (the login after it). One path, so they arrive in order.
    counts: dict[tuple[int, int], int] = {}

    def on_event(watcher: int, event: dict, now: int) -> None:
        if event.get("event") == "presence" and event["user"]["username"] in names:
            mover = names[event["user"]["username"]]
            change = counts.get((watcher, mover), 0)
            counts[(watcher, mover)] = change + 1
            if bool(event["online"]) == bool(change % 2):
                watch.record(watcher, mover, change, now)
            else:
                watch.unexpected += 1

    movers, watchers = await _population(port, args.users, args.friends, on_event)
    names.update({f"m{i}": i for i in range(len(movers))})
    print(f"presence: {len(movers)} movers x {args.friends} watching friends ready")
    result = Result(
        "presence",
        "chatroom",
        {"users": args.users, "friends": args.friends, "rounds": args.rounds},
    )
    errors = 0
    reasons: dict[str, int] = {}
    started = time.monotonic()
    done = 0

    async def churn(m: int) -> None:
        nonlocal errors, done
        client = movers[m]
        for r in range(args.rounds):
            try:
                watch.started_ns[(m, r * 2)] = time.monotonic_ns()
                await client.call("logout", timeout=60)
                watch.started_ns[(m, r * 2 + 1)] = time.monotonic_ns()
                await client.call("login", username=f"m{m}", password=PASSWORD, timeout=60)
            except Exception as exc:  # noqa: BLE001 - counted, the run goes on
                errors += 1
                reasons[type(exc).__name__ + ": " + str(exc)[:60]] = (
                    reasons.get(type(exc).__name__ + ": " + str(exc)[:60], 0) + 1
                )
            done += 1
            if done % 100 == 0:
                progress("logouts+logins", done, len(movers) * args.rounds, started)

    await asyncio.gather(*(churn(m) for m in range(len(movers))))
    expected = len(movers) * args.rounds * 2 * args.friends
    await _await_all(watch, expected, 15)
    progress("logouts+logins", done, len(movers) * args.rounds, started)
    result.sent = len(movers) * args.rounds * 2
    result.errors = errors
    _finish(result, watch, expected, started)
    result.extra["transitions_per_s"] = round(result.sent / result.duration_s, 1)
    result.extra["error_reasons"] = reasons
    if reasons:
        print("errors:", reasons)
    for c in movers + watchers:
        await c.close()
    return result


def _picture(n: int) -> bytes:
    from PIL import Image

    # A different colour for every n below 65,536: different pictures, different hashes.
    image = Image.new("RGB", (96, 96), (n % 256, (n // 256) % 256, 200))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def scenario_avatars(args: argparse.Namespace) -> list[Result]:
    """Each mover uploads `--rounds` new pictures one after another; each of its
    watchers must get the `avatar` push, then fetches the 64 px image."""
    return _on_fresh_server("avatars", args, _avatars)


async def _avatars(port: int, args: argparse.Namespace) -> Result:
    watch = Watch()
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

    movers, watchers[:] = await _population(port, args.users, args.friends, on_event)
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

    async def churn(m: int) -> None:
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
                reason = f"{type(exc).__name__}: {str(exc)[:60]}"
                reasons[reason] = reasons.get(reason, 0) + 1

    await asyncio.gather(*(churn(m) for m in range(len(movers))))
    expected = len(movers) * args.rounds * args.friends
    await _await_all(watch, expected, 15)
    if tasks:
        await asyncio.wait(tasks, timeout=30)
    result.sent = len(movers) * args.rounds
    result.errors = errors
    _finish(result, watch, expected, started)
    result.extra.update(
        upload_ms=_pcts(uploads),
        fetch_ms=_pcts(fetches),
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
