"""fanscale: how the server's CPU per delivery grows with room size, against ngIRCd.

    python -m loadtest fanscale --members 10 100 1000 5000 --deliveries 300000

For each size, the closed-loop lobby fan-out of loadtest.scenarios.fanout on fresh
servers, with about --deliveries deliveries (messages = deliveries / members, at least
--min-messages) so each size runs about as long. CPU per delivery per process comes from
/proc over the sending window, the generator apart. Writes a table, the JSON and a plot of
µs per delivery against members (log x), one line per system.
"""

from __future__ import annotations

import argparse
from typing import Any

from loadtest import measure, plots, servers
from loadtest.results import Result, print_table, save
from loadtest.scenarios.fanout import SYSTEMS, fanout_once


def add_parsers(sub: Any, server: argparse.ArgumentParser, out: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "fanscale", parents=[server, out], help="server CPU per delivery against room size"
    )
    p.add_argument("--members", type=int, nargs="+", default=[10, 100, 1000, 5000])
    p.add_argument("--deliveries", type=int, default=300_000, help="per size, about")
    p.add_argument("--min-messages", type=int, default=200)
    p.add_argument("--inflight", type=int, default=32)
    p.add_argument("--processes", type=int, default=2, help="receiving processes")
    p.add_argument("--systems", nargs="+", default=SYSTEMS, choices=SYSTEMS)
    p.set_defaults(run=run)


def one_size(args: argparse.Namespace, system: str, members: int) -> Result:
    messages = max(args.min_messages, args.deliveries // members)
    inflight = min(args.inflight, messages)
    label = f"fanscale {system} {members}"
    if system == "chatroom":
        with servers.chatroom(args.db, args.set) as (stack, url):
            pids = measure.server_pids(stack.procs, url)
            result = fanout_once(
                system, stack.port, members, messages, inflight, None, args.processes, label, pids
            )
    else:
        with servers.ngircd() as irc:
            pids = {"ngircd": irc.proc.pid}
            result = fanout_once(
                system, irc.port, members, messages, inflight, None, args.processes, label, pids
            )
    result.scenario = "fanscale"
    return result


def run(args: argparse.Namespace) -> list[Result]:
    results = []
    failed = []
    for members in args.members:
        for system in args.systems:
            try:
                results.append(one_size(args, system, members))
            except (TimeoutError, RuntimeError) as exc:  # one size's failure: report the rest
                print(f"fanscale {system} {members}: {exc}")
                failed.append({"system": system, "members": members, "error": str(exc)})
    print_table(results)
    table: dict[str, dict[int, float | None]] = {}
    for r in results:
        table.setdefault(r.system, {})[r.params["members"]] = r.cpu_us
    ratios = {
        n: round(ours / peer, 2)
        for n, ours in table.get("chatroom", {}).items()
        if ours and (peer := table.get("ngircd", {}).get(n))
    }
    print("server CPU per delivery (µs) by members:", table)
    print("ratio chatroom / ngircd by members:", ratios)
    notes = {"cpu_us_per_delivery": table, "ratio_by_members": ratios, "failed": failed}
    save(args.out, "fanscale", results, notes)
    plots.lines(
        args.out / "fanscale-cpu.png",
        "server CPU per delivery against room size (generator excluded)",
        {system: sorted((n, us) for n, us in by.items() if us) for system, by in table.items()},
        xlabel="members (log)",
        ylabel="µs per delivery (log)",
        log_y=True,
    )
    return results
