"""fsync: how many durable writes per second this disk takes, the physical bound of a
database that flushes its log at every commit.

    python -m loadtest fsync --dir /var/tmp/chatroom-test-mariadb/data --seconds 5

One thread appends --block bytes to a new file in --dir (put it on the database's file
system) and syncs after each write, as a commit at innodb_flush_log_at_trx_commit=1 (and
a binary log at sync_binlog=1) does: once with fsync, once with fdatasync. Each loop is
bounded by --count and --seconds; the file is removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from loadtest.results import Result, print_table, save

SYNCS = {"fsync": os.fsync, "fdatasync": os.fdatasync}


def add_parsers(sub: Any, server: argparse.ArgumentParser, out: argparse.ArgumentParser) -> None:
    p = sub.add_parser("fsync", parents=[out], help="write+fsync per second on a folder's disk")
    p.add_argument("--dir", type=Path, default=Path("/var/tmp"), help="where to write")
    p.add_argument("--block", type=int, default=4096, help="bytes per write")
    p.add_argument("--count", type=int, default=20_000, help="at most this many per call")
    p.add_argument("--seconds", type=float, default=5, help="at most this long per call")
    p.set_defaults(run=run)


def sync_loop(folder: Path, call: str, block: int, count: int, seconds: float) -> Result:
    """`count` writes of `block` bytes, each followed by `call`, for at most `seconds`."""
    result = Result("fsync", call, {"dir": str(folder), "block": block})
    path = folder / f".loadtest-fsync-{os.getpid()}"
    sync = SYNCS[call]
    data = os.urandom(block)
    bins: dict[int, int] = {}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        started = time.monotonic()
        end = started + seconds
        for _ in range(count):
            t0 = time.monotonic()
            if t0 > end:
                break
            os.write(fd, data)
            sync(fd)
            t1 = time.monotonic()
            result.latencies_ms.append((t1 - t0) * 1000)
            bucket = int((t1 - started) * 10)
            bins[bucket] = bins.get(bucket, 0) + 1
        result.duration_s = round(time.monotonic() - started, 3)
    finally:
        os.close(fd)
        path.unlink()
    result.sent = result.expected = result.delivered = len(result.latencies_ms)
    result.timeline = [bins.get(b, 0) for b in range(max(bins, default=-1) + 1)]
    return result


def run(args: argparse.Namespace) -> list[Result]:
    results = [sync_loop(args.dir, call, args.block, args.count, args.seconds) for call in SYNCS]
    print_table(results)
    for r in results:
        print(f"{r.system}: {r.rate:,.0f} syncs/s on {args.dir} ({args.block} B writes)")
    save(args.out, "fsync", results)
    return results
