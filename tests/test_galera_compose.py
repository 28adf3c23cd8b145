"""The replicated database as an operator runs it (issue #18; docs/operations.md, "A
replicated database (Galera)"): compose.galera.yaml's three Galera nodes behind HAProxy,
brought up, failed over, stopped and started, recovered after every node crashed, and
taken down, with the commands of docs/operations.md run verbatim on a fresh clone.

Under a stream of lobby messages from one sender (the client's documented retry with its
client_id, tests/acked.py; paced under the stack's default message rate):
- 30 messages; the writer's container is killed (`docker kill`); 30 more: every one is
  acknowledged, after a retry for those caught in the failover, and another node is now
  the writer;
- the killed node is started again (`docker compose start`), rejoins and is healthy; 20
  more: the writes stay on the new writer; two readers got every acknowledged message
  live exactly once and in order, sync returns each once in seq order, and every node
  holds every message;
- the writer is desynced (`SET GLOBAL wsrep_desync = ON`): the proxy's agent check takes
  it out, 10 more are acknowledged on another node, and it comes back once Synced;
- the backup block dumps them from a node;
- the full-restart block (`docker compose stop`, `up -d --wait`): galera-1, the last to
  stop, founds the cluster again from safe_to_bootstrap; nothing acknowledged is lost,
  sends go on;
- every node is killed at once, and the recovery block (position, force-bootstrap on
  galera-2, up) brings the cluster back with every message;
- `docker compose down -v` leaves no container, network or volume of the project.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from test_compose import require_docker
from test_docs_commands import Operator, shell_blocks

from acked import check_view, live_messages, send_with_retry, synced
from wire import WireClient, wait_until

pytestmark = [pytest.mark.compose, pytest.mark.galera]

ROOT = Path(__file__).resolve().parents[1]
DOC = "docs/operations.md"
# Per run: two runs on one engine must not share a stack or image tags.
PROJECT = f"galera-docs-{os.getpid()}"
VERSION = f"galera-test-{os.getpid()}"
NODES = ("galera-1", "galera-2", "galera-3")
# The documented stack keeps its default limits: 60 messages per 10 s per user.
SEND_INTERVAL_S = 0.2
# An attempt waits a little longer than the edge's default request timeout (5 s).
REPLY_TIMEOUT_S = 7.0
RESULTS = ROOT / "var" / "results" / "galera-compose.json"


def block(step: str) -> str:
    """The code of the block of docs/operations.md with that step, as written."""
    found = [b for b in shell_blocks(DOC) if b.step == step]
    assert len(found) == 1, f"{DOC}: no block with step={step}"
    return found[0].code


class Cluster:
    """The operator's shell on the clone, and what the test looks at in the stack."""

    def __init__(self, op: Operator) -> None:
        self.op = op

    def container(self, service: str) -> str:
        ids = self.op.compose("ps", "-aq", service).split()
        assert len(ids) == 1, (service, ids)
        return ids[0]

    def inspect(self, service: str, template: str) -> str:
        return subprocess.run(
            ["docker", "inspect", "--format", template, self.container(service)],
            capture_output=True,
            text=True,
            timeout=30,
        ).stdout.strip()

    def healthy(self, service: str) -> bool:
        return self.inspect(service, "{{if .State.Health}}{{.State.Health.Status}}{{end}}") == (
            "healthy"
        )

    def sql(self, node: str, statement: str) -> str | None:
        """As root on the node, by its socket (None when the node does not answer)."""
        proc = subprocess.run(
            ["docker", "compose", "exec", "-T", node, "mariadb", "-N", "-B", "-e", statement],
            cwd=self.op.clone,
            env=self.op.env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return proc.stdout.strip() if proc.returncode == 0 else None

    def writer(self) -> str:
        """The node holding the services' connections (HAProxy sends them all to one)."""
        counts = {}
        for node in NODES:
            if self.inspect(node, "{{.State.Running}}") != "true":
                continue
            out = self.sql(
                node, "SELECT COUNT(*) FROM information_schema.processlist WHERE user = 'chat'"
            )
            if out is not None:
                counts[node] = int(out)
        assert counts and max(counts.values()) > 0, counts
        return max(counts, key=lambda n: counts[n])

    def messages_on(self, node: str) -> int | None:
        out = self.sql(node, "SELECT COUNT(*) FROM chat.messages")
        return None if out is None else int(out)

    def every_node_has(self, count: int) -> None:
        wait_until(
            lambda: all(self.messages_on(n) == count for n in NODES),
            60,
            f"every node has the {count} messages",
        )

    def logs(self, service: str) -> str:
        return self.op.compose("logs", "--no-color", service)

    def docker_kill(self, *services: str) -> None:
        ids = [self.container(s) for s in services]
        subprocess.run(["docker", "kill", *ids], check=True, capture_output=True, timeout=60)

    def leftovers(self) -> dict[str, list[str]]:
        label = f"label=com.docker.compose.project={PROJECT}"
        found = {}
        for kind in ("container", "network", "volume"):
            args = ["docker", kind, "ls", "-q", "--filter", label]
            if kind == "container":
                args.insert(3, "-a")
            out = subprocess.run(args, capture_output=True, text=True, timeout=30).stdout
            found[kind] = out.split()
        return found


class Sender:
    """Lobby messages m0, m1, ... with the documented retry, at most 5 a second."""

    def __init__(self) -> None:
        self.acked: list[dict[str, Any]] = []
        self.took: list[float] = []

    def send(self, client: WireClient, count: int) -> None:
        for _ in range(count):
            started = time.monotonic()
            message, _attempts, seconds = send_with_retry(
                client, len(self.acked), reply_timeout_s=REPLY_TIMEOUT_S
            )
            self.acked.append(message)
            self.took.append(seconds)
            time.sleep(max(0.0, SEND_INTERVAL_S - (time.monotonic() - started)))

    def check_stored(self, reader: WireClient) -> None:
        """sync from the start returns every acknowledged message once, in order."""
        stored = synced(reader)
        assert [m["id"] for m in stored] == [m["id"] for m in self.acked]
        assert [m["text"] for m in stored] == [f"m{n}" for n in range(len(self.acked))]


@pytest.mark.timeout(900)  # ~4 min with built images; the first build adds ~1 min
def test_operator_runs_galera_and_the_writer_dies(tmp_path):
    require_docker()
    op = Operator(tmp_path)
    op.env.update(COMPOSE_PROJECT_NAME=PROJECT, CHATROOM_VERSION=VERSION)
    cluster = Cluster(op)
    timings: dict[str, float] = {}
    started = time.monotonic()
    node_logs = ""  # the nodes' whole logs, for var/galera-compose.log

    def timed(name: str, code: str, where: str) -> str:
        began = time.monotonic()
        out = op.shell(code, where, op.clone)
        timings[name] = round(time.monotonic() - began, 1)
        return out

    try:
        # The "Deploy" steps up to scripts/deploy.sh (the clone; the engine and the local
        # base images where they cannot be pulled), then the Galera step instead.
        op.shell(block("clone").replace("<your copy of chatroom>", str(ROOT)), "clone", tmp_path)
        prelude = ""
        for b in shell_blocks(DOC):
            exists = b.options.get("if-exists")
            if "same-shell-as-next" in b.options and exists and (op.clone / exists).exists():
                prelude = b.code  # eval "$(../shared/containers/up.sh)"
                break
        timed("deploy_s", prelude + block("galera-deploy"), "galera-deploy")
        assert re.search(
            r"^COMPOSE_FILE=compose.yaml:compose.galera.yaml$",
            (op.clone / ".env").read_text(),
            re.M,
        )
        assert all(cluster.healthy(n) for n in (*NODES, "db"))
        op.wait_for_service()
        sender = Sender()
        with op.client() as alice, op.client() as bob, op.client() as cy:
            alice.register_and_login("alice")
            bob.register_and_login("bob")
            cy.register_and_login("cy")

            sender.send(alice, 30)
            old_writer = cluster.writer()
            cluster.docker_kill(old_writer)  # the writer crashes under the stream
            killed_at = len(sender.acked)
            sender.send(alice, 30)
            new_writer = cluster.writer()
            assert new_writer != old_writer
            timings["failover_longest_send_s"] = round(max(sender.took[killed_at:]), 2)

            op.compose("start", old_writer)  # rejoins by IST or a full copy
            began = time.monotonic()
            wait_until(lambda: cluster.healthy(old_writer), 180, f"{old_writer} rejoined")
            timings["rejoin_s"] = round(time.monotonic() - began, 1)
            sender.send(alice, 20)
            # The old writer does not take the writes back by coming back. Unless the
            # writer was its donor: a donor is not Synced, the proxy takes it out for the
            # transfer, and the writes move to a node that is (galera-start.sh asks the
            # others first, but Galera may still pick the writer for an incremental one).
            donors = re.findall(
                rf"\({old_writer}\) requested state transfer.*Selected \S+ \((galera-\d)\)",
                cluster.logs(old_writer),
            )
            assert donors, f"{old_writer} rejoined without a state transfer in its log"
            writer = cluster.writer()
            assert writer == new_writer or donors[-1] == new_writer, (
                f"the writes moved to {writer}; {old_writer}'s donor was {donors[-1]}"
            )
            new_writer = writer
            for reader in (bob, cy):
                check_view(reader, sender.acked)
            cluster.every_node_has(len(sender.acked))

            # The writer leaves Synced (desynced, as for a backup; a joiner, a donor or a
            # node cut off in a minority are the same to the proxy): its agent says
            # "down", and the writes move to a node that is Synced.
            def proxy_said(what: str) -> int:  # lines so far (it may have said it before)
                return len(re.findall(rf"{new_writer} is {what}", cluster.logs("db")))

            downs, ups = proxy_said("DOWN.*[Aa]gent"), proxy_said("UP")
            assert cluster.sql(new_writer, "SET GLOBAL wsrep_desync = ON") is not None
            began = time.monotonic()
            wait_until(
                lambda: proxy_said("DOWN.*[Aa]gent") > downs,
                30,
                f"the proxy took {new_writer} out when its agent said it is not Synced",
            )
            timings["desynced_out_s"] = round(time.monotonic() - began, 1)
            sender.send(alice, 10)
            assert cluster.writer() != new_writer, "the writes stayed on a desynced node"
            assert cluster.sql(new_writer, "SET GLOBAL wsrep_desync = OFF") is not None
            wait_until(
                lambda: proxy_said("UP") > ups,
                30,
                f"{new_writer} back in the proxy once Synced again",
            )
            for reader in (bob, cy):  # the 10 live, once, in order; all of them stored
                live = [m["id"] for m in live_messages(reader, timeout=3)]
                assert live == [m["id"] for m in sender.acked[-10:]]
                sender.check_stored(reader)
            cluster.every_node_has(len(sender.acked))

        # A backup from a node holds every message.
        op.shell(block("galera-backup"), "galera-backup", op.clone)
        dumps = list(op.clone.glob("chat-*.sql.gz"))
        assert len(dumps) == 1, dumps
        dump = gzip.decompress(dumps[0].read_bytes()).decode()
        assert f"'m{len(sender.acked) - 1}'" in dump

        # The whole cluster stopped and started: galera-1 was the last to leave.
        timed("full_restart_s", block("galera-restart"), "galera-restart")
        assert "safe_to_bootstrap: 1 (the last node to leave)" in cluster.logs("galera-1")
        op.wait_for_service()
        with op.client() as alice, op.client() as bob:
            alice.login("alice", "correct horse")
            bob.login("bob", "correct horse")
            sender.check_stored(bob)
            sender.send(alice, 10)
            sender.check_stored(bob)
            cluster.every_node_has(len(sender.acked))

            # Every node crashes at once; the recovery by hand.
            cluster.docker_kill(*NODES)
            out = timed("recover_s", block("galera-recover"), "galera-recover")
            positions = re.findall(r"^(galera-\d): position (\S+):(-?\d+),", out, re.M)
            # Each node's position, then galera-2's again from force-bootstrap. The block
            # names galera-2 as the node with the highest seqno: so it must be (every node
            # had every message before the crash; a write in flight could differ).
            assert [p[0] for p in positions] == [*NODES, "galera-2"], out
            assert len({uuid for _, uuid, _ in positions}) == 1, positions
            seqnos = {node: int(seqno) for node, _, seqno in positions[:3]}
            assert seqnos["galera-2"] == max(seqnos.values()) >= 0, seqnos
            assert "safe_to_bootstrap: 1 (the last node to leave)" in cluster.logs("galera-2")
            wait_until(lambda: cluster.healthy("db"), 60, "the proxy reaches a writer again")
            op.wait_for_service()
            sender.send(alice, 10)  # the edge and the services reconnected by themselves
            sender.check_stored(bob)
            cluster.every_node_has(len(sender.acked))

        # Down, as an operator takes a stack away: nothing of it is left.
        node_logs = op.compose("logs", "--no-color", *NODES, check=False)
        began = time.monotonic()
        op.compose("down", "-v", "--remove-orphans")
        timings["down_s"] = round(time.monotonic() - began, 1)
        assert cluster.leftovers() == {"container": [], "network": [], "volume": []}
    finally:
        (ROOT / "var").mkdir(exist_ok=True)
        log = "\n".join(op.log)
        if op.clone.exists():
            log += "\n" + op.compose("logs", "--no-color", "--tail", "300", check=False)
            node_logs = node_logs or op.compose("logs", "--no-color", *NODES, check=False)
            op.compose("down", "-v", "--remove-orphans", check=False)
        (ROOT / "var" / "galera-compose.log").write_text(log + "\n" + node_logs)
        for image in ("chatroom-server", "chatroom-galera", "chatroom-galera-proxy"):
            subprocess.run(["docker", "image", "rm", f"{image}:{VERSION}"], capture_output=True)
    timings["total_s"] = round(time.monotonic() - started, 1)
    result: dict[str, Any] = {"acknowledged": len(sender.acked), **timings}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\ngalera compose: {result}")
