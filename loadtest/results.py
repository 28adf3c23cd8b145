"""What a benchmark run found, and where it is written.

A `Result` per system (or phase) of a run; `save` writes `<out>/<scenario>.json` and a
plot next to it (loadtest.plots). The default folder, var/results/, is ignored by git:
a run never rewrites a tracked file. Numbers quoted in docs/ are copied there by hand
(docs/results/), with the commit they ran on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from chatroom.files import private_folder
from loadtest import measure, plots

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "var" / "results"

# What this run's servers ran with, written into every JSON file the run saves: the
# stack's database and its durability settings (servers.start_chatroom, target.py).
RUN_NOTES: dict[str, Any] = {}


def note(**notes: Any) -> None:
    RUN_NOTES.update(notes)
    if "database" in notes:
        print(f"database: {notes['database']}")


TABLE_COLUMNS = [
    "system",
    "sent",
    "expected",
    "delivered",
    "lost",
    "errors",
    "duration_s",
    "rate_per_s",
    "p50",
    "p90",
    "p99",
    "max",
    "cpu_us",
]


@dataclass
class Result:
    scenario: str
    system: str
    params: dict[str, Any]
    sent: int = 0
    expected: int = 0  # deliveries (or operations) that should happen
    delivered: int = 0
    errors: int = 0
    duration_s: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    timeline: list[int] = field(default_factory=list)  # completions per 100 ms
    extra: dict[str, Any] = field(default_factory=dict)
    # CPU seconds per process in the measured window (measure.CpuMeter.stop()) and what
    # the server's processes spent per unit of work (add_cpu).
    cpu: dict[str, Any] = field(default_factory=dict)

    def add_cpu(
        self,
        cpu: dict[str, Any],
        per: str = "delivery",
        units: int | None = None,
        messages: int | None = None,
    ) -> None:
        """Record a CpuMeter's window: µs of server CPU per `per` (the result's
        deliveries unless `units` says how many), and per stored message if given."""
        count = self.delivered if units is None else units
        self.cpu = {**cpu, "per": per, "us_per_unit": measure.cpu_per(cpu, count)}
        if messages:
            self.cpu["us_per_message"] = measure.cpu_per(cpu, messages)

    @property
    def cpu_us(self) -> float | None:
        """The server's total CPU per unit of work (µs), if measured."""
        return self.cpu.get("us_per_unit", {}).get("total")

    @property
    def lost(self) -> int:
        return self.expected - self.delivered

    @property
    def rate(self) -> float:
        return self.delivered / self.duration_s if self.duration_s else 0.0

    def percentiles(self) -> dict[str, float]:
        lat = sorted(self.latencies_ms)
        if not lat:
            return {}

        def pick(q: float) -> float:
            return round(lat[min(len(lat) - 1, int(q * len(lat)))], 2)

        return {"p50": pick(0.5), "p90": pick(0.9), "p99": pick(0.99), "max": round(lat[-1], 2)}

    def summary(self) -> dict[str, Any]:
        # Not asdict: it would deep-copy a million latency samples only to drop them.
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "latencies_ms"}
        data.update(lost=self.lost, rate_per_s=round(self.rate, 1), **self.percentiles())
        if self.cpu:
            data["cpu_us"] = self.cpu_us
        return data


def pcts(values: list[float]) -> dict[str, float]:
    """p50, p99 and max of a list of milliseconds (acks, uploads, fetches...)."""
    if not values:
        return {}
    values = sorted(values)
    return {
        q: round(values[min(len(values) - 1, int(p * len(values)))], 2)
        for q, p in (("p50", 0.5), ("p99", 0.99))
    } | {"max": round(values[-1], 2)}


def add_bins(into: dict[int, int], bins: dict[int, int]) -> dict[int, int]:
    """Completions per 100 ms of one worker added to another's (returns `into`)."""
    for bucket, n in bins.items():
        into[bucket] = into.get(bucket, 0) + n
    return into


def timeline_of(bins: dict[int, int]) -> list[int]:
    if not bins:
        return []
    first, last = min(bins), max(bins)
    return [bins.get(b, 0) for b in range(first, last + 1)]


def merge_latencies(result: Result, parts: list[dict[str, Any]]) -> None:
    """The workers' latency samples and completions per 100 ms, into one result."""
    result.latencies_ms = [x for p in parts for x in p["latencies"]]
    bins: dict[int, int] = {}
    for p in parts:
        add_bins(bins, p["bins"])
    result.timeline = timeline_of(bins)


def progress(label: str, done: int, total: int, started: float) -> None:
    width = 30
    filled = int(width * done / max(total, 1))
    rate = done / max(time.monotonic() - started, 1e-9)
    sys.stderr.write(
        f"\r{label:<28} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {rate:,.0f}/s "
    )
    sys.stderr.flush()
    if done >= total:
        sys.stderr.write("\n")


def print_table(results: list[Result]) -> None:
    cols = TABLE_COLUMNS
    summaries = [r.summary() for r in results]
    rows = [[str(s.get(c, "")) for c in cols] for s in summaries]
    widths = [max(len(c), *(len(row[i]) for row in rows)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def _commit() -> str:
    proc = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT
    )
    return proc.stdout.strip()


def save(out: Path, name: str, results: list[Result], notes: dict[str, Any] | None = None) -> Path:
    """<out>/<name>.json (every result's summary, the commit, the machine, the
    database's durability settings when a stack ran) and
    <out>/<name>.png (latency CDF and throughput over time)."""
    private_folder(out)
    doc = {
        "scenario": name,
        "commit": _commit(),
        "when": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {"cores": os.cpu_count()},
        "results": [r.summary() for r in results],
        **RUN_NOTES,
        **(notes or {}),
    }
    path = out / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    series = [(r.system, r.latencies_ms, r.timeline, r.percentiles().get("p99")) for r in results]
    plots.latency_and_throughput(out / f"{name}.png", name, series)
    measured = [r for r in results if r.cpu.get("us_per_unit")]
    if measured:
        processes = sorted({p for r in measured for p in r.cpu["us_per_unit"]} - {"total"})
        labels = [*processes, "total"]
        per = measured[0].cpu["per"]
        plots.bars(
            out / f"{name}-cpu.png",
            f"{name}: server CPU per {per} (µs), generator excluded",
            labels,
            {r.system: [r.cpu["us_per_unit"].get(p, 0.0) for p in labels] for r in measured},
            fmt="%.2f",
        )
    print(f"results: {path}")
    return path
