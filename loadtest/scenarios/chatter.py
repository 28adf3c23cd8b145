"""chatter: the lobby fan-out with its members typing and marking what they read, against
the plain fan-out, alternating in one sitting (issue #17: typing and read markers at
1,000 active users must not cost the fan-out more than 5 %).

    python -m loadtest chatter --members 1000 --messages 3000 --rounds 5

Each round runs the plain fan-out (loadtest fanout, closed loop) then the same with
chatter (loadtest/chatter.py: `--typing-share` of the members typing at any moment at
the desktop client's cadence, every member marking what it has read at most every
3 s), each on a fresh stack. Reported per run and as medians: deliveries/s, and the
servers' CPU per delivery (edge, bus, auth, social, media and MariaDB, read from /proc
over the window), with chatter / plain ratios.
"""

from __future__ import annotations

import argparse
import statistics
from typing import Any

from loadtest import measure, plots, servers
from loadtest.chatter import ChatterPlan
from loadtest.results import Result, print_table, save
from loadtest.scenarios.fanout import fanout_once

PLAIN, CHATTER = "plain", "chatter"


def add_parsers(sub: Any, server: argparse.ArgumentParser, out: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "chatter",
        parents=[server, out],
        help="lobby fan-out with members typing and marking read, against plain fan-out",
    )
    p.add_argument("--members", type=int, default=1000)
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--inflight", type=int, default=32)
    p.add_argument(
        "--rate",
        type=float,
        default=None,
        help="messages per second, open loop (default: closed loop, as fast as it goes)",
    )
    p.add_argument("--rounds", type=int, default=3, help="plain + chatter runs, alternating")
    p.add_argument("--typing-share", type=float, default=0.05, help="of members typing at once")
    p.add_argument("--bout-s", type=float, default=10.0, help="one bout of typing (seconds)")
    p.add_argument("--no-read-marks", action="store_true", help="typing only")
    p.add_argument("--processes", type=int, default=2, help="receiving processes")
    p.set_defaults(run=run)


def _one(args: argparse.Namespace, variant: str, round_no: int) -> Result:
    plan = None
    if variant == CHATTER:
        plan = ChatterPlan(args.typing_share, args.bout_s, not args.no_read_marks)
    with servers.chatroom(args.db, args.set) as (stack, url):
        pids = measure.server_pids(stack.procs, url)
        label = f"chatter {variant} #{round_no + 1}"
        result = fanout_once(
            "chatroom",
            stack.port,
            args.members,
            args.messages,
            args.inflight,
            args.rate,
            args.processes,
            label,
            pids,
            chatter=plan,
        )
    result.scenario, result.system = "chatter", f"{variant}#{round_no + 1}"
    result.params.update(variant=variant, round=round_no + 1)
    if plan:
        result.params.update(typing_share=plan.typing_share, bout_s=plan.bout_s)
        result.params["read_marks"] = plan.read_marks
    result.extra["server_cpu_s"] = result.cpu["server"]
    result.extra["server_cpu_us_per_delivery"] = result.cpu_us
    result.params["rate"] = args.rate
    print(
        f"{label}: {result.rate:,.0f} deliveries/s, server CPU"
        f" {result.extra['server_cpu_us_per_delivery']} µs per delivery,"
        f" chatter {result.extra.get('chatter', {})}"
    )
    return result


def summary(results: list[Result]) -> dict[str, Any]:
    """Medians per variant and the chatter / plain ratios."""
    out: dict[str, Any] = {}
    for variant in (PLAIN, CHATTER):
        runs = [r for r in results if r.params["variant"] == variant]
        cpu = [r.extra["server_cpu_us_per_delivery"] or 0.0 for r in runs]
        out[variant] = {
            "rates": [round(r.rate) for r in runs],
            "median_rate": round(statistics.median(r.rate for r in runs)) if runs else None,
            "cpu_us_per_delivery": cpu,
            "median_cpu_us_per_delivery": round(statistics.median(cpu), 3) if runs else None,
            "lost": sum(r.lost for r in runs),
        }
    plain, chat = out[PLAIN], out[CHATTER]
    out["extra_us_per_request"] = _extra_per_request(results)
    if plain["median_rate"] and chat["median_rate"]:
        out["ratio_rate"] = round(chat["median_rate"] / plain["median_rate"], 3)
    if plain["median_cpu_us_per_delivery"] and chat["median_cpu_us_per_delivery"]:
        out["ratio_cpu_per_delivery"] = round(
            chat["median_cpu_us_per_delivery"] / plain["median_cpu_us_per_delivery"], 3
        )
    return out


def _extra_per_request(results: list[Result]) -> dict[str, float]:
    """Each server process's median CPU in the chatter runs less its median in the plain
    runs, per typing or read.mark request the members sent (their median): what one such
    request costs, when the runs carry the same fan-out (open loop, `--rate`)."""

    def median_cpu(variant: str) -> dict[str, float]:
        runs = [r.cpu["server"] for r in results if r.params["variant"] == variant]
        return {name: statistics.median(run[name] for run in runs) for name in runs[0]}

    chatted = [r for r in results if r.params["variant"] == CHATTER]
    if not chatted or len(chatted) == len(results):
        return {}
    requests = statistics.median(
        r.extra["chatter"]["typing_sent"] + r.extra["chatter"]["marks_sent"] for r in chatted
    )
    plain, chat = median_cpu(PLAIN), median_cpu(CHATTER)
    extra = {name: (chat[name] - plain[name]) * 1e6 / requests for name in plain}
    extra["total"] = sum(extra.values())
    return {name: round(us, 1) for name, us in extra.items()}


def run(args: argparse.Namespace) -> list[Result]:
    results = []
    for round_no in range(args.rounds):
        for variant in (PLAIN, CHATTER):
            results.append(_one(args, variant, round_no))
    print_table(results)
    notes = summary(results)
    print(
        f"medians: plain {notes[PLAIN]['median_rate']:,}/s,"
        f" {notes[PLAIN]['median_cpu_us_per_delivery']} µs/delivery;"
        f" chatter {notes[CHATTER]['median_rate']:,}/s,"
        f" {notes[CHATTER]['median_cpu_us_per_delivery']} µs/delivery;"
        f" ratios rate {notes.get('ratio_rate')}, CPU {notes.get('ratio_cpu_per_delivery')};"
        f" extra server CPU per typing or read.mark request (µs) {notes['extra_us_per_request']}"
    )
    path = save(args.out, "chatter", results, notes)
    labels = ["deliveries/s (thousands)", "server CPU per delivery (µs)"]
    plots.bars(
        path.with_name("chatter-medians.png"),
        f"fan-out to {args.members} members: plain vs typing + read markers (medians)",
        labels,
        {
            variant: [
                notes[variant]["median_rate"] / 1000,
                notes[variant]["median_cpu_us_per_delivery"],
            ]
            for variant in (PLAIN, CHATTER)
        },
        fmt="%.2f",
        own_scales=True,
    )
    return results
