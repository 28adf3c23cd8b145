"""The capacity benchmarks across hosts (issue #18), run as docs/benchmarks.md gives their
commands, smaller: each builds three network-namespace hosts (chatroom/hosts.py), each
with its own edge, and spreads its clients over them.

- `loadtest bigroom --hosts 3`: one lobby message to members on every host's edge;
  every member gets it once; the time until the last one has it is reported.
- `loadtest idle --hosts 3`: users logged in and held on every host's edge; each
  edge's connections and memory per connection are reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from chatroom.hosts import available

pytestmark = [pytest.mark.hosts, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[1]
REASON = available()
MEMBERS = 60


IDLE_USERS = 600


def _loadtest(*args: str) -> str:
    """Run `python -m loadtest ARGS` as a person would; its output."""
    command = [sys.executable, "-m", "loadtest", *args]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    return done.stdout


@pytest.mark.skipif(REASON is not None, reason=f"hosts: {REASON}")
def test_a_message_reaches_every_member_on_every_hosts_edge(tmp_path):
    out = _loadtest(
        "bigroom",
        "--members",
        str(MEMBERS),
        "--trials",
        "1",
        "--hosts",
        "3",
        "--out",
        str(tmp_path),
    )
    report = json.loads((tmp_path / "bigroom-hosts3.json").read_text())
    (result,) = report["results"]
    assert result["params"]["hosts"] == 3
    assert result["expected"] == MEMBERS - 1
    assert result["delivered"] == MEMBERS - 1 and result["lost"] == 0, result
    assert result["extra"]["duplicates"] == 0, result["extra"]
    spread = result["extra"]["members_per_edge"]
    assert len(spread) == 3 and sum(spread.values()) == MEMBERS - 1, spread
    assert min(spread.values()) >= (MEMBERS - 1) // 3 - 1, spread
    assert 0 < result["extra"]["all_delivered_ms"] < 10_000, result["extra"]
    assert "over 3 hosts' edges had it" in out


@pytest.mark.skipif(REASON is not None, reason=f"hosts: {REASON}")
def test_idle_users_are_held_by_every_hosts_edge(tmp_path):
    out = _loadtest(
        "idle", "--connections", str(IDLE_USERS), "--hosts", "3", "--out", str(tmp_path)
    )
    report = json.loads((tmp_path / "idle-hosts3.json").read_text())
    (result,) = report["results"]
    assert result["delivered"] == IDLE_USERS and result["errors"] == 0, result
    per_host = result["extra"]["per_host"]
    assert sorted(per_host) == ["h0", "h1", "h2"]
    for name, figures in per_host.items():
        assert figures["connections"] == IDLE_USERS // 3, (name, figures)
        # Each edge grew with its connections (a few KiB each), and says so.
        assert figures["edge_rss_after_kib"] > figures["edge_rss_before_kib"], (name, figures)
        assert f"{name}: {IDLE_USERS // 3} connections held" in out
