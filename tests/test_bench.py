"""The benchmark command: a subcommand per scenario, and results that land where git
does not look (issue #16: running benchmarks or tests must not rewrite tracked files)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.__main__ import SCENARIOS, parser
from loadtest.results import DEFAULT_OUT

ROOT = Path(__file__).resolve().parents[1]
SUBCOMMANDS = {
    "fanout",
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
}


def test_every_scenario_is_a_subcommand_with_its_own_flags():
    for name in SUBCOMMANDS:
        assert callable(parser().parse_args([name]).run)
    assert len(SCENARIOS) == 12  # fanout/openloop and dm/dmrate share a module
    args = parser().parse_args(["dm", "--pairs", "3", "--set", "worker_threads=4"])
    assert (args.pairs, args.set, args.out) == (3, [("worker_threads", "4")], DEFAULT_OUT)
    with pytest.raises(SystemExit):  # a flag of another scenario is refused
        parser().parse_args(["ceiling", "--pairs", "3"])


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
