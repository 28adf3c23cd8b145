"""Measuring the server's processes from the outside: resident memory read from
/proc/PID/status, sampled by a thread (RssSampler) or on the event loop (RssWatch, which
also stops a process that passes a limit), and snapshots of named processes."""

from __future__ import annotations

import asyncio
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def status_kib(pid: int, field: str) -> int:
    """A KiB line of /proc/PID/status: VmRSS (resident now), VmHWM (the most ever)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def rss_kib(pid: int) -> int:
    """Resident memory of a process, 0 if it is gone."""
    try:
        return status_kib(pid, "VmRSS")
    except (OSError, KeyError):
        return 0


def peak_rss_kib(pid: int) -> int:
    """VmHWM: the most the process has ever had resident (0 if it is gone)."""
    try:
        return status_kib(pid, "VmHWM")
    except (OSError, KeyError):
        return 0


def reset_peak(pid: int) -> None:
    """VmHWM := VmRSS, so that the next peak is that of what follows."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def process_tree_rss_kib(pid: int) -> int:
    """RSS of a process and its children (an edge with worker processes)."""
    total = rss_kib(pid)
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return total + sum(process_tree_rss_kib(int(c)) for c in children)


def mib(kib: int) -> float:
    return round(kib / 1024, 1)


def snapshot(pids: dict[str, int], t: float) -> dict[str, Any]:
    """RSS (KiB) of each named process at run time t (0: gone)."""
    return {"t": round(t, 1), **{name: rss_kib(pid) for name, pid in pids.items()}}


def stack_pids(procs: dict[str, Any], generators: list[Any]) -> dict[str, int]:
    """Every service process of a stack, MariaDB if it runs, and the generator's workers."""
    pids = {name: proc.pid for name, proc in procs.items()}
    mariadb = subprocess.run(["pgrep", "-o", "mariadbd"], capture_output=True, text=True)
    if mariadb.stdout.strip():
        pids["mariadb"] = int(mariadb.stdout.split()[0])
    for n, proc in enumerate(generators):
        pids[f"generator#{n}"] = proc.pid
    return pids


class RssSampler(threading.Thread):
    """A process's resident memory every `every_s`, from a thread, until stopped (the
    caller's event loop may be busy for longer than the sampling period)."""

    def __init__(self, pid: int, every_s: float) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.every_s = every_s
        self.samples: list[tuple[float, int]] = []  # (seconds since start, KiB)
        self.stopped = threading.Event()

    def run(self) -> None:
        started = time.monotonic()
        while not self.stopped.wait(self.every_s):
            self.samples.append((time.monotonic() - started, rss_kib(self.pid)))

    @property
    def peak_kib(self) -> int:
        return max((kib for _, kib in self.samples), default=0)


class RssWatch:
    """Samples a process's RSS on the event loop until stopped; calls `kill` once it
    passes `abort_kib`, so that a run cannot take the machine down."""

    def __init__(
        self, name: str, pid: int, abort_kib: int, kill: Callable[[], Any], every_s: float
    ) -> None:
        self.name, self.pid, self.abort_kib = name, pid, abort_kib
        self.kill, self.every_s = kill, every_s
        self.samples: list[tuple[float, float]] = []  # (s since start, MiB)
        self.aborted = False
        self.started = time.monotonic()

    def reset_peak(self) -> None:
        reset_peak(self.pid)

    def rss_kib(self) -> int:
        return status_kib(self.pid, "VmRSS")

    def peak_kib(self) -> int:
        return status_kib(self.pid, "VmHWM")

    async def run(self) -> None:
        while not self.aborted:
            rss = self.rss_kib()
            self.samples.append((round(time.monotonic() - self.started, 3), mib(rss)))
            if rss > self.abort_kib:
                print(f"\n{self.name} passed {mib(self.abort_kib)} MiB: killing it")
                self.aborted = True
                self.kill()
                return
            await asyncio.sleep(self.every_s)

    async def settled_kib(self, within_s: float) -> int:
        """RSS once it stops falling for 1 s (or after `within_s`)."""
        end = time.monotonic() + within_s
        low, low_since = self.rss_kib(), time.monotonic()
        while time.monotonic() < end and time.monotonic() - low_since < 1.0:
            await asyncio.sleep(0.1)
            rss = self.rss_kib()
            if rss < low - 256:
                low, low_since = rss, time.monotonic()
        return min(low, self.rss_kib())
