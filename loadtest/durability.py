"""The durability sitting's table: `python -m loadtest.durability [--sweep] [DIR]`.

Reads what scripts/bench-durability.sh wrote (DIR, default var/results/durability/):
<mode>/dm-<n>/dm.json and <mode>/fanout-<n>/fanout.json per InnoDB/binlog setting and
run, and fsync/fsync.json; prints the medians per setting as a Markdown table, writes
DIR/durability.json and a bar chart DIR/durability.png. With --sweep (DIR default
var/results/durability-sweep/): <mode>/inflight-<n>/dm.json, one dm run per number of
sends in flight, as a table of rate, batch size and fsyncs per batch against it.
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path
from typing import Any

from loadtest import plots
from loadtest.results import DEFAULT_OUT


def _runs(folder: Path, scenario: str) -> list[dict[str, Any]]:
    docs = []
    for path in sorted(folder.glob(f"{scenario}-*/{scenario}.json")):
        doc = json.loads(path.read_text())
        docs.append({"database": doc.get("database", {}), **doc["results"][0]})
    return docs


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 1) if values else None


def _mode(folder: Path) -> dict[str, Any]:
    dms, fans = _runs(folder, "dm"), _runs(folder, "fanout")
    database = (dms or fans or [{}])[0].get("database", {})

    def commit(run: dict[str, Any], key: str) -> Any:
        watch = run["extra"].get("group_commit", {})
        if key == "mean":
            return watch.get("batches", {}).get("mean")
        if key == "fsyncs_per_batch":  # the binary log's (Syncs) and InnoDB's
            return _fsyncs_per_batch(watch)
        return watch.get(key)

    return {
        "innodb_flush_log_at_trx_commit": database.get("innodb_flush_log_at_trx_commit"),
        "sync_binlog": database.get("sync_binlog"),
        "log_bin": database.get("log_bin"),
        "dm_persisted_per_s": [r["extra"]["persisted_per_s"] for r in dms],
        "dm_ack_p99_ms": [r["extra"]["ack_ms"].get("p99") for r in dms],
        "dm_batch_mean": [commit(r, "mean") for r in dms],
        "dm_batches_per_s": [commit(r, "batches_per_s") for r in dms],
        "dm_fsyncs_per_batch": [commit(r, "fsyncs_per_batch") for r in dms],
        "dm_lost": [r["lost"] for r in dms],
        "fanout_deliveries_per_s": [r["rate_per_s"] for r in fans],
        "fanout_p99_ms": [r.get("p99") for r in fans],
        "fanout_batch_mean": [commit(r, "mean") for r in fans],
        "fanout_batches_per_s": [commit(r, "batches_per_s") for r in fans],
        "fanout_lost": [r["lost"] for r in fans],
    }


def summarize(folder: Path) -> dict[str, Any]:
    modes = {m.name: _mode(m) for m in sorted(folder.iterdir()) if m.is_dir() and m.name != "fsync"}
    for mode in modes.values():
        mode["median"] = {
            k: _median(v)
            for k, v in mode.items()
            if isinstance(v, list) and k.endswith(("_s", "_ms", "mean", "batch"))
        }
    fsync_path = folder / "fsync" / "fsync.json"
    fsync = {}
    if fsync_path.exists():
        fsync = {
            r["system"]: r["rate_per_s"] for r in json.loads(fsync_path.read_text())["results"]
        }
    return {"modes": modes, "disk_syncs_per_s": fsync}


def _n(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def table(summary: dict[str, Any]) -> str:
    rows = [
        "| flush / sync_binlog | DMs persisted/s (runs → median) | DM batch mean | DM batches/s"
        " | fsyncs per batch | fan-out deliveries/s (runs → median) | fan-out batch mean |",
        "|---|---|---|---|---|---|---|",
    ]
    for mode in summary["modes"].values():
        med = mode["median"]

        def runs(key: str, mode: dict[str, Any] = mode) -> str:
            return ", ".join(_n(v) for v in mode[key])

        rows.append(
            f"| {mode['innodb_flush_log_at_trx_commit']} / {mode['sync_binlog']}"
            f" | {runs('dm_persisted_per_s')} → **{_n(med['dm_persisted_per_s'])}**"
            f" | {med['dm_batch_mean']} | {med['dm_batches_per_s']} | {med['dm_fsyncs_per_batch']}"
            f" | {runs('fanout_deliveries_per_s')} → **{_n(med['fanout_deliveries_per_s'])}**"
            f" | {med['fanout_batch_mean']} |"
        )
    return "\n".join(rows)


def _fsyncs_per_batch(watch: dict[str, Any]) -> float | None:
    db, batches = watch.get("db", {}), watch.get("batches", {}).get("count")
    syncs = db.get("Syncs", 0) + db.get("Innodb_data_fsyncs", 0)
    return round(syncs / batches, 2) if batches else None


def sweep(folder: Path) -> dict[str, Any]:
    """{mode: {inflight: {rate, batch mean, fsyncs per batch, ack p50/p99}}}."""
    out: dict[str, Any] = {}
    for path in sorted(folder.glob("*/inflight-*/dm.json")):
        doc = json.loads(path.read_text())
        result, database = doc["results"][0], doc.get("database", {})
        mode = f"{database.get('innodb_flush_log_at_trx_commit')}/{database.get('sync_binlog')}"
        watch = result["extra"].get("group_commit", {})
        out.setdefault(mode, {})[int(path.parent.name.split("-")[1])] = {
            "persisted_per_s": result["extra"]["persisted_per_s"],
            "batch_mean": watch.get("batches", {}).get("mean"),
            "batches_per_s": watch.get("batches_per_s"),
            "fsyncs_per_batch": _fsyncs_per_batch(watch),
            "ack_ms": result["extra"]["ack_ms"],
            "lost": result["lost"],
        }
    return out


def sweep_table(found: dict[str, Any]) -> str:
    rows = [
        "| in flight | flush / sync_binlog | DMs persisted/s | batch (mean msgs) | batches/s"
        " | fsyncs per batch | ack p50 / p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    inflights = sorted({n for runs in found.values() for n in runs})
    for n in inflights:
        for mode, runs in found.items():
            if n in runs:
                r = runs[n]
                rows.append(
                    f"| {n} | {mode} | {_n(r['persisted_per_s'])} | {r['batch_mean']}"
                    f" | {r['batches_per_s']} | {r['fsyncs_per_batch']}"
                    f" | {r['ack_ms'].get('p50')} / {r['ack_ms'].get('p99')} |"
                )
    return "\n".join(rows)


def main_sweep(folder: Path) -> None:
    found = sweep(folder)
    (folder / "sweep.json").write_text(json.dumps(found, indent=2) + "\n")
    print(sweep_table(found))
    inflights = sorted({n for runs in found.values() for n in runs})
    plots.bars(
        folder / "sweep.png",
        "DMs persisted/s by sends in flight (the batch grows with them)",
        [f"{n} in flight" for n in inflights],
        {
            f"flush / sync_binlog {mode}": [
                runs.get(n, {}).get("persisted_per_s", 0) for n in inflights
            ]
            for mode, runs in found.items()
        },
    )
    print(f"results: {folder / 'sweep.json'}")


def main(argv: list[str]) -> None:
    if argv[:1] == ["--sweep"]:
        main_sweep(Path(argv[1]) if len(argv) > 1 else DEFAULT_OUT / "durability-sweep")
        return
    folder = Path(argv[0]) if argv else DEFAULT_OUT / "durability"
    summary = summarize(folder)
    (folder / "durability.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(table(summary))
    print(f"disk syncs/s: {summary['disk_syncs_per_s']}")
    labels = [
        f"flush={m['innodb_flush_log_at_trx_commit']}\nsync_binlog={m['sync_binlog']}"
        for m in summary["modes"].values()
    ]
    plots.bars(
        folder / "durability.png",
        "Durable acks: medians per InnoDB / binlog setting",
        labels,
        {
            "DMs persisted/s": [
                m["median"]["dm_persisted_per_s"] or 0 for m in summary["modes"].values()
            ],
            "fan-out deliveries/s ÷ 100": [
                (m["median"]["fanout_deliveries_per_s"] or 0) / 100
                for m in summary["modes"].values()
            ],
        },
    )
    print(f"results: {folder / 'durability.json'}")


if __name__ == "__main__":
    main(sys.argv[1:])
