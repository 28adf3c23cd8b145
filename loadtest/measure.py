"""Measuring the server's processes from the outside: resident memory read from
/proc/PID/status, sampled by a thread (RssSampler) or on the event loop (RssWatch, which
also stops a process that passes a limit), and snapshots of named processes; what a
container's cgroup is charged; histograms scraped from a process's /metrics; the
database's durability settings and its commit and fsync counters."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import threading
import time
import urllib.request
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


# ------------------------------------------------------------ containers (cgroups)


def process_tree_pids(pid: int) -> list[int]:
    """A process and all its descendants (a container's init, the edge, its workers)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return [pid, *(p for c in children for p in process_tree_pids(int(c)))]


def open_files(pid: int) -> int:
    """Descriptors a process holds (0 if it is gone or not ours to read)."""
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def cgroup_dir(pid: int) -> Path | None:
    """The memory cgroup folder of a process (cgroup v1's memory controller, or the v2
    unified hierarchy), as this host mounts it; None when it cannot be found."""
    root = Path("/sys/fs/cgroup")
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        hier, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):  # v1
            candidate = root / "memory" / path.lstrip("/")
            if (candidate / "memory.usage_in_bytes").exists():
                return candidate
        if hier == "0" and not controllers:  # v2
            candidate = root / path.lstrip("/")
            if (candidate / "memory.current").exists():
                return candidate
    return None


def cgroup_memory_kib(pid: int) -> dict[str, int]:
    """What the kernel charges the cgroup of `pid` (a container), in KiB: `usage` (all
    of it: process memory, page cache, kernel memory such as socket buffers), `anon`
    (the processes' own memory), `kernel` and `sock` where this cgroup version tells."""
    folder = cgroup_dir(pid)
    if folder is None:
        return {}

    def read(name: str) -> int | None:
        try:
            return int((folder / name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    stat = {}
    with contextlib.suppress(OSError):
        for line in (folder / "memory.stat").read_text().splitlines():
            key, _, value = line.partition(" ")
            stat[key] = int(value)
    if (folder / "memory.current").exists():  # v2
        found = {
            "usage": read("memory.current"),
            "anon": stat.get("anon"),
            "kernel": stat.get("kernel"),
            "sock": stat.get("sock"),
        }
    else:  # v1: kmem counts the kernel's slabs (sockets among them) when accounted
        found = {
            "usage": read("memory.usage_in_bytes"),
            "anon": stat.get("rss"),
            "kernel": read("memory.kmem.usage_in_bytes"),
            "sock": read("memory.kmem.tcp.usage_in_bytes"),
        }
    return {k: v // 1024 for k, v in found.items() if v is not None}


# ------------------------------------------------------- metrics and the database


def scrape(port: int, host: str = "127.0.0.1", timeout: float = 5) -> dict[str, Any]:
    """A process's /metrics, as prometheus_client's families by name."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout) as reply:
        text = reply.read().decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def _histogram(families: dict[str, Any], name: str, labels: dict[str, str]) -> dict[str, float]:
    """{le: cumulative count, "sum": ..., "count": ...} of one histogram child."""
    out: dict[str, float] = {}
    family = families.get(name)
    for sample in family.samples if family else []:
        if any(sample.labels.get(k) != v for k, v in labels.items()):
            continue
        if sample.name.endswith("_bucket"):
            out[sample.labels["le"]] = sample.value
        elif sample.name.endswith("_sum"):
            out["sum"] = sample.value
        elif sample.name.endswith("_count"):
            out["count"] = sample.value
    return out


def histogram_delta(
    before: dict[str, Any], after: dict[str, Any], name: str, labels: dict[str, str]
) -> dict[str, Any]:
    """What a histogram child observed between two scrapes: count, mean and the share
    of observations per bucket upper bound ("le": fraction ≤ le)."""
    a, b = _histogram(before, name, labels), _histogram(after, name, labels)
    count = b.get("count", 0) - a.get("count", 0)
    total = b.get("sum", 0) - a.get("sum", 0)
    cumulative = {le: b[le] - a.get(le, 0) for le in b if le not in ("sum", "count")}
    return {
        "count": int(count),
        "sum": int(total),
        "mean": round(total / count, 2) if count else None,
        "share_le": {le: round(n / count, 4) for le, n in cumulative.items() if count},
    }


# InnoDB's and the binary log's durability settings, and the counters that show what a
# commit cost: `Syncs` (MariaDB's fsyncs of its own files, the binary log among them),
# InnoDB's fsyncs and redo log writes, and commits per binlog group commit.
DURABILITY = ("innodb_flush_log_at_trx_commit", "sync_binlog", "log_bin", "innodb_flush_method")
DB_COUNTERS = (
    "Syncs",
    "Innodb_data_fsyncs",
    "Innodb_log_writes",
    "Binlog_commits",
    "Binlog_group_commits",
    "Com_commit",
)


def durability(url: str) -> dict[str, Any]:
    """The server's durability settings (MySQL/MariaDB), or the engine's name."""
    if not url.startswith("mysql"):
        return {"engine": url.split(":", 1)[0]}
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text("SELECT " + ", ".join(f"@@global.{name}" for name in DURABILITY))
            ).one()
            version = conn.execute(text("SELECT VERSION()")).scalar_one()
    finally:
        engine.dispose()
    return {"engine": "mysql", "version": version, **dict(zip(DURABILITY, row, strict=True))}


def db_counters(url: str) -> dict[str, int]:
    """DB_COUNTERS now (global: meaningful when nothing else uses the server)."""
    if not url.startswith("mysql"):
        return {}
    from sqlalchemy import bindparam, create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SHOW GLOBAL STATUS WHERE Variable_name IN :names").bindparams(
                    bindparam("names", expanding=True)
                ),
                {"names": list(DB_COUNTERS)},
            ).all()
    finally:
        engine.dispose()
    return {name: int(value) for name, value in rows}


def counters_delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before.get(name, 0) for name in after}


class CommitWatch:
    """The group commit over a measured window: the sizes of social's message-writer
    batches (one transaction each) from its /metrics, and the database's commits and
    fsyncs (global counters: the benchmarks' private MariaDB serves only the run)."""

    BATCHER = "message-writer"

    def __init__(self, url: str, social_metrics_port: int | None) -> None:
        self.url, self.port = url, social_metrics_port
        self._metrics: dict[str, Any] = {}
        self._db: dict[str, int] = {}
        self._t0 = 0.0

    def start(self) -> None:
        self._metrics = scrape(self.port) if self.port else {}
        self._db = db_counters(self.url)
        self._t0 = time.monotonic()

    def stop(self) -> dict[str, Any]:
        seconds = time.monotonic() - self._t0
        after = scrape(self.port) if self.port else {}
        batches = histogram_delta(
            self._metrics, after, "chatroom_write_batch_size", {"batcher": self.BATCHER}
        )
        db = counters_delta(self._db, db_counters(self.url))
        out: dict[str, Any] = {"batches": batches, "db": db, "seconds": round(seconds, 2)}
        if batches["count"]:
            out["batches_per_s"] = round(batches["count"] / seconds, 1)
        if db.get("Binlog_group_commits"):
            out["binlog_commits_per_group"] = round(
                db["Binlog_commits"] / db["Binlog_group_commits"], 2
            )
        if batches["count"] and "Syncs" in db:
            out["syncs_per_batch"] = round(db["Syncs"] / batches["count"], 2)
        return out


# ------------------------------------------------------------------------ CPU time

TICKS_PER_S = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU a process has used, with its children's threads and processes
    (an edge's workers) that are still running; 0 if it is gone."""
    try:
        # The command name (field 2) may hold spaces: the fields after its ")" are fixed.
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / TICKS_PER_S  # utime, stime
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        children = []
    return own + sum(cpu_seconds(int(c)) for c in children)


def mariadb_pid(url: str) -> int | None:
    """The mariadbd serving `url`'s port (other engineers' instances may run beside it)."""
    if not url.startswith("mysql"):
        return None
    from sqlalchemy.engine import make_url

    port = make_url(url).port or 3306
    found = subprocess.run(
        ["pgrep", "-f", f"mariadbd.*--port={port}"], capture_output=True, text=True
    )
    pids = found.stdout.split()
    return int(pids[0]) if pids else None


class CpuWatch:
    """CPU seconds each named process used over a measured window."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._start: dict[str, float] = {}

    def start(self) -> None:
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        return {
            name: round(cpu_seconds(pid) - self._start[name], 3) for name, pid in self.pids.items()
        }
