"""The benchmark command: a subcommand per scenario, and results that land where git
does not look (issue #16: running benchmarks or tests must not rewrite tracked files)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from loadtest import measure
from loadtest.__main__ import SCENARIOS, parser
from loadtest.results import DEFAULT_OUT

ROOT = Path(__file__).resolve().parents[1]
SUBCOMMANDS = {
    "fanout",
    "fanscale",
    "openloop",
    "bigroom",
    "dm",
    "dmrate",
    "login",
    "resume",
    "idle",
    "ceiling",
    "presence",
    "avatars",
    "avatarbomb",
    "soak",
    "prelogin",
    "fsync",
    "chatter",
    "hostfaults",
}


def run_scenario(out: Path, name: str, *flags: str, timeout: float = 300) -> tuple[dict, str]:
    """`python -m loadtest NAME FLAGS --out OUT` at CI size: its JSON, and what it printed."""
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest", name, *flags, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / f"{name}.json").read_text()), proc.stdout


def test_every_scenario_is_a_subcommand_with_its_own_flags():
    for name in SUBCOMMANDS:
        assert callable(parser().parse_args([name]).run)
    assert len(SCENARIOS) == 16  # fanout/openloop and dm/dmrate share a module
    args = parser().parse_args(["dm", "--pairs", "3", "--set", "worker_threads=4"])
    assert (args.pairs, args.set, args.out) == (3, [("worker_threads", "4")], DEFAULT_OUT)
    with pytest.raises(SystemExit):  # a flag of another scenario is refused
        parser().parse_args(["ceiling", "--pairs", "3"])


def test_idle_can_target_a_running_stack():
    args = parser().parse_args(["idle", "--target", "compose:bench", "--connections", "5"])
    assert (args.target, args.edge_container) == ("compose:bench", None)
    args = parser().parse_args(["idle", "--target", "127.0.0.1:2019", "--edge-container", "e"])
    assert (args.target, args.edge_container) == ("127.0.0.1:2019", "e")
    assert parser().parse_args(["idle"]).target is None  # default: a fresh local stack


def test_fsync_counts_synced_writes_in_the_folder_given(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest", "fsync", "--dir", str(tmp_path)]
        + ["--count", "20", "--seconds", "5", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads((out / "fsync.json").read_text())["results"]
    assert {r["system"]: r["delivered"] for r in results} == {"fsync": 20, "fdatasync": 20}
    assert all(r["rate_per_s"] > 0 for r in results)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # its file is removed


def test_histogram_delta_is_what_happened_between_two_scrapes():
    from prometheus_client.parser import text_string_to_metric_families

    from loadtest.measure import histogram_delta

    def families(counts: tuple[int, int, int], total: int) -> dict:
        text = "".join(
            f'chatroom_write_batch_size_bucket{{batcher="message-writer",le="{le}"}} {n}\n'
            for le, n in zip(("1.0", "4.0", "+Inf"), counts, strict=True)
        )
        text += f'chatroom_write_batch_size_count{{batcher="message-writer"}} {counts[-1]}\n'
        text += f'chatroom_write_batch_size_sum{{batcher="message-writer"}} {total}\n'
        text = "# TYPE chatroom_write_batch_size histogram\n" + text
        return {f.name: f for f in text_string_to_metric_families(text)}

    delta = histogram_delta(
        families((2, 3, 4), 10),
        families((3, 6, 8), 30),
        "chatroom_write_batch_size",
        {"batcher": "message-writer"},
    )
    assert (delta["count"], delta["sum"], delta["mean"]) == (4, 20, 5.0)
    assert delta["share_le"] == {"1.0": 0.25, "4.0": 0.75, "+Inf": 1.0}


def test_the_old_command_name_still_runs():
    proc = subprocess.run(
        [sys.executable, "-m", "loadtest.bench", "fanout", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "--inflight" in proc.stdout


def test_a_benchmark_run_writes_results_and_no_tracked_file(tmp_path, tracked_files):
    before = tracked_files()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "loadtest",
            "ceiling",
            "--members",
            "2",
            "--frames",
            "50",
            "--processes",
            "1",
            "--out",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    doc = json.loads((tmp_path / "ceiling.json").read_text())
    (result,) = doc["results"]
    assert (result["expected"], result["delivered"]) == (100, 100)
    assert tracked_files() == before
    # Without --out a run writes under var/results/, which git ignores.
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(DEFAULT_OUT / "ceiling.json")], cwd=ROOT
    )
    assert ignored.returncode == 0, f"{DEFAULT_OUT} is not ignored by git"


def test_cpu_meter_charges_a_server_its_workers_time_and_the_generator_only_its_own(tmp_path):
    done = tmp_path / "burnt"
    # A "server" whose worker process burns 0.3 s of CPU, says so, and stays alive.
    burn = (
        "import time, pathlib, sys\n"
        "end = time.process_time() + 0.3\n"
        "while time.process_time() < end: pass\n"
        "pathlib.Path(sys.argv[1]).write_text('done')\n"
        "time.sleep(60)\n"
    )
    launcher = (
        f"import subprocess, sys; subprocess.run([sys.executable, '-c', {burn!r}, {str(done)!r}])"
    )
    server = subprocess.Popen([sys.executable, "-c", launcher], start_new_session=True)
    try:
        meter = measure.CpuMeter({"server": server.pid}, {"generator": os.getpid()})
        meter.start()
        deadline = time.monotonic() + 30
        while not done.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        cpu = meter.stop()
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=10)
    assert done.exists()
    assert cpu["server"]["server"] >= 0.25  # the worker's time, charged to its server
    assert cpu["generator"]["generator"] < 0.2  # waiting costs the generator little
    per = measure.cpu_per(cpu, 1000)
    assert per["total"] == round(cpu["server"]["server"] * 1000, 2)


def test_fanscale_reports_server_cpu_per_delivery_per_process(tmp_path):
    # Enough work for the servers' CPU to show in /proc's 10 ms ticks.
    doc, _ = run_scenario(
        tmp_path,
        "fanscale",
        *("--db", "sqlite", "--systems", "chatroom", "--members", "4", "8"),
        *("--deliveries", "3000", "--min-messages", "300", "--processes", "1"),
    )
    assert [r["params"]["members"] for r in doc["results"]] == [4, 8]
    for result in doc["results"]:
        assert result["lost"] == 0
        cpu = result["cpu"]
        # Each server process by name, the generator apart, a total per delivery.
        assert {"bus", "social", "auth", "media"} <= set(cpu["server"])
        assert any(name.startswith("edge") for name in cpu["server"])
        assert "generator" in cpu["generator"]
        assert cpu["us_per_unit"]["total"] > 0
        assert result["cpu_us"] == cpu["us_per_unit"]["total"]
    assert set(doc["cpu_us_per_delivery"]["chatroom"]) == {"4", "8"}


def test_chatter_runs_plain_and_active_fan_out_and_compares_them(tmp_path):
    """A CI-size run of `chatter` (docs/benchmarks.md, "Typing and read markers"), so the
    scenario cannot rot: both variants deliver everything, the active members type and
    mark, and the servers' CPU per delivery and the ratios are written."""
    doc, printed = run_scenario(
        tmp_path,
        "chatter",
        *("--db", "sqlite", "--members", "12", "--messages", "150", "--rounds", "1"),
        *("--processes", "1", "--typing-share", "0.5", "--bout-s", "1"),
        timeout=240,
    )
    plain, active = doc["results"]
    assert (plain["params"]["variant"], active["params"]["variant"]) == ("plain", "chatter")
    for result in (plain, active):
        assert result["delivered"] == result["expected"] == 150 * 11
        assert result["extra"]["server_cpu_us_per_delivery"] > 0
        assert set(result["extra"]["server_cpu_s"]) >= {"edge#0", "social", "bus"}
    counts = active["extra"]["chatter"]
    assert counts["typing_sent"] > 0 and counts["marks_sent"] > 0 and counts["refused"] == 0
    assert "typing_pushes" in counts  # counted by the Collector (a run this short: 0)
    assert doc["ratio_rate"] > 0 and doc["ratio_cpu_per_delivery"] > 0
    assert set(doc["extra_us_per_request"]) >= {"edge#0", "social", "total"}
    assert (tmp_path / "chatter.png").exists() or "matplotlib not installed" in printed


def test_openloop_sweeps_rates_and_plots_p99_against_them(tmp_path):
    """`openloop --rate A B` (docs/benchmarks.md, "Session 21"): each rate in turn, every
    message delivered at each, the p99 of each system by rate in the JSON, and its plot."""
    doc, printed = run_scenario(
        tmp_path,
        "openloop",
        *("--db", "sqlite", "--systems", "chatroom", "--members", "6", "--senders", "2"),
        *("--rate", "50", "100", "--seconds", "1", "--processes", "1"),
    )
    assert [r["params"]["rate"] for r in doc["results"]] == [50, 100]
    assert [r["lost"] for r in doc["results"]] == [0, 0]
    by_rate = doc["by_rate"]
    assert set(by_rate) == {"50.0", "100.0"}
    assert all(notes["p99_ms"]["chatroom"] > 0 for notes in by_rate.values())
    plot = tmp_path / "openloop-p99-by-rate.png"
    assert plot.exists() or "matplotlib not installed" in printed
