"""The `monitoring` compose profile, for real: the stack with a real Prometheus, a short
load through port 2019, then PromQL over Prometheus's HTTP API. Also `promtool check`
on the configuration and the alert rules.

Needs a Docker engine (as tests/test_compose.py); the Prometheus image is
PROMETHEUS_IMAGE, else the stand-in scripts/monitoring-images.sh builds, else the
official one. Its own project and image tag, so it shares an engine with other stacks.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from test_compose import _ensure_secrets, image_settings, require_docker

from harness import free_port
from wire import WireClient

pytestmark = pytest.mark.compose

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "chatroom-monitoring-test"
JOBS = ("tcp_edge", "auth", "social", "media", "bus")
MESSAGES = 30


@pytest.fixture(scope="module")
def prometheus_image() -> str:
    require_docker()
    if image := os.environ.get("PROMETHEUS_IMAGE"):
        return image
    out = subprocess.run(
        ["bash", str(ROOT / "scripts/monitoring-images.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    ).stdout
    found = re.search(r"^export PROMETHEUS_IMAGE=(\S+)$", out, re.M)
    return found[1] if found else "prom/prometheus:v2.53.0"


def test_rules_and_config_pass_promtool(prometheus_image):
    proc = subprocess.run(
        [
            "docker",
            "run",
            "--rm",
            "--entrypoint",
            "promtool",
            "-v",
            f"{ROOT / 'deploy/monitoring'}:/etc/prometheus:ro",
            prometheus_image,
            "check",
            "config",
            "/etc/prometheus/prometheus.yml",  # and the rule files it names
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 5 rules found" in proc.stdout + proc.stderr


def test_prometheus_scrapes_every_replica_and_counts_the_load(prometheus_image, tmp_path):
    port, prom_port = free_port(), free_port()
    env_file = tmp_path / "chatroom.env"
    env_file.write_text("CHAT_RATE_MESSAGE=off\n")
    env = dict(
        os.environ,
        **image_settings(),
        PROMETHEUS_IMAGE=prometheus_image,
        CHATROOM_VERSION="monitoring-test",  # not the tag other stacks run
        CHAT_PUBLISHED_PORT=str(port),
        CHAT_PUBLISH_ADDR="127.0.0.1",
        PROMETHEUS_PUBLISHED_PORT=str(prom_port),
        CHAT_ENV_FILE=str(env_file),
        COMPOSE_FILE="compose.yaml",
    )

    def compose(*args: str, timeout: float = 600, check: bool = True) -> str:
        cmd = ["docker", "compose", "-p", PROJECT, "--profile", "monitoring", *args]
        proc = subprocess.run(
            cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout
        )
        if check:
            assert proc.returncode == 0, f"{' '.join(cmd)}:\n{proc.stdout}\n{proc.stderr}"
        return proc.stdout

    def query(promql: str) -> list[dict]:
        url = f"http://127.0.0.1:{prom_port}/api/v1/query?" + urllib.parse.urlencode(
            {"query": promql}
        )
        with urllib.request.urlopen(url, timeout=10) as resp:
            body = json.load(resp)
        assert body["status"] == "success", body
        return body["data"]["result"]

    def eventually(promql: str, timeout_s: float = 60) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while True:
            result = query(promql)
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{promql}: empty after {timeout_s:g} s")
            time.sleep(2)

    compose("down", "-v", "--remove-orphans", check=False)
    _ensure_secrets()
    try:
        compose("build")
        # Two social replicas: DNS discovery must find both.
        compose("up", "-d", "--wait", "--wait-timeout", "180", "--scale", "social=2")
        with WireClient(port, timeout=15) as ann, WireClient(port, timeout=15) as ben:
            ann.register_and_login("ann")
            ben.register_and_login("ben")
            with WireClient(port, timeout=15) as wrong:
                assert wrong.error_of("login", username="ann", password="not the password")
            for i in range(MESSAGES):
                ann.call("room.send", room="lobby", text=f"m{i}")
            for _ in range(MESSAGES):
                ben.event("message")

            # Every replica of every component is a target, and up (DNS discovery
            # refreshes every 10 s: the edge starts last).
            want = {**dict.fromkeys(JOBS, 1), "social": 2}
            deadline = time.monotonic() + 90
            while True:
                up = query('count by (job) (up{job=~"tcp_edge|auth|social|media|bus"} == 1)')
                counts = {r["metric"]["job"]: int(r["value"][1]) for r in up}
                if counts == want or time.monotonic() > deadline:
                    break
                time.sleep(2)
            assert counts == want, query("up")
            # What the load did, as Prometheus scraped it.
            eventually(f"sum(chatroom_messages_stored_total) >= {MESSAGES}")
            eventually('sum(chatroom_logins_total{outcome="ok"}) >= 2')
            eventually('sum(chatroom_logins_total{outcome="failed"}) >= 1')
            eventually("sum(chatroom_connections) >= 2")
            eventually('sum(chatroom_pushes_total{outcome="delivered"}) >= 1')
            eventually(
                'sum(rate(chatroom_request_duration_seconds_count{component="social"}[1m])) > 0'
            )
            # The alert rules are loaded, and none fires on a healthy stack.
            with urllib.request.urlopen(
                f"http://127.0.0.1:{prom_port}/api/v1/rules", timeout=10
            ) as resp:
                groups = json.load(resp)["data"]["groups"]
            names = {rule["name"] for g in groups for rule in g["rules"]}
            assert {"ChatroomServiceDown", "ChatroomDatabaseErrors"} <= names
            assert query('ALERTS{alertstate="firing"}') == []
    finally:
        (ROOT / "var").mkdir(exist_ok=True)
        (ROOT / "var" / "monitoring-test.log").write_text(
            compose("logs", "--no-color", check=False)
        )
        compose("down", "-v", "--remove-orphans", check=False)
