"""ChatRoom benchmarks: `python -m loadtest SCENARIO [flags]`, one subcommand per
scenario with its own flags (`python -m loadtest SCENARIO --help`).

Every run starts fresh servers on 127.0.0.1 (ours on MariaDB, or SQLite with --db
sqlite; ngIRCd where the scenario compares), prints progress and a summary table, and
writes <out>/<scenario>.json with a plot next to it (--out, default var/results/, which
git ignores). Every loop is bounded in count and in time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from loadtest.results import DEFAULT_OUT
from loadtest.scenarios import (
    avatarbomb,
    avatars,
    bigroom,
    ceiling,
    chatter,
    dm,
    fanout,
    fanscale,
    fsync,
    hostfaults,
    idle,
    login,
    prelogin,
    presence,
    resume,
    soak,
)

SCENARIOS = (
    fanout,
    fanscale,
    chatter,
    bigroom,
    dm,
    login,
    resume,
    idle,
    ceiling,
    presence,
    avatars,
    avatarbomb,
    soak,
    prelogin,
    fsync,
    hostfaults,
)


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected SETTING=VALUE, got {text!r}")
    return name, value


def parser(prog: str = "python -m loadtest") -> argparse.ArgumentParser:
    server = argparse.ArgumentParser(add_help=False)
    server.add_argument("--db", choices=["mariadb", "sqlite"], default="mariadb")
    server.add_argument(
        "--set",
        type=_setting,
        action="append",
        default=[],
        metavar="SETTING=VALUE",
        help="a server setting for this run, e.g. --set worker_threads=32",
    )
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"results folder (default {DEFAULT_OUT})"
    )
    top = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = top.add_subparsers(dest="scenario", required=True, metavar="SCENARIO")
    for scenario in SCENARIOS:
        scenario.add_parsers(sub, server, out)
    return top


def main(argv: list[str] | None = None, prog: str = "python -m loadtest") -> None:
    args = parser(prog).parse_args(argv)
    args.run(args)


if __name__ == "__main__":
    main()
