"""presence: movers log out and in again while their friends watch.

    python -m loadtest presence --users 400 --friends 5 --rounds 10

Each mover, --rounds times: logout (its friends must see it offline), then log in again
with the password (they must see it online). All movers at once. The population is
loadtest.scenarios.churn's.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from loadtest.generator import PASSWORD
from loadtest.results import Result, progress
from loadtest.scenarios import churn


def add_parsers(sub: Any, server: argparse.ArgumentParser, out: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "presence", parents=[server, out], help="movers log out and in while their friends watch"
    )
    churn.add_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> list[Result]:
    return churn.on_fresh_server("presence", args, _presence)


async def _presence(port: int, args: argparse.Namespace) -> Result:
    watch = churn.Watch()
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

    movers, watchers = await churn.population(port, args.users, args.friends, on_event)
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

    async def churn_one(m: int) -> None:
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
                churn.count_reason(reasons, exc)
            done += 1
            if done % 100 == 0:
                progress("logouts+logins", done, len(movers) * args.rounds, started)

    await asyncio.gather(*(churn_one(m) for m in range(len(movers))))
    expected = len(movers) * args.rounds * 2 * args.friends
    await churn.await_all(watch, expected, 15)
    progress("logouts+logins", done, len(movers) * args.rounds, started)
    result.sent = len(movers) * args.rounds * 2
    result.errors = errors
    churn.finish(result, watch, expected, started)
    result.extra["transitions_per_s"] = round(result.sent / result.duration_s, 1)
    result.extra["error_reasons"] = reasons
    if reasons:
        print("errors:", reasons)
    for c in movers + watchers:
        await c.close()
    return result
