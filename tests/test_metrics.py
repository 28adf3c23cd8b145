"""/metrics: every process serves its own, the forked edge workers' add up in the parent
(and a dead worker stops counting in the gauges), a taken port is only a warning, and
the docs and the dashboard name only metrics that exist. The container test with a real
Prometheus is tests/test_monitoring.py."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import urllib.request
from pathlib import Path

import pytest
from loguru import logger
from prometheus_client.parser import text_string_to_metric_families

from chatroom import config, config_env, metrics

from harness import Stack
from wire import WireClient, wait_until

ROOT = Path(__file__).resolve().parents[1]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> tuple[str, Samples]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[s.name, frozenset(s.labels.items())] = s.value
    return text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def worker_pids(parent: int) -> list[int]:
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return [int(pid) for pid in children]


def alive(client: WireClient) -> bool:
    try:
        return bool(client.request("ping", timeout=2)["ok"])
    except Exception:  # noqa: BLE001 - whatever the failure, the connection is gone
        return False


def test_every_process_serves_metrics_and_edge_workers_add_up(make_stack, sqlite_url):
    stack: Stack = make_stack(sqlite_url, serve_metrics=True, edge_workers=2)
    assert set(stack.metrics_ports) == {"bus", "auth", "social", "media", "edge#0"}
    clients = [WireClient(stack.port) for _ in range(6)]
    try:
        ann, ben, cid, *others = clients
        for name, client in zip(("ann", "ben", "cid"), (ann, ben, cid), strict=True):
            client.register_and_login(name)
        assert others[0].error_of("login", username="ann", password="wrong password")
        for i in range(5):
            ann.call("room.send", room="lobby", text=f"m{i}")
        for _ in range(5):
            ben.event("message")

        names = metrics.metric_names()
        for process, port in stack.metrics_ports.items():
            text, _ = scrape(port)
            if process != "edge#0":  # the edge's aggregate lists only what was written
                for name in names:
                    assert f"# HELP {name}" in text, f"{process} does not serve {name}"
            assert "chatroom_" in text

        _, social = scrape(stack.metrics_ports["social"])
        assert value(social, "chatroom_messages_stored_total") == 5
        ok = {"component": "social", "op": "room.send", "outcome": "ok"}
        assert value(social, "chatroom_requests_total", **ok) == 5
        assert value(social, "chatroom_write_batch_size_count", batcher="message-writer") >= 1
        assert ("chatroom_db_pool_checked_out", frozenset()) in social

        _, auth = scrape(stack.metrics_ports["auth"])
        failed = {"component": "auth", "op": "login", "outcome": "bad_credentials"}
        assert value(auth, "chatroom_requests_total", **failed) == 1
        assert value(auth, "chatroom_request_duration_seconds_count", component="auth", op="login")

        # The edge: two workers, one port, their sums.
        edge_port = stack.metrics_ports["edge#0"]
        _, edge = scrape(edge_port)
        assert value(edge, "chatroom_connections") == 6
        assert value(edge, "chatroom_logins_total", outcome="ok") == 3
        assert value(edge, "chatroom_logins_total", outcome="failed") == 1
        sent = {"component": "edge", "op": "room.send", "outcome": "ok"}
        assert value(edge, "chatroom_requests_total", **sent) == 5
        assert value(edge, "chatroom_pushes_total", outcome="delivered") >= 10  # 5 x ben, cid

        # A worker dies: the clients it held are gone from the gauge, its counts stay.
        workers = worker_pids(stack.procs["edge#0"].pid)
        assert len(workers) == 2
        victim = workers[0]
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: victim not in worker_pids(stack.procs["edge#0"].pid), 10, "reaped")
        # The kernel spreads connections by their addresses: the victim held some of the
        # six, or none.
        left = sum(alive(c) for c in clients)

        def gauge_matches() -> bool:
            return value(scrape(edge_port)[1], "chatroom_connections") == left

        wait_until(gauge_matches, 10, f"chatroom_connections == {left} after the kill")
        _, edge = scrape(edge_port)
        assert value(edge, "chatroom_logins_total", outcome="ok") == 3
    finally:
        for client in clients:
            client.close()


def test_a_taken_port_is_a_warning_not_a_crash():
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    lines: list[str] = []
    sink = logger.add(lines.append, level="WARNING")
    try:
        settings = config_env.load({"CHAT_METRICS_PORT": str(port)})
        assert metrics.serve("auth", settings) == 0
    finally:
        logger.remove(sink)
        holder.close()
    assert any(f"cannot listen on 127.0.0.1:{port}" in line for line in lines), lines


@pytest.mark.parametrize(
    ("raw", "component", "port"),
    [("auto", "tcp_edge", 9120), ("auto", "bus", 9124), ("0", "auth", 0), ("off", "media", 0)],
)
def test_metrics_port_setting(raw, component, port):
    assert metrics.port_of(component, config_env.load({"CHAT_METRICS_PORT": raw})) == port


def test_a_bad_metrics_port_names_the_setting():
    with pytest.raises(config.ConfigError, match="CHAT_METRICS_PORT"):
        config_env.load({"CHAT_METRICS_PORT": "70000"})


def _referenced(text: str) -> set[str]:
    return set(re.findall(r"\bchatroom_[a-z_]+", text))


def _known(name: str) -> bool:
    base = re.sub(r"_(total|bucket|sum|count)$", "", name)
    return name in metrics.metric_names() or base in metrics.metric_names()


def test_dashboard_imports_and_refers_only_to_served_metrics():
    dashboard = json.loads((ROOT / "deploy/monitoring/grafana-dashboard.json").read_text())
    assert dashboard["title"] and dashboard["uid"]
    panels = dashboard["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
    exprs = []
    for panel in panels:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"])
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        assert panel["targets"], panel["title"]
        exprs += [t["expr"] for t in panel["targets"]]
    used = set().union(*map(_referenced, exprs))
    assert used, "no panel queries a chatroom metric"
    assert {n for n in used if not _known(n)} == set()
    # Every family has a panel.
    assert {re.sub(r"_(total|bucket|sum|count)$", "", n) for n in used} >= set(
        metrics.metric_names()
    )


def test_operations_doc_and_alert_rules_refer_only_to_served_metrics():
    doc = (ROOT / "docs/operations.md").read_text()
    for name in metrics.metric_names():
        assert f"`{name}" in doc, f"docs/operations.md does not describe {name}"
    rules = (ROOT / "deploy/monitoring/alerts.yml").read_text()
    for text in (doc, rules):
        assert {n for n in _referenced(text) if not _known(n)} == set()
